package incus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
)

// Watching the daemon. incusd streams lifecycle events on its events
// websocket; the watcher keeps those of berth's instances:
//
//	instance-started, instance-restarted  → started
//	instance-shutdown asked for by a client → stopped
//	instance-shutdown by the instance itself → killed (its init ended)
//	instance-stopped (a forced stop)       → stopped
//	instance-deleted                       → removed
//
// Events name the instance only, so the watcher learns which names are
// berth's from a List when it connects and asks incusd about any other
// name it meets.
//
// A shutting-down incusd keeps its events stream open and answers reads,
// but refuses every change with 503 "Shutting down" while it waits for
// open execs to end. So every heartbeat the watcher sends a change that
// incusd refuses in any case (an exec in an instance whose name can't
// exist): 503 means it is shutting down, no answer means it is frozen or
// gone.
var (
	heartbeat    = 3 * time.Second // tests shorten it
	probeTimeout = 3 * time.Second
)

const (
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 2 * time.Second
	lookupTimeout = 5 * time.Second

	// probePath is an exec in an instance that can't exist: instance names
	// have no dots.
	probePath = "/1.0/instances/berth.shutdown.probe/exec"
)

var _ backends.Watcher = (*Backend)(nil)

// Watch implements backends.Watcher. It runs in the caller's goroutine
// with one reader goroutine per connection, which ends before the next
// connection and before Watch returns. A connection attempt to a frozen
// incusd ends with ctx, or after the websocket handshake timeout (5 s).
func (b *Backend) Watch(ctx context.Context, fn func(backends.Event)) error {
	w := &watch{b: b, fn: fn, known: map[string]knownInstance{}}
	backoff := minBackoff
	for {
		err := w.follow(ctx, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !w.down {
			w.down = true
			b.log.Warn("incus events stream lost; reconnecting", "err", err)
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

// watch is Watch's state, used from its goroutine only.
type watch struct {
	b    *Backend
	fn   func(backends.Event)
	down bool // daemon-lost or daemon-shutdown reported, daemon-back not yet

	known map[string]knownInstance // by name: berth's instances, and others as foreign
}

type knownInstance struct {
	id, workspace string
	foreign       bool
}

// follow connects, reads the stream until it breaks, a probe gets no
// answer, or ctx ends, and calls reset once it is connected.
func (w *watch) follow(ctx context.Context, reset func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	conn, err := w.b.c.Events(ctx, rest.EventTypeLifecycle)
	if err != nil {
		return err
	}
	msgs := make(chan []byte)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: ends when conn is closed
		defer wg.Done()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- data:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		_ = conn.Close()
		wg.Wait()
	}()

	// Learn berth's instances only now that no event can slip by.
	shutting, err := w.probe(ctx)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	list, err := w.b.List(lctx)
	cancel()
	if err != nil {
		return err
	}
	clear(w.known)
	for _, inst := range list {
		w.known[inst.Name] = knownInstance{id: inst.ID, workspace: inst.Workspace}
	}
	reset()
	w.health(shutting)

	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case data := <-msgs:
			w.handle(ctx, data)
		case <-tick.C:
			shutting, err := w.probe(ctx)
			if err != nil {
				return err
			}
			w.health(shutting)
		}
	}
}

// health reports a change between a daemon that works and one that is
// shutting down, from a probe's answer on a live stream.
func (w *watch) health(shutting bool) {
	switch {
	case shutting && !w.down:
		w.down = true
		w.b.log.Warn("incusd is shutting down")
		w.fn(backends.Event{Kind: backends.EventDaemonShutdown})
	case !shutting && w.down:
		w.down = false
		w.fn(backends.Event{Kind: backends.EventDaemonBack})
	}
}

// probe asks incusd for a change it refuses in any case, and reports
// whether it refused because it is shutting down. An error means no
// answer.
func (w *watch) probe(ctx context.Context) (shutting bool, err error) {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	_, err = w.b.c.Do(pctx, http.MethodPost, probePath, nil, rest.ExecPost{Command: []string{"true"}}, "")
	var status *rest.StatusError
	switch {
	case err == nil:
		return false, nil // can't be, the name being invalid; and it did answer
	case errors.As(err, &status):
		return status.Code == http.StatusServiceUnavailable && strings.Contains(strings.ToLower(err.Error()), "shutting down"), nil
	case pctx.Err() != nil && ctx.Err() == nil:
		return false, fmt.Errorf("incusd did not answer within %s", probeTimeout)
	default:
		return false, err
	}
}

// handle maps one message of the stream.
func (w *watch) handle(ctx context.Context, data []byte) {
	var ev rest.Event
	if err := json.Unmarshal(data, &ev); err != nil || ev.Type != rest.EventTypeLifecycle {
		return
	}
	var lc rest.EventLifecycle
	if err := json.Unmarshal(ev.Metadata, &lc); err != nil {
		return
	}
	name := lc.Name
	if name == "" {
		name = nameFromSource(lc.Source)
	}
	if name == "" {
		return
	}
	var kind backends.EventKind
	switch lc.Action {
	case rest.LifecycleInstanceCreated:
		delete(w.known, name)
		w.lookup(ctx, name)
		return
	case rest.LifecycleInstanceStarted:
		kind = backends.EventStarted
	case rest.LifecycleInstanceRestarted:
		// incusd 6.0 announces a restart with this event alone, even when
		// the instance's last event was its start.
		kind = backends.EventStarted
	case rest.LifecycleInstanceShutdown:
		kind = backends.EventKilled
		if lc.Requestor != nil || w.b.stoppedRecently(name) {
			kind = backends.EventStopped
		}
	case rest.LifecycleInstanceStopped:
		kind = backends.EventStopped
	case rest.LifecycleInstanceDeleted:
		kind = backends.EventRemoved
	default:
		return
	}
	k, ok := w.lookup(ctx, name)
	if kind == backends.EventRemoved {
		delete(w.known, name)
	}
	if !ok || k.foreign {
		return
	}
	w.fn(backends.Event{Kind: kind, ID: k.id, Name: name, Workspace: k.workspace})
}

// lookup returns what the watcher knows of name, asking incusd when it
// knows nothing. ok is false when incusd could not say.
func (w *watch) lookup(ctx context.Context, name string) (knownInstance, bool) {
	if k, ok := w.known[name]; ok {
		return k, true
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	in, err := w.b.getManaged(lctx, name)
	var k knownInstance
	switch {
	case err == nil:
		inst := fromAPI(in)
		k = knownInstance{id: inst.ID, workspace: inst.Workspace}
	case errors.Is(err, backends.ErrForeign):
		k = knownInstance{foreign: true}
	default:
		w.b.log.Debug("incus events: cannot tell whose instance this is", "instance", name, "err", err)
		return knownInstance{}, false
	}
	w.known[name] = k
	return k, true
}

// stoppedRecently reports whether this process asked for name's stop
// within the last stopWindow. A clean stop that outlives its timeout ends
// in an instance-shutdown without requestor, as an init that exits on its
// own does; so does one a cluster member carried out for another, slowly.
func (b *Backend) stoppedRecently(name string) bool {
	v, ok := b.stops.Load(name)
	return ok && time.Since(v.(time.Time)) < stopWindow
}

// stopWindow is how long after asking for a stop an instance's shutdown
// counts as that stop.
const stopWindow = 30 * time.Second

// nameFromSource takes the instance name from a lifecycle event's source,
// /1.0/instances/NAME?project=P.
func nameFromSource(source string) string {
	u, err := url.Parse(source)
	if err != nil {
		return ""
	}
	rest, ok := strings.CutPrefix(u.Path, "/1.0/instances/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return ""
	}
	return rest
}
