package incus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
)

// fakeIncusd serves as much of incusd's API as Watch uses: the events
// websocket, the instance list and lookups, and the shutdown probe.
type fakeIncusd struct {
	t    *testing.T
	stop chan struct{} // closed at cleanup; hanging handlers end on it

	mu        sync.Mutex
	instances map[string]map[string]string // name → config
	streams   chan *websocket.Conn         // each events connection, as it comes
	shutting  bool                         // the probe gets 503 Shutting down
	frozen    bool                         // nothing answers but the open streams
}

func newFakeIncusd(t *testing.T) *fakeIncusd {
	t.Helper()
	f := &fakeIncusd{t: t, stop: make(chan struct{}), instances: map[string]map[string]string{}, streams: make(chan *websocket.Conn, 10)}
	sock := filepath.Join(t.TempDir(), "unix.socket")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(f.stop)
		srv.Close()
		<-served
	})
	t.Setenv("INCUS_SOCKET", sock)
	return f
}

func (f *fakeIncusd) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *fakeIncusd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	frozen, shutting := f.frozen, f.shutting
	f.mu.Unlock()
	if frozen {
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	reply := func(code int, meta any, errMsg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		typ := "sync"
		if errMsg != "" {
			typ = "error"
		}
		json.NewEncoder(w).Encode(map[string]any{"type": typ, "status_code": code, "error_code": code, "error": errMsg, "metadata": meta})
	}
	inst := func(name string, cfg map[string]string) rest.Instance {
		return rest.Instance{Name: name, StatusCode: rest.Running, InstancePut: rest.InstancePut{Config: cfg}}
	}
	switch {
	case r.URL.Path == "/1.0/events":
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		f.streams <- conn
		go func() { // like incusd: read to notice the client going
			defer conn.Close()
			for {
				if _, _, err := conn.NextReader(); err != nil {
					return
				}
			}
		}()
	case r.Method == http.MethodPost && r.URL.Path == probePath:
		if shutting {
			reply(http.StatusServiceUnavailable, nil, "Shutting down")
			return
		}
		reply(http.StatusNotFound, nil, "Instance not found")
	case r.URL.Path == "/1.0/instances":
		f.mu.Lock()
		var list []rest.Instance
		for name, cfg := range f.instances {
			list = append(list, inst(name, cfg))
		}
		f.mu.Unlock()
		reply(http.StatusOK, list, "")
	case len(r.URL.Path) > len("/1.0/instances/"):
		name := r.URL.Path[len("/1.0/instances/"):]
		f.mu.Lock()
		cfg, ok := f.instances[name]
		f.mu.Unlock()
		if !ok {
			reply(http.StatusNotFound, nil, "Instance not found")
			return
		}
		reply(http.StatusOK, inst(name, cfg), "")
	default:
		reply(http.StatusNotFound, nil, "not found")
	}
}

// send writes a lifecycle event on conn.
func send(t *testing.T, conn *websocket.Conn, action, name string, requested bool) {
	t.Helper()
	lc := rest.EventLifecycle{Action: action, Source: "/1.0/instances/" + name + "?project=default"}
	if requested {
		lc.Requestor = &rest.EventLifecycleRequestor{Username: "root", Protocol: "unix"}
	}
	meta, _ := json.Marshal(lc)
	if err := conn.WriteJSON(rest.Event{Type: rest.EventTypeLifecycle, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
}

func berthConfig(ws string) map[string]string {
	return map[string]string{"user.berth.managed": "true", "user.berth.workspace": ws, "volatile.uuid": "u-" + ws}
}

// watchFake runs Watch on a backend of f until ctx ends, and hands its
// events out on the returned channel.
func watchFake(t *testing.T, ctx context.Context) <-chan backends.Event {
	t.Helper()
	b, err := New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	evs := make(chan backends.Event, 100)
	done := make(chan error, 1)
	go func() { done <- b.Watch(ctx, func(ev backends.Event) { evs <- ev }) }()
	t.Cleanup(func() {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch = %v, want context.Canceled", err)
		}
		b.Close()
	})
	return evs
}

func expect(t *testing.T, evs <-chan backends.Event, want ...backends.Event) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-evs:
			if diff := cmp.Diff(w, got); diff != "" {
				t.Fatalf("event (-want +got):\n%s", diff)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event; want %+v", w)
		}
	}
}

