package docker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/berthdev/berth/backends"
)

// Watching the engine. The events API streams what happens to containers;
// the watcher keeps only berth's and only the actions it maps:
//
//	start                  → started ("restart" follows a "start" and adds nothing)
//	kill, die, stop        → stopped (docker stop, docker restart, berth's Stop)
//	die otherwise          → killed (the main process exited, docker kill, rm -f)
//	destroy                → removed
//
// A stop sends the stop signal (a "kill" event, logged before the "die")
// and logs "stop" once the container has died. So a "die" that follows a
// kill by a signal other than SIGKILL is held for up to dieGrace to see
// whether its "stop" comes; the engine may also log the "stop" first,
// which is remembered. Any other "die" is reported at once. Events of one
// instance keep their order; a held "die" can let another instance's event
// pass it.
//
// A frozen engine sends nothing, so a ping every heartbeat tells it from a
// quiet one. Docker announces no shutdown: a stopping dockerd shows up as
// a lost stream.
const (
	dieGrace      = 2 * time.Second
	connectWait   = 5 * time.Second // bounds the events request until its headers come
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 2 * time.Second
	actionStart   = events.ActionStart
	actionRestart = events.ActionRestart
	actionDie     = events.ActionDie
	actionStop    = events.ActionStop
	podmanRemove  = "remove"
	actionKill    = events.ActionKill
	actionDestroy = events.ActionDestroy
	actionHealth  = events.ActionHealthStatus // "health_status: healthy" and the like
	sigKill       = "9"
)

// How often the watcher pings, and how long a ping may take; tests
// shorten them.
var (
	heartbeat   = 3 * time.Second
	pingTimeout = 3 * time.Second
)

var _ backends.Watcher = (*Backend)(nil)

