package session

import (
	"context"
	"errors"
	"time"

	"github.com/berthdev/berth/backends"
)

// Reasons of berth/instanceChanged. docs/protocol.md lists them.
const (
	ReasonKilled         = "killed"
	ReasonStoppedOutside = "stopped outside berth"
	ReasonStoppedByBerth = "stopped by berth"
	ReasonRemoved        = "removed"
	ReasonStartedOutside = "started outside berth"
	ReasonDaemonLost     = "daemon lost"
	ReasonDaemonBack     = "daemon back"
	ReasonDaemonShutdown = "daemon shutting down"
)

// instanceStateRemoved is berth/instanceChanged's state for a removed
// instance, beside the backends' running and stopped.
const instanceStateRemoved = "removed"

// ownStopWindow is how long after berth's own stop or remove an engine's
// stop event is taken as that one.
const ownStopWindow = 10 * time.Second

// Why berth lets go of an agent, for its log.
const (
	reasonEngineStopped   = "the container stopped"
	reasonEngineShutdown  = "the engine is shutting down"
	reasonEngineReconnect = "the engine came back"
)

// watch follows the backend's lifecycle events until the manager closes.
func (m *Manager) watch(wt backends.Watcher) {
	if err := wt.Watch(m.ctx, m.event); err != nil && m.ctx.Err() == nil {
		m.log.Warn("not watching the engine's events", "err", err)
	}
}

// event handles one backend event, on the watcher's goroutine.
func (m *Manager) event(ev backends.Event) {
	switch ev.Kind {
	case backends.EventDaemonLost:
		m.log.Warn("lost the engine's event stream")
		for _, w := range m.known() {
			w.notify("", ReasonDaemonLost)
		}
	case backends.EventDaemonShutdown:
		m.log.Warn("the engine is shutting down: letting go of its execs")
		for _, w := range m.known() {
			w.forget()
			w.releaseEngine(reasonEngineShutdown)
			w.notify("", ReasonDaemonShutdown)
		}
	case backends.EventDaemonBack:
		m.log.Info("the engine is back")
		for _, w := range m.known() {
			w.daemonBack()
		}
	default:
		m.mu.Lock()
		w := m.workspaces[ev.Workspace]
		m.mu.Unlock()
		if w == nil {
			for _, k := range m.known() {
				if r, ok := k.current(); ok && r.ID == ev.ID {
					w = k
				}
			}
		}
		if w != nil {
			w.instanceEvent(ev)
		}
	}
}

// instanceEvent reacts to a change of the workspace's instance: berth's
// own, or one made outside berth.
func (w *Workspace) instanceEvent(ev backends.Event) {
	w.mu.Lock()
	own := time.Since(w.ownStopAt) < ownStopWindow
	stale := w.ready != nil && ev.ID != "" && w.ready.ID != ev.ID
	w.mu.Unlock()
	if stale {
		return // an instance this workspace no longer has, such as one recreate removed
	}
	switch ev.Kind {
	case backends.EventStarted:
		if !w.op.TryLock() {
			return // berth is starting it itself
		}
		w.op.Unlock()
		w.mu.Lock()
		was := w.lastState
		w.mu.Unlock()
		w.forget() // the next call runs postStartCommand for this start
		if was != string(backends.StateRunning) {
			w.notify(string(backends.StateRunning), ReasonStartedOutside)
		}
	case backends.EventStopped, backends.EventKilled:
		w.forget()
		w.dropRunner(reasonEngineStopped)
		reason := ReasonStoppedOutside
		switch {
		case own:
			reason = ReasonStoppedByBerth
		case ev.Kind == backends.EventKilled:
			reason = ReasonKilled
		}
		w.notify(string(backends.StateStopped), reason)
	case backends.EventRemoved:
		w.forget()
		w.dropRunner(reasonEngineStopped)
		w.notify(instanceStateRemoved, ReasonRemoved)
	case backends.EventHealth:
		if cfg := w.cachedConfig(); cfg != nil && cfg.Berth.Service != nil {
			return // berth's own check reports a service's health
		}
		w.notifyHealth(ev.Health, "")
	}
}

// daemonBack re-reads the instance after the engine came back, since its
// events in between were lost.
func (w *Workspace) daemonBack() {
	w.forget()
	ctx, cancel := context.WithTimeout(w.m.ctx, metaTimeout)
	defer cancel()
	inst, err := w.find(ctx)
	// An agent behind the door needs no daemon: one still alive on the same
	// start of the instance carries on, and so do its processes.
	if err != nil || inst.State != backends.StateRunning || !w.runnerLives(inst) {
		w.dropRunner(reasonEngineReconnect)
	}
	switch {
	case errors.Is(err, backends.ErrNotFound):
		w.notify(instanceStateRemoved, ReasonDaemonBack)
	case err != nil:
		w.log.Info("engine back, but the instance could not be read", "err", err)
	default:
		w.notify(string(inst.State), ReasonDaemonBack)
	}
}

// runnerLives reports whether the workspace's agent is alive and serves
// this start of inst.
func (w *Workspace) runnerLives(inst backends.Instance) bool {
	w.mu.Lock()
	e := w.runner
	w.mu.Unlock()
	return e != nil && e.client != nil && e.key == runnerKey(inst) && e.client.Alive()
}

// notify tells every client that used the workspace its instance's new
// state; "" repeats the last state berth knew.
func (w *Workspace) notify(state, reason string) {
	w.mu.Lock()
	if state == "" {
		state = w.lastState
		if state == "" {
			state = string(backends.StateStopped)
		}
	} else {
		w.lastState = state
	}
	clients := make([]*Client, 0, len(w.clients))
	for c := range w.clients {
		clients = append(clients, c)
	}
	w.mu.Unlock()
	if len(clients) > 0 {
		w.log.Info("instance changed", "state", state, "reason", reason)
	}
	for _, c := range clients {
		c.sink.InstanceChanged(w.path, state, reason)
	}
}