func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestWatchMapsAndFilters(t *testing.T) {
	noLeaks(t)
	f := newFakeIncusd(t)
	f.set(func() {
		f.instances["berth-a"] = berthConfig("/a")
		f.instances["other"] = map[string]string{}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := watchFake(t, ctx)
	conn := <-f.streams

	a := backends.Event{ID: "berth-a.u-/a", Name: "berth-a", Workspace: "/a"}
	with := func(ev backends.Event, k backends.EventKind) backends.Event { ev.Kind = k; return ev }
	// The watcher lists the instances after connecting; events can come
	// before that is done, and must wait for it.
	send(t, conn, "instance-started", "other", true)
	send(t, conn, "instance-started", "berth-a", true)
	send(t, conn, "instance-restarted", "berth-a", true) // incusd 6.0 sends a restart alone, even after a start
	send(t, conn, "instance-shutdown", "berth-a", true)  // asked for
	send(t, conn, "instance-restarted", "berth-a", true) // a restart alone
	send(t, conn, "instance-shutdown", "berth-a", false) // its init ended
	send(t, conn, "instance-stopped", "berth-a", true)   // forced
	f.set(func() { f.instances["berth-b"] = berthConfig("/b") })
	send(t, conn, "instance-created", "berth-b", true) // learnt here
	send(t, conn, "instance-started", "berth-b", true)
	b := backends.Event{ID: "berth-b.u-/b", Name: "berth-b", Workspace: "/b"}
	expect(t, evs,
		with(a, backends.EventStarted),
		with(a, backends.EventStarted),
		with(a, backends.EventStopped),
		with(a, backends.EventStarted),
		with(a, backends.EventKilled),
		with(a, backends.EventStopped),
		with(b, backends.EventStarted),
	)
	f.set(func() { delete(f.instances, "berth-b") })
	send(t, conn, "instance-deleted", "berth-b", true) // known from before
	send(t, conn, "instance-deleted", "berth-a", true)
	send(t, conn, "instance-deleted", "gone-unknown", true) // can't tell: skipped
	expect(t, evs, with(b, backends.EventRemoved), with(a, backends.EventRemoved))
	cancel()
	select {
	case ev := <-evs:
		t.Errorf("unexpected event %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestWatchLostShutdownBack(t *testing.T) {
	noLeaks(t)
	oldBeat, oldProbe := heartbeat, probeTimeout
	heartbeat, probeTimeout = 50*time.Millisecond, 200*time.Millisecond
	t.Cleanup(func() { heartbeat, probeTimeout = oldBeat, oldProbe }) // after Watch ended

	f := newFakeIncusd(t)
	f.set(func() { f.instances["berth-a"] = berthConfig("/a") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	evs := watchFake(t, ctx)
	a := backends.Event{Kind: backends.EventStarted, ID: "berth-a.u-/a", Name: "berth-a", Workspace: "/a"}

	conn := <-f.streams
	send(t, conn, "instance-started", "berth-a", true)
	expect(t, evs, a)

	// The stream breaks: lost, then back on the next connection.
	conn.Close()
	expect(t, evs, backends.Event{Kind: backends.EventDaemonLost})
	conn = <-f.streams
	expect(t, evs, backends.Event{Kind: backends.EventDaemonBack})
	send(t, conn, "instance-started", "berth-a", true)
	expect(t, evs, a)

	// A graceful shutdown: announced while the stream stays up; its end
	// is no news; back when the daemon takes changes again.
	f.set(func() { f.shutting = true })
	expect(t, evs, backends.Event{Kind: backends.EventDaemonShutdown})
	conn.Close()
	conn = <-f.streams // reconnected to a daemon still shutting down
	f.set(func() { f.shutting = false })
	expect(t, evs, backends.Event{Kind: backends.EventDaemonBack})

	// Frozen: the probe gets no answer.
	f.set(func() { f.frozen = true })
	expect(t, evs, backends.Event{Kind: backends.EventDaemonLost})
	f.set(func() { f.frozen = false })
	conn.Close()
	<-f.streams
	expect(t, evs, backends.Event{Kind: backends.EventDaemonBack})
	cancel()
}

func TestWaitOpOnFrozenIncusd(t *testing.T) {
	oldSeconds, oldGrace := pollSeconds, pollGrace
	pollSeconds, pollGrace = 1, 100*time.Millisecond
	defer func() { pollSeconds, pollGrace = oldSeconds, oldGrace }()
	f := newFakeIncusd(t)
	f.set(func() { f.frozen = true })
	b, err := New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	if _, err := b.waitOp(context.Background(), "op1"); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("waitOp on a frozen incusd: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("waitOp took %v", d)
	}
}

// An instance-shutdown without requestor is berth's own stop when this
// process asked for it lately (a clean stop that outlived its timeout, or
// one a cluster member carried out), and the init's end otherwise.
func TestWatchOwnStopWithoutRequestor(t *testing.T) {
	b := &Backend{log: slog.New(slog.DiscardHandler)}
	var got []backends.EventKind
	w := &watch{b: b, fn: func(ev backends.Event) { got = append(got, ev.Kind) }, known: map[string]knownInstance{
		"berth-a": {id: "berth-a.u", workspace: "/a"},
		"berth-b": {id: "berth-b.u", workspace: "/b"},
	}}
	b.stops.Store("berth-a", time.Now())
	b.stops.Store("berth-b", time.Now().Add(-time.Hour))
	for _, name := range []string{"berth-a", "berth-b"} {
		meta, _ := json.Marshal(rest.EventLifecycle{Action: "instance-shutdown", Source: "/1.0/instances/" + name})
		data, _ := json.Marshal(rest.Event{Type: rest.EventTypeLifecycle, Metadata: meta})
		w.handle(context.Background(), data)
	}
	if want := []backends.EventKind{backends.EventStopped, backends.EventKilled}; !cmp.Equal(got, want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
}