// Watch implements backends.Watcher. It runs in the caller's goroutine;
// the engine client's reader goroutine of each connection ends before the
// next connection starts and before Watch returns.
func (b *Backend) Watch(ctx context.Context, fn func(backends.Event)) error {
	m := newEventMapper(fn)
	m.podman = b.name == PodmanName
	lost := false
	backoff := minBackoff
	for {
		err := b.watchOnce(ctx, m, func() {
			backoff = minBackoff
			if lost {
				lost = false
				fn(backends.Event{Kind: backends.EventDaemonBack})
			}
		})
		m.flush() // a held die whose stop did not come
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !lost {
			lost = true
			b.log.Warn("docker events stream lost; reconnecting", "err", err)
			fn(backends.Event{Kind: backends.EventDaemonLost})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// watchOnce follows one events stream until it breaks, the engine stops
// answering pings, or ctx ends. It calls connected once the stream is up.
func (b *Backend) watchOnce(ctx context.Context, m *eventMapper, connected func()) error {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	_, err := b.cli.Ping(pctx)
	cancel()
	if err != nil {
		return err
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", backends.LabelManaged+"=true"),
	)
	// Podman matches only the first of several event filters (and names
	// destroy "remove"): it gets every action, which the mapper sorts.
	for _, a := range []events.Action{actionStart, actionRestart, actionKill, actionDie, actionStop, actionDestroy, actionHealth} {
		if b.name != PodmanName {
			args.Add("event", string(a))
		}
	}
	slow := time.AfterFunc(connectWait, cancel)
	msgs, errs := b.cli.Events(sctx, events.ListOptions{Filters: args})
	up := slow.Stop()
	// The client's goroutine closes errs when it ends, which cancel
	// brings about; wait for it whatever happens below.
	defer func() {
		cancel()
		for range errs {
		}
	}()
	if !up {
		return errors.New("events request got no answer")
	}

	// Events returned once the engine answered (a failed request, which
	// the ping just before makes unlikely, comes on errs next).
	connected()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		var due <-chan time.Time
		if d, ok := m.nextDue(); ok {
			due = time.After(time.Until(d))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case msg := <-msgs:
			m.handle(msg, time.Now())
		case now := <-due:
			m.expire(now)
		case <-tick.C:
			pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
			_, err := b.cli.Ping(pctx)
			pcancel()
			if err != nil {
				return err
			}
		}
	}
}

// eventMapper turns the engine's container actions into berth's events.
// It is used from Watch's goroutine only.
type eventMapper struct {
	fn      func(backends.Event)
	held    map[string]heldDie            // by container id: a die waiting for its stop
	stopped map[string]bool               // by container id: a stop that came before its die
	signal  map[string]string             // by container id: the first kill's signal since the start
	last    map[string]backends.EventKind // by container id: the last kind reported
	// podman: the engine is Podman, which logs no kill or stop for a
	// stop (only its die) and "remove" for destroy.
	podman bool
}

type heldDie struct {
	ev  backends.Event
	due time.Time
}

func newEventMapper(fn func(backends.Event)) *eventMapper {
	return &eventMapper{
		fn:      fn,
		held:    map[string]heldDie{},
		stopped: map[string]bool{},
		signal:  map[string]string{},
		last:    map[string]backends.EventKind{},
	}
}

func (m *eventMapper) emit(ev backends.Event) {
	m.last[ev.ID] = ev.Kind
	if ev.Kind == backends.EventRemoved {
		delete(m.last, ev.ID)
	}
	m.fn(ev)
}

func (m *eventMapper) handle(msg events.Message, now time.Time) {
	id := msg.Actor.ID
	ev := backends.Event{
		ID:        id,
		Name:      msg.Actor.Attributes["name"],
		Workspace: msg.Actor.Attributes[backends.LabelWorkspace],
	}
	switch msg.Action {
	case actionStart, actionRestart:
		m.release(id)
		delete(m.stopped, id)
		delete(m.signal, id)
		if msg.Action == actionRestart && m.last[id] == backends.EventStarted {
			return // its start was reported
		}
		ev.Kind = backends.EventStarted
		m.emit(ev)
	case actionKill:
		if _, ok := m.signal[id]; !ok {
			m.signal[id] = msg.Actor.Attributes["signal"]
		}
	case actionDie:
		m.release(id)
		sig, signalled := m.signal[id]
		delete(m.signal, id)
		switch {
		case m.stopped[id]:
			delete(m.stopped, id)
			ev.Kind = backends.EventStopped
			m.emit(ev)
		case m.podman && !signalled && cleanExit(msg.Actor.Attributes["exitCode"]):
			// The keep-alive and berth's init exit 0 on the stop signal.
			ev.Kind = backends.EventStopped
			m.emit(ev)
		case signalled && sig != sigKill:
			ev.Kind = backends.EventKilled // unless its stop comes
			m.held[id] = heldDie{ev: ev, due: now.Add(dieGrace)}
		default:
			ev.Kind = backends.EventKilled
			m.emit(ev)
		}
	case actionStop:
		h, ok := m.held[id]
		if !ok {
			m.stopped[id] = true
			return
		}
		delete(m.held, id)
		h.ev.Kind = backends.EventStopped
		m.emit(h.ev)
	case actionDestroy, podmanRemove:
		m.release(id)
		delete(m.stopped, id)
		delete(m.signal, id)
		ev.Kind = backends.EventRemoved
		m.emit(ev)
	case events.ActionHealthStatusHealthy, events.ActionHealthStatusUnhealthy:
		// Not a change of state: last, which restarts read, stays.
		ev.Kind = backends.EventHealth
		ev.Health = strings.TrimPrefix(string(msg.Action), string(actionHealth)+": ")
		m.fn(ev)
	}
}

// cleanExit says a die's exit code is a clean exit or SIGTERM's.
func cleanExit(code string) bool { return code == "0" || code == "143" }

// release reports id's held die, if any, as killed.
func (m *eventMapper) release(id string) {
	if h, ok := m.held[id]; ok {
		delete(m.held, id)
		m.emit(h.ev)
	}
}

// nextDue returns when the earliest held die is due.
func (m *eventMapper) nextDue() (time.Time, bool) {
	var first time.Time
	for _, h := range m.held {
		if first.IsZero() || h.due.Before(first) {
			first = h.due
		}
	}
	return first, !first.IsZero()
}

// expire reports the held dies that are due, oldest first.
func (m *eventMapper) expire(now time.Time) {
	for {
		id, ok := "", false
		var due time.Time
		for hid, h := range m.held {
			if !h.due.After(now) && (!ok || h.due.Before(due)) {
				id, due, ok = hid, h.due, true
			}
		}
		if !ok {
			return
		}
		m.release(id)
	}
}

// flush reports every held die, when the stream ends.
func (m *eventMapper) flush() {
	m.expire(time.Now().Add(dieGrace))
	clear(m.stopped)
	clear(m.signal)
}
