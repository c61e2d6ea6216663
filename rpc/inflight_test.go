package rpc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/session"
)

// fakeBackend is a backend whose List the tests control; the rest fails.
type fakeBackend struct {
	block bool // List waits for its ctx to end

	mu        sync.Mutex // guards the following
	lists     int        // List calls
	cancelled int        // List calls ended by their ctx
	reached   chan struct{}
	want      int // close reached at this many List calls
}

func (b *fakeBackend) Name() string                   { return "fake" }
func (b *fakeBackend) Ping(ctx context.Context) error { return nil }
func (b *fakeBackend) Ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	return backends.Instance{}, false, backends.ErrNotSupported
}
func (b *fakeBackend) Find(ctx context.Context, ws string) (backends.Instance, error) {
	return backends.Instance{}, backends.ErrNotFound
}
func (b *fakeBackend) Stop(ctx context.Context, id string) error   { return nil }
func (b *fakeBackend) Remove(ctx context.Context, id string) error { return backends.ErrNotFound }
func (b *fakeBackend) Exec(ctx context.Context, id string, spec backends.ExecSpec) (backends.Process, error) {
	return nil, backends.ErrNotSupported
}
func (b *fakeBackend) CopyTo(ctx context.Context, id, dir string, tar io.Reader) error {
	return backends.ErrNotSupported
}
func (b *fakeBackend) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	return nil, backends.ErrNotSupported
}

func (b *fakeBackend) List(ctx context.Context) ([]backends.Instance, error) {
	b.mu.Lock()
	b.lists++
	if b.lists == b.want {
		close(b.reached)
	}
	b.mu.Unlock()
	if !b.block {
		return nil, nil
	}
	<-ctx.Done()
	b.mu.Lock()
	b.cancelled++
	b.mu.Unlock()
	return nil, ctx.Err()
}

// notify returns a channel closed at the nth List call.
func (b *fakeBackend) notify(n int) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reached, b.want = make(chan struct{}), n
	return b.reached
}

func (b *fakeBackend) counts() (lists, cancelled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lists, b.cancelled
}

// pipeConn is the server's side of two pipes, like stdin and stdout.
type pipeConn struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeConn) Close() error {
	p.r.Close()
	return p.w.Close()
}

// testClient drives ServeConn with raw frames.
type testClient struct {
	t    *testing.T
	in   *io.PipeWriter // to the server; Close is EOF
	out  *io.PipeReader // from the server
	fr   *frameReader
	done chan error // ServeConn's result
}

func serveFake(t *testing.T, ctx context.Context, b backends.Backend) *testClient {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	mgr := session.NewManager(b, log, "")
	srv := NewServer(Options{Managers: map[string]*session.Manager{"fake": mgr}, Default: "fake", Logger: log, Version: "test"})
	sr, cw := io.Pipe()
	cr, sw := io.Pipe()
	c := &testClient{t: t, in: cw, out: cr, fr: &frameReader{r: bufio.NewReader(cr)}, done: make(chan error, 1)}
	go func() { c.done <- srv.ServeConn(ctx, pipeConn{sr, sw}) }()
	t.Cleanup(func() {
		cw.Close()
		cr.Close()
		c.wait()
		mgr.Close()
	})
	return c
}

func (c *testClient) send(body string) error {
	_, err := io.WriteString(c.in, frame(body))
	return err
}

// recv returns the next response, skipping notifications.
func (c *testClient) recv() response {
	c.t.Helper()
	for {
		body, err := c.fr.readFrame()
		if err != nil {
			c.t.Fatalf("reading a response: %v", err)
		}
		var r response
		if err := json.Unmarshal(body, &r); err != nil {
			c.t.Fatalf("bad response %q: %v", body, err)
		}
		if r.Method == "" {
			return r
		}
	}
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Error  *struct {
		Code int64 `json:"code"`
	} `json:"error"`
}

// wait returns ServeConn's result; it fails the test if ServeConn does not
// return. The limit only guards against a hang.
func (c *testClient) wait() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(30 * time.Second):
		c.t.Fatal("ServeConn did not return")
		return nil
	}
}

