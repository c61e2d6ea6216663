package memory_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestConformance runs the suite every backend must pass. The memory
// backend passes all of it: its sh, ps and users are enough for the suite's
// commands, and AddForeign and RemoveExternally stand in for the engine's
// own tools.
func TestConformance(t *testing.T) {
	b := memory.New(memory.Options{
		Images: map[string]string{backendtest.Image(): ""},
		Users:  map[string]int{"root": 0, "user": 1000, "nobody": 65534},
	})
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Image:   backendtest.Image(),
		RemoveBehind: func(ctx context.Context, id string) error {
			return b.RemoveExternally(id)
		},
		CreateForeign: func(ctx context.Context, name string) (func(), error) {
			id, err := b.AddForeign(name)
			if err != nil {
				return nil, err
			}
			return func() { _ = b.RemoveExternally(id) }, nil
		},
	})
}
