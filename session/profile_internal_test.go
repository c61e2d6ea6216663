package session

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
)

// An instance's files on the host go with it, unless another berth process
// has made the workspace a new instance since: it shares them.
func TestForgetHost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replaced bool
	}{
		{"gone", false},
		{"replaced by another berth", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			mem := memory.New(memory.Options{Local: true})
			m := NewManager(mem, slog.New(slog.DiscardHandler), "img")
			t.Cleanup(m.Close)
			ws := t.TempDir()
			dir := filepath.Join(t.TempDir(), "berth-ws")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			record := agent.RecordPath(dir)
			if err := os.WriteFile(record, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			old := backends.Instance{ID: "old", Name: "berth-ws", Workspace: ws, Mounts: []backends.Mount{{Host: dir, Container: agent.RunDir}}}
			if tc.replaced {
				if _, _, err := mem.Ensure(ctx, backends.Spec{Name: "berth-ws", Workspace: ws, Image: "img"}); err != nil {
					t.Fatal(err)
				}
			}
			m.forgetHost(ctx, old)
			for _, p := range []string{dir, record} {
				if _, err := os.Stat(p); (err == nil) != tc.replaced {
					t.Errorf("after forgetHost: stat %s = %v; want it kept: %t", p, err, tc.replaced)
				}
			}
		})
	}
}