func (c *testClient) initialize() {
	c.t.Helper()
	if err := c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}`); err != nil {
		c.t.Fatal(err)
	}
	if r := c.recv(); r.Error != nil {
		c.t.Fatalf("initialize: error %d", r.Error.Code)
	}
}

// A client that pipelines requests and never reads a reply makes berth hold
// MaxInFlight requests, then stop reading.
func TestInFlightBound(t *testing.T) {
	b := &fakeBackend{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := serveFake(t, ctx, b)
	c.initialize()
	go func() {
		for i := 1; i <= 5000; i++ {
			if c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"berth/list"}`, i)) != nil {
				return
			}
		}
	}()
	// The reader pauses at the bound: nothing more is read until a reply
	// is written, and none can be.
	deadline := time.Now().Add(30 * time.Second)
	for lists, _ := b.counts(); lists < MaxInFlight; lists, _ = b.counts() {
		if time.Now().After(deadline) {
			t.Fatal("the requests never reached the bound")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // room for a request past the bound, were there one
	base := runtime.NumGoroutine()
	// Cancelling ends the connection without freeing a slot first, so
	// every List call counted came from a request admitted before.
	cancel()
	if err := c.wait(); err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	if lists, _ := b.counts(); lists != MaxInFlight {
		t.Errorf("berth ran %d requests at once, want %d", lists, MaxInFlight)
	}
	if base > MaxInFlight+100 {
		t.Errorf("%d goroutines while paused", base)
	}
}

func TestInFlightSlotsReturn(t *testing.T) {
	c := serveFake(t, context.Background(), &fakeBackend{})
	c.initialize()
	for round := 0; round < 3; round++ {
		for i := 0; i < 2*MaxInFlight; i++ {
			if err := c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"berth/list"}`, i)); err != nil {
				t.Fatal(err)
			}
			if r := c.recv(); r.Error != nil {
				t.Fatalf("berth/list: error %d", r.Error.Code)
			}
		}
	}
}

// After a large frame is handled, nothing keeps it, and its memory goes
// back to the OS.
func TestLargeFrameNotKept(t *testing.T) {
	c := serveFake(t, context.Background(), &fakeBackend{})
	c.initialize()
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	size := 30 << 20
	if raceEnabled {
		size = 8 << 20 // still over releaseAbove
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for _, body := range []string{
			// An unknown notification, ignored, and an inline request that fails.
			`{"jsonrpc":"2.0","method":"x/big","params":{"data":"` + strings.Repeat("a", size) + `"}}`,
			`{"jsonrpc":"2.0","id":1,"method":"berth/stdin","params":{"pid":"p1","text":"` + strings.Repeat("b", size) + `"}}`,
		} {
			if c.send(body) != nil {
				return
			}
		}
	}()
	if r := c.recv(); string(r.ID) != "1" {
		t.Fatalf("got a response to %s, want 1", r.ID)
	}
	<-sent
	// Both frames have been handled: any release from now on frees them.
	released := release.count.Load()
	if err := c.send(`{"jsonrpc":"2.0","id":2,"method":"berth/processes"}`); err != nil {
		t.Fatal(err)
	}
	c.recv()
	// The release runs on a timer; the limit only guards against a hang.
	deadline := time.Now().Add(30 * time.Second)
	for release.count.Load() == released && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if release.count.Load() == released {
		t.Fatal("memory was never released")
	}
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > base+uint64(size)/2 {
		t.Errorf("live heap grew from %d to %d bytes after the large frames", base, ms.HeapAlloc)
	}
	if kept := ms.HeapIdle - ms.HeapReleased; kept > 16<<20 {
		t.Errorf("the heap keeps %d free bytes from the OS", kept)
	}
}

// Params too big for jsonrpc2's copies are kept aside and reach the method
// intact, whether the request is inline or concurrent.
func TestLargeParamsIntact(t *testing.T) {
	c := serveFake(t, context.Background(), &fakeBackend{})
	ws := t.TempDir()
	if err := c.send(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"rootUri":"file://` + ws + `"}}`); err != nil {
		t.Fatal(err)
	}
	if r := c.recv(); r.Error != nil {
		t.Fatalf("initialize: error %d", r.Error.Code)
	}
	name := strings.Repeat("é", stashAbove)
	for _, tt := range []struct{ name, body string }{
		{"object", `{"jsonrpc":"2.0","id":1,"method":"berth/toContainer","params":{"paths":["` + ws + "/" + name + `"]}}`},
		{"params first", `{"params":{"paths":["` + ws + "/" + name + `"]},"id":1,"method":"berth/toContainer","jsonrpc":"2.0"}`},
		{"escaped", `{"jsonrpc":"2.0","id":1,"method":"berth/toContainer","params":{"paths":["` + ws + `\/` + name + `"]}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.send(tt.body); err != nil {
				t.Fatal(err)
			}
			body, err := c.fr.readFrame()
			if err != nil {
				t.Fatal(err)
			}
			var r struct {
				Result struct{ Paths []string } `json:"result"`
			}
			if err := json.Unmarshal(body, &r); err != nil || len(r.Result.Paths) != 1 {
				t.Fatalf("response %.200s: %v", body, err)
			}
			if got := r.Result.Paths[0]; !strings.HasSuffix(got, "/"+name) || strings.HasPrefix(got, ws) {
				t.Errorf("got %.80s…, want the container path of %.80s…", got, ws+"/"+name)
			}
		})
	}
}
