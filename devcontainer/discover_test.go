package devcontainer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// Workspace files for the discovery tests, as MapFS names of /ws/...
const (
	fDevcontainer  = "ws/.devcontainer/devcontainer.json"
	fDot           = "ws/.devcontainer.json"
	fContainerfile = "ws/Containerfile"
	fDockerfile    = "ws/Dockerfile"
	fExplicit      = "ws/config/berth.json"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// workspace builds a MapFS holding the named files; each devcontainer.json
// names itself in remoteUser so the test can see which one was read.
func workspace(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for _, n := range names {
		switch n {
		case fContainerfile, fDockerfile:
			fsys[n] = file("FROM debian:bookworm\n")
		default:
			fsys[n] = file(`{"image": "debian", "remoteUser": "` + n + `"}`)
		}
	}
	return fsys
}

func TestDiscoverOrder(t *testing.T) {
	all := []string{fExplicit, fDevcontainer, fDot, fContainerfile, fDockerfile}
	type result struct {
		Source     Source
		File       string
		Image      string
		Build      *Build
		RemoteUser string
	}
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		explicit string
		image    string
		want     result
	}{
		{
			name: "explicit relative beats everything", fsys: workspace(all...),
			explicit: "config/berth.json", image: "alpine",
			want: result{Source: SourceExplicit, File: "/ws/config/berth.json", Image: "debian", RemoteUser: fExplicit},
		},
		{
			name: "explicit absolute, outside the workspace", fsys: workspace(append(all, "etc/berth/dc.json")...),
			explicit: "/etc/berth/dc.json",
			want:     result{Source: SourceExplicit, File: "/etc/berth/dc.json", Image: "debian", RemoteUser: "etc/berth/dc.json"},
		},
		{
			name: "explicit Containerfile builds in its own folder", fsys: workspace(append(all, "ws/build/dev.Containerfile")...),
			explicit: "build/dev.Containerfile",
			want: result{Source: SourceExplicit, File: "/ws/build/dev.Containerfile",
				Build: &Build{Dockerfile: "/ws/build/dev.Containerfile", Context: "/ws/build"}},
		},
		{
			name: ".devcontainer/devcontainer.json beats .devcontainer.json", fsys: workspace(all[1:]...), image: "alpine",
			want: result{Source: SourceDevcontainerJSON, File: "/ws/.devcontainer/devcontainer.json", Image: "debian", RemoteUser: fDevcontainer},
		},
		{
			name: ".devcontainer.json beats Containerfile", fsys: workspace(all[2:]...), image: "alpine",
			want: result{Source: SourceDotDevcontainer, File: "/ws/.devcontainer.json", Image: "debian", RemoteUser: fDot},
		},
		{
			name: "a .devcontainer folder without devcontainer.json is passed over",
			fsys: func() fstest.MapFS {
				f := workspace(fDot)
				f["ws/.devcontainer/Dockerfile"] = file("FROM x\n")
				return f
			}(),
			want: result{Source: SourceDotDevcontainer, File: "/ws/.devcontainer.json", Image: "debian", RemoteUser: fDot},
		},
		{
			name: "the root config beats named ones", fsys: workspace(fDevcontainer, "ws/.devcontainer/py/devcontainer.json", "ws/.devcontainer/go/devcontainer.json"),
			want: result{Source: SourceDevcontainerJSON, File: "/ws/.devcontainer/devcontainer.json", Image: "debian", RemoteUser: fDevcontainer},
		},
		{
			name: ".devcontainer.json beats named ones", fsys: workspace(fDot, "ws/.devcontainer/py/devcontainer.json", "ws/.devcontainer/go/devcontainer.json"),
			want: result{Source: SourceDotDevcontainer, File: "/ws/.devcontainer.json", Image: "debian", RemoteUser: fDot},
		},
		{
			name: "a single named config is picked", fsys: workspace("ws/.devcontainer/py/devcontainer.json", fDockerfile),
			want: result{Source: SourceNamed, File: "/ws/.devcontainer/py/devcontainer.json", Image: "debian", RemoteUser: "ws/.devcontainer/py/devcontainer.json"},
		},
		{
			name: "explicit picks a named config", fsys: workspace("ws/.devcontainer/py/devcontainer.json", "ws/.devcontainer/go/devcontainer.json"),
			explicit: ".devcontainer/go/devcontainer.json",
			want:     result{Source: SourceExplicit, File: "/ws/.devcontainer/go/devcontainer.json", Image: "debian", RemoteUser: "ws/.devcontainer/go/devcontainer.json"},
		},
		{
			name: "Containerfile beats Dockerfile", fsys: workspace(all[3:]...), image: "alpine",
			want: result{Source: SourceContainerfile, File: "/ws/Containerfile",
				Build: &Build{Dockerfile: "/ws/Containerfile", Context: "/ws"}},
		},
		{
			name: "Dockerfile beats image", fsys: workspace(fDockerfile), image: "alpine",
			want: result{Source: SourceContainerfile, File: "/ws/Dockerfile",
				Build: &Build{Dockerfile: "/ws/Dockerfile", Context: "/ws"}},
		},
		{
			name: "a Dockerfile that is a folder is passed over",
			fsys: fstest.MapFS{"ws/Dockerfile/README": file("x")}, image: "alpine",
			want: result{Source: SourceImage, Image: "alpine"},
		},
		{
			name: "image last", fsys: fstest.MapFS{"ws/README.md": file("hi")}, image: " alpine:3 ",
			want: result{Source: SourceImage, Image: "alpine:3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := discover(tt.fsys, "/ws", tt.explicit, tt.image, nil)
			if err != nil {
				t.Fatalf("discover: %v", err)
			}
			got := result{c.Source, c.File, c.Image, c.Build, c.RemoteUser}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("discover mismatch (-want +got):\n%s", diff)
			}
			if c.WorkspaceFolder != "/workspaces/ws" || c.ShutdownAction != "stopContainer" || len(c.Hash) != 64 {
				t.Errorf("discover defaults: WorkspaceFolder %q, ShutdownAction %q, Hash %q",
					c.WorkspaceFolder, c.ShutdownAction, c.Hash)
			}
		})
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name     string
		fsys     fstest.MapFS
		explicit string
		wantIs   error
		want     string
	}{
		{
			name: "nothing at all", fsys: fstest.MapFS{"ws/main.go": file("package main")},
			wantIs: ErrNoConfig,
			want: "devcontainer: looked for /ws/.devcontainer/devcontainer.json, /ws/.devcontainer.json, " +
				"/ws/.devcontainer/*/devcontainer.json, /ws/Containerfile, /ws/Dockerfile, and neither the image option nor BERTH_IMAGE is set: no container config",
		},
		{
			name:   "several named configs and no choice",
			fsys:   workspace("ws/.devcontainer/py/devcontainer.json", "ws/.devcontainer/go/devcontainer.json", "ws/.devcontainer/docs/README.md", fDockerfile),
			wantIs: ErrAmbiguousConfig,
			want: "devcontainer: /ws has 2 configurations and none was chosen: pick one with --config or initializationOptions.config: " +
				"/ws/.devcontainer/go/devcontainer.json, /ws/.devcontainer/py/devcontainer.json",
		},
		{
			name:   "a broken named config is an error",
			fsys:   fstest.MapFS{"ws/.devcontainer/py/devcontainer.json": file(`{"image": 1}`)},
			wantIs: ErrBadConfig,
			want:   "/ws/.devcontainer/py/devcontainer.json:1:11: image: want a string, got a number",
		},
		{
			name: "explicit config missing", fsys: workspace(fDevcontainer), explicit: "nope.json",
			wantIs: ErrNoConfig,
			want:   "devcontainer: no config file at /ws/nope.json: no container config",
		},
		{
			name: "a broken devcontainer.json does not fall through",
			fsys: fstest.MapFS{
				fDevcontainer: file("{\n  \"image\": \"debian\"\n  \"remoteUser\": \"x\"\n}"),
				fDot:          file(`{"image": "debian"}`),
			},
			wantIs: ErrBadConfig,
			want:   `/ws/.devcontainer/devcontainer.json:3:3: invalid character '"' after object value (expecting ',' or '}')`,
		},
		{
			name:   "missing Dockerfile",
			fsys:   fstest.MapFS{fDevcontainer: file(`{"build": {"dockerfile": "Dockerfile"}}`)},
			wantIs: ErrBadConfig,
			want:   "/ws/.devcontainer/devcontainer.json: build.dockerfile: /ws/.devcontainer/Dockerfile does not exist",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := discover(tt.fsys, "/ws", tt.explicit, "", nil)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("discover error = %v, want one wrapping %v", err, tt.wantIs)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("discover error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestDiscoverDisk runs Discover itself on a real folder, through osFS.
func TestDiscoverDisk(t *testing.T) {
	ws := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(ws, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := Discover(ws, "", "", nil); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("Discover on an empty folder: %v, want ErrNoConfig", err)
	}
	// A file named .devcontainer is not a folder: passed over, not an error.
	write(".devcontainer", "not a folder")
	write("Dockerfile", "FROM debian\n")
	c, err := Discover(ws, "", "", nil)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	if c.Source != SourceContainerfile {
		t.Errorf("Source = %q, want %q", c.Source, SourceContainerfile)
	}
	if err := os.Remove(filepath.Join(ws, ".devcontainer")); err != nil {
		t.Fatal(err)
	}

	write(".devcontainer/devcontainer.json", `{
		// build from the Dockerfile next to this file
		"build": {"dockerfile": "Dockerfile", "context": ".."},
	}`)
	write(".devcontainer/Dockerfile", "FROM debian:bookworm\n")
	c, err = Discover(ws, "", "", nil)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	want := &Build{Dockerfile: filepath.Join(ws, ".devcontainer", "Dockerfile"), Context: ws}
	if c.Source != SourceDevcontainerJSON || c.File != filepath.Join(ws, ".devcontainer", "devcontainer.json") {
		t.Errorf("Source, File = %q, %q", c.Source, c.File)
	}
	if diff := cmp.Diff(want, c.Build); diff != "" {
		t.Errorf("Build mismatch (-want +got):\n%s", diff)
	}

	// An unreadable file is an error, not a reason to look further.
	if os.Geteuid() != 0 {
		p := filepath.Join(ws, ".devcontainer", "devcontainer.json")
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		_, err := Discover(ws, "", "", nil)
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("Discover with an unreadable config: %v, want fs.ErrPermission", err)
		}
	}
}

func TestCandidates(t *testing.T) {
	fsys := workspace(fDevcontainer, fDot, "ws/.devcontainer/py/devcontainer.json", "ws/.devcontainer/go/devcontainer.json", "ws/.devcontainer/x/other.json", fDockerfile)
	got, err := candidates(fsys, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/ws/.devcontainer/devcontainer.json", "/ws/.devcontainer.json", "/ws/.devcontainer/go/devcontainer.json", "/ws/.devcontainer/py/devcontainer.json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("candidates (-want +got):\n%s", diff)
	}
	if got, err := candidates(fstest.MapFS{"ws/a": file("")}, "/ws"); err != nil || len(got) != 0 {
		t.Errorf("candidates of an empty workspace = %v, %v", got, err)
	}
}
