package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/berthdev/berth/backends"
)

// enter counts a call of method and applies the injected faults: it waits
// while the engine is frozen, then fails when it is down or when SetError
// set an error for method.
func (b *Backend) enter(ctx context.Context, method string) error {
	b.mu.Lock()
	b.calls[method]++
	for b.frozen {
		thaw := b.thaw
		b.mu.Unlock()
		select {
		case <-thaw:
		case <-ctx.Done():
			return fmt.Errorf("memory: %s: %w: engine frozen: %w", method, backends.ErrUnavailable, ctx.Err())
		}
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", method, err)
	}
	if b.down {
		return fmt.Errorf("memory: %s: %w: engine is down (SetDown(true))", method, backends.ErrUnavailable)
	}
	if err := b.errs[method]; err != nil {
		return err
	}
	return nil
}

// Calls returns how many times method has been called, failed calls
// included: a method of the Backend ("Ensure", "Exec", "Watch", …) or of
// its processes ("Signal", "Kill"). Fault injection and test helpers such
// as StopExternally are not counted.
func (b *Backend) Calls(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

// ResetCalls sets every call counter to zero.
func (b *Backend) ResetCalls() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.calls)
}

// SetError makes every later call of method return err (as is, so wrap a
// sentinel if the test needs one), until SetError(method, nil).
func (b *Backend) SetError(method string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.errs, method)
		return
	}
	b.errs[method] = err
}

// SetDown takes the engine down or brings it back. While it is down every
// call fails at once with backends.ErrUnavailable and watchers see
// EventDaemonLost; EventDaemonBack follows when it is up and not frozen.
// Running processes are not affected.
func (b *Backend) SetDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.lostLocked()
	b.down = down
	b.lostChangedLocked(was)
}

// Freeze makes every later call block until Thaw, or until the call's ctx
// ends, when it fails with an error that wraps both backends.ErrUnavailable
// and ctx.Err(). Watchers see EventDaemonLost. Running processes are not
// affected.
func (b *Backend) Freeze() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.frozen {
		return
	}
	was := b.lostLocked()
	b.frozen = true
	b.thaw = make(chan struct{})
	b.lostChangedLocked(was)
}

// Thaw releases the calls Freeze held.
func (b *Backend) Thaw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.frozen {
		return
	}
	was := b.lostLocked()
	b.frozen = false
	close(b.thaw)
	b.lostChangedLocked(was)
}

// lostLocked reports whether watchers have lost the engine.
func (b *Backend) lostLocked() bool { return b.down || b.frozen }

func (b *Backend) lostChangedLocked(was bool) {
	switch now := b.lostLocked(); {
	case now && !was:
		b.publishLocked(backends.Event{Kind: backends.EventDaemonLost})
	case !now && was:
		b.publishLocked(backends.Event{Kind: backends.EventDaemonBack})
	}
}

// AnnounceShutdown sends watchers EventDaemonShutdown, as an engine does
// before a graceful shutdown. It changes nothing else: follow it with
// SetDown(true) to take the engine down.
func (b *Backend) AnnounceShutdown() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publishLocked(backends.Event{Kind: backends.EventDaemonShutdown})
}

// external finds an instance for a change made outside berth, by
// workspace, id or name. Foreign instances count.
func (b *Backend) externalLocked(op, ref string) (*instance, error) {
	in := b.byWS[ref]
	if in == nil {
		in = b.instances[ref]
	}
	if in == nil {
		in = b.byName[ref]
	}
	if in == nil || in.pending != nil {
		return nil, fmt.Errorf("memory: %s %s: %w", op, ref, backends.ErrNotFound)
	}
	return in, nil
}

// StopExternally stops the instance of ref (a workspace, instance id or
// name) as a user would with the engine's own tools: its processes end with
// exit code 137, watchers see EventStopped, and nothing is counted as a
// call. It returns once the processes have ended. Stopping a stopped
// instance does nothing.
func (b *Backend) StopExternally(ref string) error {
	return b.haltExternally("stop", ref, backends.EventStopped, false)
}

// KillExternally is StopExternally as if the instance's main process had
// died: watchers see EventKilled.
func (b *Backend) KillExternally(ref string) error {
	return b.haltExternally("kill", ref, backends.EventKilled, false)
}

// RemoveExternally deletes the instance of ref behind berth's back; a
// running one is killed first (EventKilled, then EventRemoved).
func (b *Backend) RemoveExternally(ref string) error {
	return b.haltExternally("remove", ref, backends.EventKilled, true)
}

func (b *Backend) haltExternally(op, ref string, kind backends.EventKind, remove bool) error {
	b.mu.Lock()
	in, err := b.externalLocked(op, ref)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	procs := b.haltLocked(in, kind)
	if remove {
		b.dropLocked(in)
		b.publishLocked(in.event(backends.EventRemoved))
	}
	b.mu.Unlock()
	return endAll(context.Background(), procs)
}

// StartExternally starts a stopped instance behind berth's back; watchers
// see EventStarted.
func (b *Backend) StartExternally(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.externalLocked("start", ref)
	if err != nil {
		return err
	}
	if in.state != backends.StateRunning {
		in.state = backends.StateRunning
		b.publishLocked(in.event(backends.EventStarted))
	}
	return nil
}

// AddForeign creates a running instance named name without berth's labels,
// as another tool would, and returns its id. Ensure for a spec of that name
// fails with backends.ErrForeign, List leaves it out, and berth's calls on
// its id fail with ErrForeign. RemoveExternally(id) deletes it.
func (b *Backend) AddForeign(name string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byName[name] != nil {
		return "", fmt.Errorf("memory: add foreign: name %s is taken", name)
	}
	b.nextID++
	id := fmt.Sprintf("mem-%d", b.nextID)
	in := &instance{
		id: id, name: name, image: "foreign", platform: b.platform, labels: map[string]string{},
		init: "foreign", created: b.now(), fs: newFS(b.now), state: backends.StateRunning,
		execs: map[*process]struct{}{}, pids: map[int]string{}, nextPID: 1,
	}
	b.instances[id] = in
	b.byName[name] = in
	return id, nil
}

// FS returns the filesystem of the instance of ref (a workspace, instance
// id or name), for a test to read or seed.
func (b *Backend) FS(ref string) (*FS, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.externalLocked("fs", ref)
	if err != nil {
		return nil, err
	}
	return in.fs, nil
}

// Processes returns the command lines of the commands running in the
// instance of ref, sorted, as ps would show them without pid 1.
func (b *Backend) Processes(ref string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.externalLocked("processes", ref)
	if err != nil {
		return nil, err
	}
	out := slices.Collect(maps.Values(in.pids))
	slices.Sort(out)
	return out, nil
}
