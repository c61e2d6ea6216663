package memory

import (
	"context"
	"fmt"

	"github.com/berthdev/berth/backends"
)

// SetLimits implements backends.Limiter: it records the limits, which
// nothing enforces.
func (b *Backend) SetLimits(ctx context.Context, id string, l backends.Limits) (backends.Limits, error) {
	if err := b.enter(ctx, "SetLimits"); err != nil {
		return backends.Limits{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.lookupLocked("limits", id)
	if err != nil {
		return backends.Limits{}, err
	}
	if in.state != backends.StateRunning {
		return backends.Limits{}, fmt.Errorf("memory: limits of %s: %w", id, backends.ErrNotRunning)
	}
	if l.Memory > 0 {
		in.limits.Memory = l.Memory
	}
	if l.CPUs > 0 {
		in.limits.CPUs = l.CPUs
	}
	if l.Pids > 0 {
		in.limits.Pids = l.Pids
	}
	return in.limits, nil
}

// Usage implements backends.Limiter: the running commands, pid 1 among
// them, and the limits; no memory or CPU is measured.
func (b *Backend) Usage(ctx context.Context, id string) (backends.Usage, error) {
	if err := b.enter(ctx, "Usage"); err != nil {
		return backends.Usage{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.lookupLocked("usage", id)
	if err != nil {
		return backends.Usage{}, err
	}
	if in.state != backends.StateRunning {
		return backends.Usage{}, fmt.Errorf("memory: usage of %s: %w", id, backends.ErrNotRunning)
	}
	return backends.Usage{Processes: 1 + len(in.pids), Limits: in.limits}, nil
}
