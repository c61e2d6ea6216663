package docker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
)

// fakeEngine serves h as the engine's API on a unix socket and points
// DOCKER_HOST at it. At cleanup it closes stop, on which handlers that hang
// must end, and waits for the server.
func fakeEngine(t *testing.T, h http.Handler, stop chan struct{}) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(stop)
		srv.Close()
		<-served
	})
	t.Setenv("DOCKER_HOST", "unix://"+sock)
}

// ping answers the engine's version ping.
func ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("API-Version", "1.45")
	io.WriteString(w, "OK")
}

// frozenEngine serves just enough of the engine's API to start one exec,
// whose stream says the wrapper ran and then ends, and then stops
// answering, as a dockerd stopped with SIGSTOP would. It needs no daemon.
//
// With keepOpen the exec's stream stays open as if the command ran on.
func frozenEngine(t *testing.T, keepOpen bool) {
	t.Helper()
	mux := http.NewServeMux()
	frozen := make(chan struct{})
	mux.HandleFunc("/_ping", ping)
	mux.HandleFunc("POST /v1.45/containers/{id}/exec", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"Id":"exec1"}`)
	})
	mux.HandleFunc("POST /v1.45/exec/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // all of the request, before the stream ends
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		frame := func(stream byte, s string) {
			hdr := [8]byte{stream}
			binary.BigEndian.PutUint32(hdr[4:], uint32(len(s)))
			buf.Write(hdr[:])
			buf.WriteString(s)
		}
		frame(2, "berth-pid:7\n")
		frame(1, "hello\n")
		buf.Flush()
		if keepOpen {
			<-frozen
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		<-frozen // everything else: no answer
	})
	fakeEngine(t, mux, frozen)
}

func TestWaitOnFrozenEngine(t *testing.T) {
	frozenEngine(t, false)
	defer docker.SetDetachedTimeout(time.Second)()
	b, err := docker.New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var out strings.Builder
	p, err := b.Exec(context.Background(), "c1", backends.ExecSpec{Argv: []string{"true"}, Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.Wait(context.Background())
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Wait on a frozen engine: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Wait took %v", d)
	}
	if out.String() != "hello\n" {
		t.Errorf("stdout %q", out.String())
	}
	start = time.Now()
	if err := p.Kill(context.Background()); err != nil {
		t.Errorf("Kill of an ended process: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Kill of an ended process took %v", d)
	}
}

func TestKillOnFrozenEngine(t *testing.T) {
	frozenEngine(t, true)
	defer docker.SetDetachedTimeout(time.Second)()
	b, err := docker.New(slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := b.Exec(context.Background(), "c1", backends.ExecSpec{Argv: []string{"sleep", "1000"}, Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Kill(context.Background()); err == nil {
		t.Errorf("Kill on a frozen engine: no error")
	}
	if _, err := p.Wait(context.Background()); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("Wait after Kill on a frozen engine: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Kill and Wait took %v", d)
	}
}
