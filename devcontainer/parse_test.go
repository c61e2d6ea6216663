package devcontainer

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	testWS   = "/home/ana/src/shop"
	testFile = testWS + "/.devcontainer/devcontainer.json"
)

// mapEnv is an env func over a fixed map.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

var testEnv = mapEnv(map[string]string{
	"HOME":  "/home/ana",
	"USER":  "ana",
	"EMPTY": "",
	"TAG":   "v3",
})

func ptr[T any](v T) *T { return &v }

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParse(t *testing.T) {
	tests := []struct {
		file string
		want *Config
	}{
		{
			file: "good/node-image.json",
			want: &Config{
				File:            testFile,
				Image:           "mcr.microsoft.com/devcontainers/javascript-node:1-22-bookworm",
				WorkspaceFolder: "/workspaces/shop",
				ForwardPorts:    []Port{{Port: 3000}, {Port: 5173}, {Host: "db", Port: 5432}, {Port: 9229}},
				PostCreate:      &Hook{Shell: "yarn install --frozen-lockfile"},
				RemoteUser:      "node",
				ShutdownAction:  "stopContainer",
				Features:        []FeatureRef{{ID: "ghcr.io/devcontainers/features/github-cli:1", Line: 10, Column: 3}},
			},
		},
		{
			file: "good/go-build.json",
			want: &Config{
				File: testFile,
				Build: &Build{
					Dockerfile: testWS + "/.devcontainer/Dockerfile",
					Context:    testWS,
					Args: map[string]string{
						"GO_VERSION":   "1.26",
						"NODE_VERSION": "none",
						"UID":          "1000",
						"WITH_CGO":     "true",
					},
					Target: "dev",
				},
				WorkspaceFolder: "/src/shop",
				WorkspaceMount:  &Mount{Type: "bind", Source: testWS, Target: "/src/shop"},
				Mounts:          []Mount{{Type: "volume", Source: "svc-gomodcache", Target: "/go/pkg/mod"}},
				ContainerEnv:    map[string]string{"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"},
				OnCreate:        &Hook{Shell: "make tools"},
				PostStart:       &Hook{Argv: []string{"go", "mod", "download"}},
				ShutdownAction:  "stopContainer",
				CapAdd:          []string{"SYS_PTRACE"},
				SecurityOpt:     []string{"seccomp=unconfined"},
				Unknown:         []string{"build.cacheFrom"},
			},
		},
		{
			file: "good/legacy-dockerfile.json",
			want: &Config{
				File:            testFile,
				Build:           &Build{Dockerfile: testWS + "/Containerfile", Context: testWS},
				WorkspaceFolder: "/workspaces/shop",
				PostCreate:      &Hook{Shell: "pip3 install --user -r requirements.txt"},
				RemoteUser:      "vscode",
				ShutdownAction:  "stopContainer",
				AppPort:         []string{"8000"},
			},
		},
		{
			file: "good/mounts.json",
			want: &Config{
				File:            testFile,
				Image:           "docker.io/library/debian:bookworm",
				WorkspaceFolder: "/workspaces/shop",
				Mounts: []Mount{
					{Type: "bind", Source: "/home/ana/.ssh", Target: "/home/dev/.ssh", ReadOnly: true},
					{Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
					{Type: "bind", Source: testWS + "/.cache", Target: "/cache", ReadOnly: true},
					{Type: "tmpfs", Target: "/tmp/scratch"},
					{Type: "volume", Target: "/anon"},
					{Type: "volume", Source: "history-${devcontainerId}", Target: "/commandhistory"},
					{Type: "volume", Source: "node_modules", Target: "/workspaces/shop/node_modules"},
					{Type: "bind", Source: "/etc/timezone", Target: "/etc/timezone"},
				},
				ShutdownAction: "stopContainer",
				Unknown:        []string{"mounts[3].tmpfs-size"},
			},
		},
		{
			file: "good/hooks.json",
			want: &Config{
				File:            testFile,
				Image:           "ghcr.io/example/fullstack:2",
				WorkspaceFolder: "/workspaces/shop",
				PostCreate:      &Hook{Shell: "npm ci && pip install -r requirements.txt"},
				PostStart:       &Hook{Argv: []string{"/usr/local/bin/start-services", "--quiet"}},
				PostAttach: &Hook{Parallel: map[string]*Hook{
					"server": {Shell: "npm start"},
					"db":     {Argv: []string{"pg_ctl", "start", "-D", "/var/lib/postgresql/data"}},
				}},
				ShutdownAction: "stopContainer",
			},
		},
		{
			file: "good/substitution.json",
			want: &Config{
				File:            testFile,
				Image:           "ghcr.io/example/dev:v3",
				WorkspaceFolder: "/work/shop",
				WorkspaceMount:  &Mount{Type: "bind", Source: testWS, Target: "/work/shop"},
				ContainerEnv: map[string]string{
					"HOST_HOME":     "/home/ana",
					"HOST_USER":     "ana",
					"EMPTY_BUT_SET": "",
					"PROXY":         "http://proxy.internal:3128",
					"MISSING":       "",
					"PROJECT":       "shop",
					"PROJECT_DIR":   "/work/shop",
					"HOST_PROJECT":  testWS,
					"ID":            "${devcontainerId}",
					"NOT_A_VAR":     "$HOME and ${} stay",
				},
				RemoteEnv: map[string]string{
					"PATH":   "${containerEnv:PATH}:/work/shop/bin",
					"EDITOR": "${containerEnv:EDITOR:vi}",
				},
				PostCreate:     &Hook{Argv: []string{"/work/shop/scripts/setup.sh", "--fast"}},
				ShutdownAction: "stopContainer",
				Berth: BerthSettings{
					Test: map[string]any{"args": []any{"-coverprofile=/work/shop/cover.out"}},
				},
			},
		},
		{
			file: "good/copy-mount.json",
			want: &Config{
				File:            testFile,
				Image:           "images:debian/12",
				WorkspaceFolder: "/workspaces/shop",
				WorkspaceMount:  &Mount{Type: "copy"},
				ContainerUser:   "root",
				RemoteUser:      "dev",
				ShutdownAction:  "none",
			},
		},
		{
			file: "good/berth.json",
			want: &Config{
				File:            testFile,
				Image:           "mcr.microsoft.com/devcontainers/python:3.12",
				WorkspaceFolder: "/workspaces/shop",
				ShutdownAction:  "stopContainer",
				Berth: BerthSettings{
					Backend: "incus",
					Test: map[string]any{
						"framework": "pytest",
						"args":      []any{"-x", "--maxfail", 3.0},
						"timeout":   120.5,
					},
					Lint:    map[string]any{"command": []any{"ruff", "check", "."}, "fix": false},
					Debug:   map[string]any{"adapter": "debugpy", "port": 5678.0, "env": nil},
					Agent:   ptr(false),
					Unknown: []string{"telemetry", "theme"},
				},
				HostRequirements: &HostRequirements{CPUs: 4},
			},
		},
		{
			file: "good/both-image-and-build.json",
			want: &Config{
				File:            testFile,
				Build:           &Build{Dockerfile: testWS + "/docker/dev.Dockerfile", Context: testWS + "/.devcontainer"},
				WorkspaceFolder: "/workspaces/shop",
				ShutdownAction:  "stopContainer",
				Unknown:         []string{"image"},
			},
		},
	}
	hexHash := regexp.MustCompile(`^[0-9a-f]{64}$`)
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(readTestdata(t, tt.file), testFile, testWS, testEnv)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !hexHash.MatchString(got.Hash) {
				t.Errorf("Hash = %q, want 64 hex digits", got.Hash)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Config{}, "Hash")); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const file = "/ws/.devcontainer/devcontainer.json"
	tests := []struct {
		file string
		want ConfigError // File is filled in
	}{
		{"bad/unterminated-string.json", ConfigError{Line: 2, Column: 11,
			Msg: "unterminated string (or a control character such as a newline inside a string)"}},
		{"bad/missing-comma.json", ConfigError{Line: 4, Column: 2,
			Msg: `invalid character '"' after object value (expecting ',' or '}')`}},
		{"bad/bad-type.json", ConfigError{Line: 4, Column: 18, Field: "forwardPorts",
			Msg: "want an array of ports, got a string"}},
		{"bad/bad-port.json", ConfigError{Line: 3, Column: 25, Field: "forwardPorts[1]",
			Msg: `port "http" is not a whole number from 1 to 65535`}},
		{"bad/unterminated-comment.json", ConfigError{Line: 3, Column: 2,
			Msg: "unterminated /* comment"}},
		{"bad/no-image.json", ConfigError{
			Msg: "neither image, build.dockerfile nor dockerComposeFile is set"}},
		{"bad/mount-no-target.json", ConfigError{Line: 4, Column: 3, Field: "mounts[0]",
			Msg: "mount has no target"}},
		{"bad/hook-nested.json", ConfigError{Line: 5, Column: 13, Field: "postAttachCommand.nested",
			Msg: "want a string or an array of strings, got an object"}},
		{"bad/trailing-garbage.json", ConfigError{Line: 4, Column: 1,
			Msg: "invalid character '}' after top-level value"}},
		// Columns count characters: "Café ☕" is 6 of them but 9 bytes.
		{"bad/unicode-column.json", ConfigError{Line: 2, Column: 56, Field: "forwardPorts[0]",
			Msg: `want a port number or a "host:port" string, got a boolean`}},
		{"bad/empty.json", ConfigError{Line: 2, Column: 1,
			Msg: "unexpected end of file: expected a value"}},
		{"bad/env-array.json", ConfigError{Line: 3, Column: 22, Field: "remoteEnv.A",
			Msg: "want a string, got an array"}},
		{"bad/shutdown.json", ConfigError{Line: 3, Column: 20, Field: "shutdownAction",
			Msg: `unknown value "halt" (want none, stopContainer or stopCompose)`}},
		{"bad/top-array.json", ConfigError{Line: 1, Column: 1,
			Msg: "want an object at the top level, got an array"}},
		{"bad/berth-agent.json", ConfigError{Line: 3, Column: 42, Field: "customizations.berth.agent",
			Msg: "want a boolean, got a string"}},
		{"bad/berth-sync.json", ConfigError{Line: 3, Column: 53, Field: "customizations.berth.sync.maxFiles",
			Msg: "-1 is not a non-negative integer"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Parse(readTestdata(t, tt.file), file, "/ws", nil)
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Parse error = %v, want one wrapping ErrBadConfig", err)
			}
			var got *ConfigError
			if !errors.As(err, &got) {
				t.Fatalf("Parse error = %T, want *ConfigError", err)
			}
			want := tt.want
			want.File = file
			if diff := cmp.Diff(want, *got); diff != "" {
				t.Errorf("Parse error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigErrorMessage(t *testing.T) {
	tests := []struct {
		err  ConfigError
		want string
	}{
		{ConfigError{File: "/ws/.devcontainer.json", Line: 4, Column: 18, Field: "forwardPorts", Msg: "want an array of ports, got a string"},
			"/ws/.devcontainer.json:4:18: forwardPorts: want an array of ports, got a string"},
		{ConfigError{File: "/ws/.devcontainer.json", Line: 2, Column: 1, Msg: "unterminated string"},
			"/ws/.devcontainer.json:2:1: unterminated string"},
		{ConfigError{File: "/ws/.devcontainer.json", Msg: "neither image nor build.dockerfile is set"},
			"/ws/.devcontainer.json: neither image nor build.dockerfile is set"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestParseSmall covers forms that need no file of their own.
func TestParseSmall(t *testing.T) {
	tests := []struct {
		name string
		json string
		want *Config
	}{
		{
			name: "minimal, no trailing newline after a line comment",
			json: `{"image": "alpine"} // done`,
			want: &Config{File: testFile, Image: "alpine", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer"},
		},
		{
			name: "byte order mark",
			json: "\ufeff{\"image\": \"alpine\"}",
			want: &Config{File: testFile, Image: "alpine", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer"},
		},
		{
			name: "repeated key: the last wins",
			json: `{"image": "a", "remoteUser": "x", "image": "b"}`,
			want: &Config{File: testFile, Image: "b", RemoteUser: "x", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer"},
		},
		{
			name: "IPv6 host and a port given as a string",
			json: `{"image": "a", "forwardPorts": ["[::1]:8080", " 8081 "]}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				ForwardPorts: []Port{{Host: "::1", Port: 8080}, {Port: 8081}}},
		},
		{
			name: "build without dockerfile next to an image is ignored",
			json: `{"image": "a", "build": {"args": {"X": "1"}}}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				Unknown: []string{"build"}},
		},
		{
			name: "context without dockerFile is ignored",
			json: `{"image": "a", "context": ".."}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				Unknown: []string{"context"}},
		},
		{
			name: "build.context wins over legacy context; absolute dockerfile kept",
			json: `{"build": {"dockerfile": "/opt/Dockerfile", "context": "ctx"}, "context": ".."}`,
			want: &Config{File: testFile, WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				Build: &Build{Dockerfile: "/opt/Dockerfile", Context: testWS + "/.devcontainer/ctx"}},
		},
		{
			name: "workspaceFolder may use local variables; containerWorkspaceFolder in itself stays",
			json: `{"image": "a", "workspaceFolder": "${containerWorkspaceFolder}/${localWorkspaceFolderBasename}"}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "${containerWorkspaceFolder}/shop", ShutdownAction: "stopContainer"},
		},
		{
			name: "mount keys are case-insensitive; readonly=1, ro=0",
			json: `{"image": "a", "mounts": ["Type=BIND,Source=/a,Target=/b,readonly=1", "type=volume,src=v,dst=/v,ro=0"]}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				Mounts: []Mount{{Type: "bind", Source: "/a", Target: "/b", ReadOnly: true}, {Type: "volume", Source: "v", Target: "/v"}}},
		},
		{
			name: "agent true, null sections",
			json: `{"image": "a", "customizations": {"berth": {"agent": true, "test": null, "backend": "docker"}, "vscode": 3}}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer",
				Berth: BerthSettings{Backend: "docker", Agent: ptr(true)}},
		},
		{
			name: "sync settings",
			json: `{"image": "a", "workspaceMount": "copy", "customizations": {"berth": {"sync": {"twoWay": true, "back": ["build/**", "gen/"], "maxFiles": 500000, "maxBytes": 0}}}}`,
			want: &Config{File: testFile, Image: "a", WorkspaceFolder: "/workspaces/shop", ShutdownAction: "stopContainer", WorkspaceMount: &Mount{Type: "copy"},
				Berth: BerthSettings{Sync: &SyncSettings{TwoWay: true, Back: []string{"build/**", "gen/"}, MaxFiles: 500000}}},
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

// TestParseSmallErrors covers error positions on one line.
func TestParseSmallErrors(t *testing.T) {
	tests := []struct {
		json string
		want string
	}{
		{`{"image": "a", "mounts": ["type=weird,target=/x"]}`, "f:1:27: mounts[0]: unsupported mount type \"weird\" (want bind, volume or tmpfs)"},
		{`{"image": "a", "mounts": ["type=bind,target=/x"]}`, "f:1:27: mounts[0]: bind mount has no source"},
		{`{"image": "a", "mounts": ["target=/x,ro=maybe"]}`, "f:1:27: mounts[0]: invalid ro value \"maybe\" (want true or false)"},
		{`{"image": "a", "mounts": [{"target": 1}]}`, "f:1:38: mounts[0].target: want a string, got a number"},
		{`{"image": "a", "mounts": [true]}`, "f:1:27: mounts[0]: want a mount string or object, got a boolean"},
		{`{"image": "a", "forwardPorts": [0]}`, "f:1:33: forwardPorts[0]: port \"0\" is not a whole number from 1 to 65535"},
		{`{"image": "a", "forwardPorts": [80.5]}`, "f:1:33: forwardPorts[0]: port \"80.5\" is not a whole number from 1 to 65535"},
		{`{"image": "a", "forwardPorts": ["db:"]}`, "f:1:33: forwardPorts[0]: port \"\" is not a whole number from 1 to 65535"},
		{`{"image": "a", "forwardPorts": ["a:b:c"]}`, "f:1:33: forwardPorts[0]: \"a:b:c\" is not a port or host:port"},
		{`{"image": "a", "postStartCommand": ["ls", 1]}`, "f:1:43: postStartCommand[1]: want a string, got a number"},
		{`{"image": "a", "postStartCommand": 1}`, "f:1:36: postStartCommand: want a string, an array of strings or an object of commands, got a number"},
		{`{"image": 1}`, "f:1:11: image: want a string, got a number"},
		{`{"build": "Dockerfile"}`, "f:1:11: build: want an object, got a string"},
		{`{"build": {"args": {}}}`, "f:1:11: build: neither image, build.dockerfile nor dockerComposeFile is set"},
		{`{"workspaceFolder": []}`, "f:1:21: workspaceFolder: want a string, got an array"},
		{`{"image": "a", "customizations": {"berth": {"test": {"n": 1e999}}}}`, "f:1:59: customizations.berth.test.n: number 1e999 is out of range"},
		{`{"image": "a", "customizations": {"berth": []}}`, "f:1:44: customizations.berth: want an object, got an array"},
		{`{"image": "a", "workspaceMount": "type=bind,target=/w"}`, "f:1:34: workspaceMount: bind mount has no source"},
		{`{"image": "a",, }`, "f:1:15: invalid character ',' at start of value"},
		{`{"image": tru}`, "f:1:11: invalid value \"tru\""},
		{`{"image": "a"`, "f:1:14: unexpected end of file: missing '}' or ']'"},
		{`{"image": "a`, "f:1:11: unterminated string"},
		{"", "f:1:1: unexpected end of file: expected a value"},
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

func TestResolveRemoteEnv(t *testing.T) {
	tests := []struct {
		name      string
		remoteEnv map[string]string
		container map[string]string
		want      map[string]string
	}{
		{name: "nil", remoteEnv: nil, want: nil},
		{
			name: "set, unset, default, set-but-empty, other variables",
			remoteEnv: map[string]string{
				"PATH":   "${containerEnv:PATH}:/work/bin",
				"EDITOR": "${containerEnv:EDITOR:vi}",
				"PAGER":  "${containerEnv:PAGER:less}",
				"LANG":   "${containerEnv:LANG:C.UTF-8}",
				"NONE":   "${containerEnv:NONE}",
				"TWICE":  "${containerEnv:A}-${containerEnv:A}",
				"OTHER":  "${devcontainerId} ${containerEnv} ${containerEnv:}",
				"URL":    "${containerEnv:URL:http://h:1/x}",
				"PLAIN":  "plain",
			},
			container: map[string]string{"PATH": "/usr/bin:/bin", "EDITOR": "nano", "LANG": "", "A": "a"},
			want: map[string]string{
				"PATH":   "/usr/bin:/bin:/work/bin",
				"EDITOR": "nano",
				"PAGER":  "less",
				"LANG":   "",
				"NONE":   "",
				"TWICE":  "a-a",
				"OTHER":  "${devcontainerId} ${containerEnv} ${containerEnv:}",
				"URL":    "http://h:1/x",
				"PLAIN":  "plain",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{RemoteEnv: tt.remoteEnv}
			got := c.ResolveRemoteEnv(tt.container)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ResolveRemoteEnv mismatch (-want +got):\n%s", diff)
			}
			if tt.remoteEnv != nil && tt.remoteEnv["PATH"] != "${containerEnv:PATH}:/work/bin" {
				t.Errorf("ResolveRemoteEnv modified RemoteEnv")
			}
		})
	}
}
