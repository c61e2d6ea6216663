package session

import (
	"context"
	"time"

	"github.com/berthdev/berth/devcontainer"
)

// idleStopTimeout bounds stopping a command-lifetime container once it
// is idle.
const idleStopTimeout = time.Minute

// processStarted counts a process of w's instance, for the command
// lifetime.
func (w *Workspace) processStarted() {
	w.mu.Lock()
	w.running++
	w.mu.Unlock()
}

// idleGrace is how long a command-lifetime container outlives its last
// process while its client lives: a lifecycle hook's end is followed by
// the command it ran for, and an editor's commands by the next one.
const idleGrace = 2 * time.Second

// processEnded uncounts a process; the last one of a command-lifetime
// container stops it (stopIdle), after idleGrace or when ctx, the
// client's, ends.
func (w *Workspace) processEnded(ctx context.Context, r Ready) {
	w.mu.Lock()
	w.running--
	idle := w.running <= 0
	w.mu.Unlock()
	if !idle || r.Config == nil || r.Config.EffectiveLifetime() != devcontainer.LifetimeCommand {
		return
	}
	select {
	case <-time.After(idleGrace):
	case <-ctx.Done():
	}
	w.stopIdle(ctx, &r)
}

// stopIdle stops a command-lifetime container when nothing uses it: no
// process runs in it, of this berth process or, as the agent counts them,
// of another, and no editor session, of this berth process or another, is
// attached. ctx may be ending (the client is closing): the stop outlives
// it.
func (w *Workspace) stopIdle(ctx context.Context, r *Ready) {
	w.mu.Lock()
	busy := w.running > 0 || w.editors > 0
	w.mu.Unlock()
	if busy || r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idleStopTimeout)
	defer cancel()
	if n := w.otherSessions(ctx, r.ID); n > 0 {
		return
	}
	if n := w.liveProcesses(ctx, *r); n > 0 {
		w.log.Info("lifetime command: processes of other berth processes still run; the container stays", "processes", n)
		return
	}
	w.mu.Lock()
	busy = w.running > 0 || w.editors > 0
	w.mu.Unlock()
	if busy {
		return
	}
	w.log.Info("lifetime command: the last process exited and no editor is attached; stopping the container", "instance", r.Name)
	if err := w.Down(ctx, false); err != nil {
		w.log.Warn("lifetime command: stop failed", "err", err)
	}
}

// liveProcesses asks the agent how many processes of every berth process
// run in r's instance, berth's own helpers and the service left out. An
// agent that can't say (no agent, or one older than agent.ProtoService)
// counts as none: only this berth's own are known then.
func (w *Workspace) liveProcesses(ctx context.Context, r Ready) int {
	ac, reason := w.agent(ctx, r)
	if ac == nil {
		w.log.Debug("lifetime command: only this berth's processes are counted", "why", reason)
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	n, err := ac.Processes(ctx)
	if err != nil {
		w.log.Debug("lifetime command: only this berth's processes are counted", "err", err)
		return 0
	}
	return n
}
