package backendtest

import (
	"os"
	"path/filepath"
	"testing"
)

// The rootless Podman bed testdata/setup/podman.sh makes: its user, and
// where that user's workspaces live (its home is closed to others).
const (
	PodmanUser = "berth-podman"
	PodmanWork = "/var/lib/berth-podman/work"
)

// PodmanWorkspace makes an empty workspace folder under PodmanWork owned by
// uid:gid, removed after t.
func PodmanWorkspace(t testing.TB, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp(PodmanWork, "ws-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return filepath.Clean(dir)
}
