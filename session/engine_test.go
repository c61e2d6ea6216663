package session

import (
	"log/slog"
	"testing"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends/memory"
)

// What a local and a remote engine allow, and --no-fastpath; without the
// agent there is no fast path either.
func TestManagerEngine(t *testing.T) {
	tests := []struct {
		name   string
		local  bool
		noFast bool
		agent  bool
		want   Engine
	}{
		{"local", true, false, true, Engine{BindMounts: true, FastPath: true}},
		{"local, --no-fastpath", true, true, true, Engine{BindMounts: true}},
		{"local, no agent", true, false, false, Engine{BindMounts: true}},
		{"remote", false, false, true, Engine{Remote: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager(memory.New(memory.Options{Local: tt.local}), slog.New(slog.DiscardHandler), "img")
			defer m.Close()
			m.SetFastPath(!tt.noFast)
			if tt.agent {
				m.SetAgents(agent.SetOf(&agent.Binary{GOOS: "linux", GOARCH: "amd64", Hash: "x"}), "")
			}
			if got := m.Engine(); got != tt.want {
				t.Errorf("Engine() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
