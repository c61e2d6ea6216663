package devcontainer

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseCompose(t *testing.T) {
	const dir = testWS + "/.devcontainer"
	tests := []struct {
		name string
		json string
		want *Config
	}{
		{
			name: "one file as a string; stopCompose is the default",
			json: `{"dockerComposeFile": "docker-compose.yml", "service": "app"}`,
			want: &Config{File: testFile, WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopCompose",
				Compose: &Compose{Files: []string{dir + "/docker-compose.yml"}, Service: "app", Dir: dir}},
		},
		{
			name: "an array, relative to the config; image and build lose",
			json: `{
				// the base file, then the dev overrides
				"dockerComposeFile": ["../docker-compose.yml", "docker-compose.dev.yml", "/abs/extra.yml",],
				"service": "web",
				"runServices": ["web", "db"],
				"workspaceFolder": "/workspaces/${localWorkspaceFolderBasename}",
				"overrideCommand": false,
				"shutdownAction": "none",
				"image": "ignored",
			}`,
			want: &Config{File: testFile, WorkspaceFolder: "/workspaces/shop", ShutdownAction: "none",
				OverrideCommand: ptr(false),
				Compose: &Compose{
					Files:   []string{testWS + "/docker-compose.yml", dir + "/docker-compose.dev.yml", "/abs/extra.yml"},
					Service: "web", RunServices: []string{"web", "db"}, Dir: testWS,
				},
				Unknown: []string{"image"}},
		},
		{
			name: "stopContainer in a Compose config stops the project",
			json: `{"dockerComposeFile": "c.yml", "service": "app", "shutdownAction": "stopContainer", "runServices": []}`,
			want: &Config{File: testFile, WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopCompose",
				Compose: &Compose{Files: []string{dir + "/c.yml"}, Service: "app", RunServices: []string{}, Dir: dir}},
		},
		{
			name: "service without dockerComposeFile is ignored",
			json: `{"image": "a", "service": "app", "runServices": ["x"], "overrideCommand": true}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				OverrideCommand: ptr(true), Unknown: []string{"service", "runServices"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.json), testFile, testWS, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Config{}, "Hash")); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseComposeErrors(t *testing.T) {
	tests := []struct {
		json string
		want string
	}{
		{`{"dockerComposeFile": "c.yml"}`, `f:1:23: service: a Docker Compose configuration needs "service": the service to work in`},
		{`{"dockerComposeFile": [], "service": "a"}`, "f:1:23: dockerComposeFile: names no compose file"},
		{`{"dockerComposeFile": 3, "service": "a"}`, "f:1:23: dockerComposeFile: want a file name or an array of file names, got a number"},
		{`{"dockerComposeFile": ["a", 1], "service": "a"}`, "f:1:29: dockerComposeFile[1]: want a string, got a number"},
		{`{"dockerComposeFile": "c", "service": "a", "runServices": "db"}`, "f:1:59: runServices: want an array of service names, got a string"},
		{`{"image": "a", "overrideCommand": "yes"}`, "f:1:35: overrideCommand: want a boolean, got a string"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.json), "f", "/ws", nil)
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("Parse(%s) error = %v, want one wrapping ErrBadConfig", tt.json, err)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%s) error:\n got %s\nwant %s", tt.json, got, tt.want)
		}
	}
}

// composeWS is a workspace written the way real projects write it.
func composeWS() fstest.MapFS {
	return fstest.MapFS{
		"ws/.devcontainer/devcontainer.json": file(`{
			"dockerComposeFile": ["docker-compose.yml", "docker-compose.dev.yml"],
			"service": "app",
			"forwardPorts": ["db:5432"],
		}`),
		"ws/.devcontainer/docker-compose.yml": file(`x-base: &base
  image: berth-test/busybox:1
services:
  app:
    <<: *base
    command: sleep infinity
  db:
    <<: *base
`),
		"ws/.devcontainer/docker-compose.dev.yml": file("services:\n  app:\n    environment:\n      A: b\n  db:\n    build:\n      context: docker\n      dockerfile: Dockerfile.dev\n"),
		"ws/.devcontainer/docker/Dockerfile.dev":  file("FROM a\n"),
	}
}

func TestDockerfileOf(t *testing.T) {
	tests := []struct {
		build any
		want  string
	}{
		{".", "Dockerfile"},
		{"../app", "../app/Dockerfile"},
		{map[string]any{"context": "docker", "dockerfile": "dev.Dockerfile"}, "docker/dev.Dockerfile"},
		{map[string]any{"dockerfile": "/abs/Dockerfile"}, "/abs/Dockerfile"},
		{map[string]any{"context": "https://github.com/a/b.git"}, ""},
		{map[string]any{"context": "${CTX}"}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := dockerfileOf(tt.build); got != tt.want {
			t.Errorf("dockerfileOf(%v) = %q, want %q", tt.build, got, tt.want)
		}
	}
}

func TestDiscoverCompose(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(fstest.MapFS)
		env     map[string]string
		project string
	}{
		{name: "files in .devcontainer: <workspace>_devcontainer", project: "ws_devcontainer"},
		{
			name: "the files' name: wins, the last file's first",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/docker-compose.dev.yml"] = file("name: My.Shop\nservices:\n  app: {}\n")
			},
			project: "myshop",
		},
		{
			name: "COMPOSE_PROJECT_NAME in .env wins over name:",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/docker-compose.dev.yml"] = file("name: shop\nservices:\n  app: {}\n")
				f["ws/.devcontainer/.env"] = file("# settings\nTAG=1\nCOMPOSE_PROJECT_NAME=\"From-Env\"\n")
			},
			project: "from-env",
		},
		{
			name: "the environment wins over .env",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/.env"] = file("COMPOSE_PROJECT_NAME=dotenv\n")
			},
			env:     map[string]string{"COMPOSE_PROJECT_NAME": "Host_Env"},
			project: "host_env",
		},
		{
			name: "files elsewhere: their folder's name",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/devcontainer.json"] = file(`{"dockerComposeFile": "../deploy/compose.yaml", "service": "app"}`)
				f["ws/deploy/compose.yaml"] = f["ws/.devcontainer/docker-compose.yml"]
			},
			project: "deploy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := composeWS()
			if tt.edit != nil {
				tt.edit(fsys)
			}
			c, err := discover(fsys, "/ws", "", "", mapEnv(tt.env))
			if err != nil {
				t.Fatalf("discover: %v", err)
			}
			if c.Compose == nil || c.Compose.Project != tt.project {
				t.Errorf("Compose = %+v, want project %q", c.Compose, tt.project)
			}
		})
	}
}

func TestDiscoverComposeHash(t *testing.T) {
	hash := func(edit func(fstest.MapFS)) string {
		t.Helper()
		fsys := composeWS()
		if edit != nil {
			edit(fsys)
		}
		c, err := discover(fsys, "/ws", "", "", nil)
		if err != nil {
			t.Fatalf("discover: %v", err)
		}
		return c.Hash
	}
	base := hash(nil)
	for name, edit := range map[string]func(fstest.MapFS){
		"a compose file": func(f fstest.MapFS) {
			f["ws/.devcontainer/docker-compose.dev.yml"] = file("services:\n  app:\n    environment:\n      A: c\n")
		},
		".env": func(f fstest.MapFS) { f["ws/.devcontainer/.env"] = file("TAG=2\n") },
		"a service's Dockerfile": func(f fstest.MapFS) {
			f["ws/.devcontainer/docker/Dockerfile.dev"] = file("FROM b\n")
		},
	} {
		if hash(edit) == base {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
	if hash(nil) != base {
		t.Error("the hash is not stable")
	}
}

func TestDiscoverComposeErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(fstest.MapFS)
		want string
	}{
		{
			name: "missing file",
			edit: func(f fstest.MapFS) { delete(f, "ws/.devcontainer/docker-compose.dev.yml") },
			want: "/ws/.devcontainer/devcontainer.json: dockerComposeFile[1]: /ws/.devcontainer/docker-compose.dev.yml does not exist",
		},
		{
			name: "broken YAML names the compose file and line",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/docker-compose.dev.yml"] = file("services:\n  app:\n    environment: [\n")
			},
			want: "/ws/.devcontainer/docker-compose.dev.yml:3: did not find expected node content",
		},
		{
			name: "no such service",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/devcontainer.json"] = file(`{"dockerComposeFile": "docker-compose.yml", "service": "web"}`)
			},
			want: `/ws/.devcontainer/devcontainer.json: service: no service "web" in /ws/.devcontainer/docker-compose.yml`,
		},
		{
			name: "no such run service",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/devcontainer.json"] = file(`{"dockerComposeFile": "docker-compose.yml", "service": "app", "runServices": ["app", "cache"]}`)
			},
			want: `/ws/.devcontainer/devcontainer.json: runServices[1]: no service "cache" in /ws/.devcontainer/docker-compose.yml`,
		},
		{
			name: "services of the wrong type",
			edit: func(f fstest.MapFS) {
				f["ws/.devcontainer/docker-compose.yml"] = file("services:\n  - app\n")
			},
			want: "/ws/.devcontainer/docker-compose.yml:2: cannot unmarshal !!seq into map[string]interface {}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := composeWS()
			tt.edit(fsys)
			_, err := discover(fsys, "/ws", "", "", nil)
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("discover error = %v, want one wrapping ErrBadConfig", err)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("discover error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestProjectName(t *testing.T) {
	for in, want := range map[string]string{
		"My Shop_devcontainer": "myshop_devcontainer",
		"-_x.y":                "xy",
		"Ünïcode-1":            "ncode-1",
		"":                     "",
	} {
		if got := ProjectName(in); got != want {
			t.Errorf("ProjectName(%q) = %q, want %q", in, got, want)
		}
	}
}
