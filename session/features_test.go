package session

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/features"
)

func TestStageHooks(t *testing.T) {
	cfg := devcontainer.Merge(&devcontainer.Config{
		PostCreate: &devcontainer.Hook{Shell: "own"},
		PostStart:  &devcontainer.Hook{Shell: "own start"},
	}, []devcontainer.Metadata{
		{PostCreate: &devcontainer.Hook{Shell: "from the image"}},
		{ID: "node", OnCreate: &devcontainer.Hook{Shell: "node on create"}, PostCreate: &devcontainer.Hook{Shell: "node"}},
	})
	var got []string
	for _, h := range createCommands(cfg) {
		got = append(got, fmt.Sprintf("%s %s: %s", h.name, h.from, h.hook.Shell))
	}
	want := []string{
		"onCreateCommand node: node on create",
		"postCreateCommand image metadata[0]: from the image",
		"postCreateCommand node: node",
		"postCreateCommand : own",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("createCommands (-want +got):\n%s", diff)
	}
	if n := len(stageHooks(cfg, "postStartCommand")); n != 1 {
		t.Errorf("postStartCommand: %d hooks, want 1", n)
	}
}

func TestInstanceEnv(t *testing.T) {
	cfg := &devcontainer.Config{ContainerEnv: map[string]string{"OWN": "1", "SHARED": "config"}}
	entries := []devcontainer.Metadata{
		{ContainerEnv: map[string]string{"PATH": "/opt/x/bin:${PATH}", "SHARED": "feature", "X_HOME": "/opt/x"}},
	}
	tests := []struct {
		built bool
		want  map[string]string
	}{
		// The image's ENV expanded PATH already.
		{built: true, want: map[string]string{"OWN": "1", "SHARED": "config", "X_HOME": "/opt/x"}},
		{built: false, want: map[string]string{"OWN": "1", "SHARED": "config", "X_HOME": "/opt/x", "PATH": "/opt/x/bin:" + features.DefaultPath}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, instanceEnv(cfg, entries, tt.built)); diff != "" {
			t.Errorf("built %v (-want +got):\n%s", tt.built, diff)
		}
	}
}

func TestFeatureFailed(t *testing.T) {
	cause := fmt.Errorf("docker: %w at step 4", backends.ErrBuild)
	log := "Step 3/5 : RUN /bin/sh /tmp/berth-features/f0/berth-install.sh\n" + features.Marker + "tools (./tools)\ndownloading\nno space left\n"
	err := featureFailed(cause, log)
	if !errors.Is(err, backends.ErrBuild) || !strings.HasPrefix(err.Error(), "the Feature tools (./tools) failed to install (docker: image build failed at step 4); the end of its log:\ndownloading\nno space left") {
		t.Errorf("featureFailed = %v", err)
	}
	if err := featureFailed(cause, "no marker"); err != cause {
		t.Errorf("without a marker: %v", err)
	}
}

func TestSubstituteEntries(t *testing.T) {
	in := []devcontainer.Metadata{{
		Mounts:       []devcontainer.Mount{{Type: "volume", Source: "dind-${devcontainerId}", Target: "/var/lib/docker"}},
		ContainerEnv: map[string]string{"W": "${containerWorkspaceFolder}/bin", "H": "${localWorkspaceFolder}"},
	}}
	a := substituteEntries(in, "/home/u/a", "/workspaces/a")
	b := substituteEntries(in, "/home/u/b", "/workspaces/b")
	if src := a[0].Mounts[0].Source; strings.Contains(src, "$") || src == b[0].Mounts[0].Source {
		t.Errorf("volume names %q and %q: want them substituted and different per workspace", src, b[0].Mounts[0].Source)
	}
	if a[0].ContainerEnv["W"] != "/workspaces/a/bin" || a[0].ContainerEnv["H"] != "/home/u/a" {
		t.Errorf("env = %v", a[0].ContainerEnv)
	}
	if in[0].Mounts[0].Source != "dind-${devcontainerId}" {
		t.Error("the input changed")
	}
}
