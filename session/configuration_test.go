package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// berth config's mergedConfiguration holds what Features bring, offline,
// and names the Features it could not resolve without the network.
func TestReadConfigurationMerged(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ws := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(ws, ".devcontainer", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("devcontainer.json", `{
		// JSONC, as people write it
		"image": "debian:12",
		"containerEnv": {"OWN": "1"},
		"features": {"./tool": {}, "registry.invalid/f/x:1": {}},
		"postCreateCommand": "echo own",
	}`)
	write("tool/devcontainer-feature.json", `{"id": "tool", "version": "1.0.0",
		"containerEnv": {"TOOL": "yes"}, "capAdd": ["SYS_PTRACE"], "postCreateCommand": ["tool", "init"]}`)
	write("tool/install.sh", "#!/bin/sh\n")

	got, err := ReadConfiguration(ws, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := got.MergedConfiguration
	want := map[string]any{
		"containerEnv":       map[string]string{"OWN": "1", "TOOL": "yes"},
		"capAdd":             []string{"SYS_PTRACE"},
		"postCreateCommands": []any{[]string{"tool", "init"}, "echo own"},
	}
	for k, v := range want {
		if diff := cmp.Diff(v, m[k]); diff != "" {
			t.Errorf("mergedConfiguration.%s (-want +got):\n%s", k, diff)
		}
	}
	if _, ok := got.Configuration["postCreateCommands"]; ok {
		t.Error("configuration is merged too; it should be the file's own")
	}
	found := false
	for _, u := range got.Unsupported {
		found = found || strings.Contains(u, "registry.invalid/f/x:1")
	}
	if !found {
		t.Errorf("unsupported %q does not name the unresolved Feature", got.Unsupported)
	}
}
