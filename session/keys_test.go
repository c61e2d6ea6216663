package session

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

func TestEngineSpec(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "dev.env")
	if err := os.WriteFile(envFile, []byte("# comment\nA=from-file\nB=from-file\n\nBERTH_TEST_HOSTVAR\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_HOSTVAR", "host")
	cfg := &devcontainer.Config{
		CapAdd: []string{"SYS_PTRACE"}, Privileged: true, OverrideCommand: new(bool), ContainerUser: "app",
		ContainerEnv: map[string]string{"B": "from-containerEnv"}, AppPort: []string{"127.0.0.1:8080:80"},
		Run: devcontainer.RunArgs{EnvFiles: []string{envFile}, Labels: map[string]string{"team": "web", LabelConfigHash: "spoofed"},
			Ulimits: []devcontainer.Ulimit{{Name: "core", Soft: -1, Hard: -1}}, Hostname: "h"},
	}
	spec := backends.Spec{Labels: map[string]string{LabelConfigHash: "real"}}
	if err := engineSpec(&spec, cfg); err != nil {
		t.Fatal(err)
	}
	want := backends.Spec{
		Labels: map[string]string{LabelConfigHash: "real", "team": "web"},
		Env:    []string{"A=from-file", "BERTH_TEST_HOSTVAR=host", "B=from-containerEnv"},
		CapAdd: []string{"SYS_PTRACE"}, Privileged: true, KeepCommand: true, User: "app", Hostname: "h",
		Ulimits: []backends.Ulimit{{Name: "core", Soft: -1, Hard: -1}},
		Publish: []backends.PortPublish{{HostIP: "127.0.0.1", HostPort: "8080", ContainerPort: "80", Proto: "tcp"}},
	}
	if diff := cmp.Diff(want, spec, cmp.Comparer(func(a, b []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
	})); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	cfg.Run.EnvFiles = []string{filepath.Join(dir, "missing.env")}
	if err := engineSpec(&backends.Spec{}, cfg); err == nil || !strings.Contains(err.Error(), "missing.env") {
		t.Errorf("a missing env file: %v", err)
	}
}

func TestParseProbe(t *testing.T) {
	out := []byte("motd from .bashrc\n" + probeMarker + "PATH=/usr/bin:/opt/x\x00PWD=/root\x00SHLVL=2\x00EMPTY=\x00_=/usr/bin/cat\x00" + probeMarker + "bye\n")
	got, err := parseProbe(out, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"PATH": "/usr/bin:/opt/x", "EMPTY": ""}, got); diff != "" {
		t.Errorf("parseProbe (-want +got):\n%s", diff)
	}
	if _, err := parseProbe([]byte("sh: not found"), 127); err == nil {
		t.Error("parseProbe of no environment: no error")
	}
}

func TestRemoteUIDPlan(t *testing.T) {
	old := hostIDs
	t.Cleanup(func() { hostIDs = old })
	hostIDs = func() (int, int) { return 1000, 1001 }
	m := &Manager{backend: localBackend{}}
	off := false
	tests := []struct {
		name     string
		cfg      *devcontainer.Config
		wantUser string
		wantWhy  string
	}{
		{"remoteUser", &devcontainer.Config{RemoteUser: "dev"}, "dev", ""},
		{"containerUser with a group", &devcontainer.Config{ContainerUser: "app:staff"}, "app", ""},
		{"root", &devcontainer.Config{RemoteUser: "root"}, "", "the remote user is root"},
		{"no user", &devcontainer.Config{}, "", "the remote user is root"},
		{"a bare uid", &devcontainer.Config{RemoteUser: "1000"}, "", "the remote user is a bare uid"},
		{"off", &devcontainer.Config{RemoteUser: "dev", UpdateRemoteUserUID: &off}, "", "off"},
	}
	for _, tt := range tests {
		user, uid, gid, why := m.remoteUIDPlan(tt.cfg)
		if user != tt.wantUser || why != tt.wantWhy || (why == "" && (uid != 1000 || gid != 1001)) {
			t.Errorf("%s: %q %d:%d %q; want %q %q", tt.name, user, uid, gid, why, tt.wantUser, tt.wantWhy)
		}
	}
	hostIDs = func() (int, int) { return 0, 0 }
	if _, _, _, why := m.remoteUIDPlan(&devcontainer.Config{RemoteUser: "dev"}); why != "the host user is root" {
		t.Errorf("host root: %q", why)
	}
	hostIDs = func() (int, int) { return 1000, 1000 }
	m.backend = localBackend{maps: true}
	if _, _, _, why := m.remoteUIDPlan(&devcontainer.Config{RemoteUser: "dev"}); why != "the engine maps ids itself" {
		t.Errorf("an engine that maps ids: %q", why)
	}
}

func TestHostShortfall(t *testing.T) {
	m := &Manager{backend: localBackend{res: backends.HostResources{CPUs: 2, Memory: 4 << 30, GPUKnown: true}}}
	got := m.hostShortfall(context.Background(), &devcontainer.HostRequirements{CPUs: 8, Memory: 16 << 30, Storage: 1 << 40, GPU: "required"})
	want := []string{
		"hostRequirements: the fake engine's host falls short: the configuration asks for 8 CPUs (it has 2), 16.0 GiB of memory (it has 4.0 GiB), a GPU (it has none berth can see)",
		"hostRequirements.storage not checked: the fake engine doesn't report free storage",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hostShortfall (-want +got):\n%s", diff)
	}
	if got := m.hostShortfall(context.Background(), &devcontainer.HostRequirements{CPUs: 2, GPU: "optional"}); len(got) != 0 {
		t.Errorf("requirements met: %q", got)
	}
}

// localBackend is a local engine that may map ids and reports resources;
// nothing else of it is called.
type localBackend struct {
	backends.Backend
	maps bool
	res  backends.HostResources
}

func (localBackend) Name() string    { return "fake" }
func (localBackend) Local() bool     { return true }
func (b localBackend) MapsIDs() bool { return b.maps }
func (b localBackend) Resources(context.Context) (backends.HostResources, error) {
	return b.res, nil
}
