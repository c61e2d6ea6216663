package session

import (
	"context"
	"fmt"
	"time"

	"github.com/berthdev/berth/backends"
)

// SetLimits sets the limits of the client's instances
// (initializationOptions.limits); each field set wins over the
// configuration's when berth creates or brings up an instance.
func (c *Client) SetLimits(l backends.Limits) {
	c.mu.Lock()
	c.limits = l
	c.mu.Unlock()
}

// Limits returns what SetLimits set.
func (c *Client) Limits() backends.Limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limits
}

// overLimits is base with each field set in over replacing base's.
func overLimits(base, over backends.Limits) backends.Limits {
	if over.Memory > 0 {
		base.Memory = over.Memory
	}
	if over.CPUs > 0 {
		base.CPUs = over.CPUs
	}
	if over.Pids > 0 {
		base.Pids = over.Pids
	}
	return base
}

// limiter returns the backend's Limiter, or ErrNotSupported.
func (m *Manager) limiter() (backends.Limiter, error) {
	l, ok := m.backend.(backends.Limiter)
	if !ok {
		return nil, fmt.Errorf("%s: resource limits: %w", m.backend.Name(), backends.ErrNotSupported)
	}
	return l, nil
}

// applyLimits brings a running instance's limits to want, changing only
// those that differ.
func (w *Workspace) applyLimits(ctx context.Context, inst backends.Instance, want backends.Limits) error {
	l, err := w.m.limiter()
	if err != nil || inst.State != backends.StateRunning {
		return err
	}
	have, err := l.SetLimits(ctx, inst.ID, backends.Limits{})
	if err != nil {
		return err
	}
	change := want
	if change.Memory == have.Memory {
		change.Memory = 0
	}
	if change.CPUs == have.CPUs {
		change.CPUs = 0
	}
	if change.Pids == have.Pids {
		change.Pids = 0
	}
	if change.IsZero() {
		return nil
	}
	w.log.Info("applying changed limits", "instance", inst.Name, "memory", change.Memory, "cpus", change.CPUs, "pids", change.Pids)
	_, err = l.SetLimits(ctx, inst.ID, change)
	return err
}

// SetLimits changes the limits of the workspace's running instance
// without restarting it (berth/limits): the fields of l that are set.
// It returns the limits now in effect.
func (w *Workspace) SetLimits(ctx context.Context, l backends.Limits) (backends.Limits, error) {
	lim, err := w.m.limiter()
	if err != nil {
		return backends.Limits{}, err
	}
	inst, err := w.find(ctx)
	if err != nil {
		return backends.Limits{}, err
	}
	if inst.State != backends.StateRunning {
		return backends.Limits{}, fmt.Errorf("limits of %s: %w: start it with berth/up", inst.Name, backends.ErrNotRunning)
	}
	got, err := lim.SetLimits(ctx, inst.ID, l)
	if err != nil {
		return backends.Limits{}, w.m.engineErr(ctx, "limits", err)
	}
	w.mu.Lock()
	w.memLimit = got.Memory > 0
	w.mu.Unlock()
	return got, nil
}

// Usage reads what the workspace's running instance uses now, and its
// limits; it takes a second or two.
func (w *Workspace) Usage(ctx context.Context, inst backends.Instance) (backends.Usage, error) {
	lim, err := w.m.limiter()
	if err != nil {
		return backends.Usage{}, err
	}
	u, err := lim.Usage(ctx, inst.ID)
	if err != nil {
		return backends.Usage{}, w.m.engineErr(ctx, "usage", err)
	}
	return u, nil
}

// oomCheck is how long berth asks the engine whether a killed process
// was killed for the memory limit.
const oomCheck = 5 * time.Second

// oomMark marks where the instance's OOM kills stand before a process
// starts; nil when the backend can't tell, or when berth knows of no
// memory limit on the instance, which spares every exec the engine call.
func (w *Workspace) oomMark(ctx context.Context, id string) *backends.OOMMark {
	w.mu.Lock()
	limited := w.memLimit
	w.mu.Unlock()
	m := w.m
	r, ok := m.backend.(backends.OOMReporter)
	if !ok || !limited {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, oomCheck)
	defer cancel()
	mark, err := r.OOMMark(ctx, id)
	if err != nil {
		m.log.Debug("no OOM mark", "instance", id, "err", err)
		return nil
	}
	return &mark
}

// oomKilled says whether a process that ended with st was killed by the
// kernel for the instance's memory limit: it died of SIGKILL, and the
// instance's OOM kills grew since mark.
func (m *Manager) oomKilled(ctx context.Context, id string, st backends.ExitStatus, mark *backends.OOMMark) bool {
	if mark == nil || st.Code != 128+9 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, oomCheck)
	defer cancel()
	oom, err := m.backend.(backends.OOMReporter).OOMSince(ctx, id, *mark)
	if err != nil {
		m.log.Debug("no OOM answer", "instance", id, "err", err)
	}
	return oom
}
