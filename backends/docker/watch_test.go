package docker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
)

// watchFake runs Watch against a fake engine until it has seen want, then
// stops it, and returns what it saw.
func watchFake(t *testing.T, h http.Handler, stop chan struct{}, want int) []backends.Event {
	t.Helper()
	fakeEngine(t, h, stop)
	b, err := docker.New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []backends.Event
	err = b.Watch(ctx, func(ev backends.Event) {
		got = append(got, ev)
		if len(got) == want {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Watch = %v, want context.Canceled (events so far: %v)", err, got)
	}
	return got
}

func event(action, id string) string {
	return fmt.Sprintf(`{"Type":"container","Action":%q,"Actor":{"ID":%q,"Attributes":{"name":"n-%s","berth.workspace":"/w"}}}`+"\n", action, id, id)
}

// noLeaks checks, after every other cleanup, that t left no goroutine.
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestWatchReconnects(t *testing.T) {
	noLeaks(t)
	stop := make(chan struct{})
	var conns atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", ping)
	mux.HandleFunc("GET /v1.45/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if conns.Add(1) == 1 {
			io.WriteString(w, event("start", "a")) // then the stream breaks
			return
		}
		io.WriteString(w, event("destroy", "a"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	got := watchFake(t, mux, stop, 4)
	want := []backends.Event{
		{Kind: backends.EventStarted, ID: "a", Name: "n-a", Workspace: "/w"},
		{Kind: backends.EventDaemonLost},
		{Kind: backends.EventDaemonBack},
		{Kind: backends.EventRemoved, ID: "a", Name: "n-a", Workspace: "/w"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestWatchNoticesAFrozenEngine(t *testing.T) {
	noLeaks(t)
	defer docker.SetHeartbeat(100*time.Millisecond, 200*time.Millisecond)()
	stop := make(chan struct{})
	var frozen atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", ping)
	mux.HandleFunc("GET /v1.45/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		frozen.Store(true) // from now on nothing answers, the stream included
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	engine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if frozen.Load() && r.URL.Path != "/v1.45/events" {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		mux.ServeHTTP(w, r)
	})
	got := watchFake(t, engine, stop, 1)
	if want := []backends.Event{{Kind: backends.EventDaemonLost}}; !cmp.Equal(want, got) {
		t.Errorf("events = %v, want %v", got, want)
	}
}
