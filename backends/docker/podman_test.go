package docker

import (
	"os"
	"path/filepath"
	"testing"
)

func TestKeepIDMode(t *testing.T) {
	tests := []struct {
		user, network string
		rootless      bool
		want          string
	}{
		{"vscode", "", true, "keep-id"},
		{"1000", "", true, "keep-id:uid=1000,gid=1000"},
		{"1000:2000", "bridge", true, "keep-id:uid=1000,gid=2000"},
		{"vscode", "", false, ""}, // rootful Podman or Docker
		{"root", "", true, ""},
		{"0:0", "", true, ""},
		{"", "", true, ""},
		{"vscode", "host", true, ""},
	}
	for _, tt := range tests {
		if got := keepIDMode(tt.user, tt.network, tt.rootless); got != tt.want {
			t.Errorf("keepIDMode(%q, %q, %v) = %q, want %q", tt.user, tt.network, tt.rootless, got, tt.want)
		}
	}
}

func TestPodmanEndpoint(t *testing.T) {
	run := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := PodmanEndpoint(env(map[string]string{"CONTAINER_HOST": "ssh://me@box/run/podman/podman.sock"})); got.Host != "ssh://me@box/run/podman/podman.sock" || !got.Remote() {
		t.Errorf("CONTAINER_HOST: %+v", got)
	}
	// The rootless socket, when it exists, comes first.
	if err := os.MkdirAll(filepath.Join(run, "podman"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "podman", "podman.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := PodmanEndpoint(env(map[string]string{"XDG_RUNTIME_DIR": run})); got.Host != "unix://"+run+"/podman/podman.sock" || got.Remote() {
		t.Errorf("rootless: %+v", got)
	}
}
