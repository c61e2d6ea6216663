package rpc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
)

// These tests serve berth's protocol over net.Pipe to clients that speak
// it as an editor would, with an in-memory backend behind the server: no
// daemon anywhere.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testImage is the image every workspace runs unless a test says
// otherwise.
const testImage = "img:1"

// envOptions configure newEnv.
type envOptions struct {
	// Files are written into the workspace, by slash path.
	Files map[string]string
	// Memory configures the backend; Local is forced on unless Sync.
	Memory memory.Options
	Sync   bool
	// Image is the default image: "" means testImage, "-" none.
	Image string
	// Others are more backends, by name, beside "memory".
	Others []string
	// Log receives the debug log of the server and its managers, masked
	// as berth's main masks it; Trace logs every frame there.
	Log   io.Writer
	Trace bool
	// Secrets are the server's (--secrets-file).
	Secrets map[string]string
}

// env is a berth server on in-memory backends, and a workspace.
type env struct {
	t       *testing.T
	mem     *memory.Backend
	mgr     *session.Manager
	srv     *rpc.Server
	ws      string // resolved host path
	workdir string // its container path
	log     *slog.Logger
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ws, err := session.ResolveWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range o.Files {
		writeFile(t, filepath.Join(ws, filepath.FromSlash(name)), body)
	}
	mo := o.Memory
	if !o.Sync {
		mo.Local = true
	}
	image := o.Image
	switch image {
	case "":
		image = testImage
	case "-":
		image = ""
	}
	e := &env{t: t, mem: memory.New(mo), ws: ws, workdir: session.Workdir(ws), log: slog.New(slog.DiscardHandler)}
	var masker *secrets.Masker
	if o.Log != nil {
		masker = secrets.NewMasker()
		e.log = secrets.Logger(slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelDebug})), masker)
	}
	e.mgr = session.NewManager(e.mem, e.log, image)
	managers := map[string]*session.Manager{"memory": e.mgr}
	for _, name := range o.Others {
		m := session.NewManager(memory.New(memory.Options{Name: name, Local: true}), e.log, image)
		managers[name] = m
		t.Cleanup(m.Close)
	}
	e.srv = rpc.NewServer(rpc.Options{Managers: managers, Default: "memory", Logger: e.log, Version: "test-1",
		Trace: o.Trace, Secrets: o.Secrets, Masker: masker})
	t.Cleanup(func() {
		e.mem.Thaw()
		e.mem.SetDown(false)
		e.mgr.Close()
	})
	return e
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dcFiles is a workspace whose .devcontainer/devcontainer.json has the
// test image and the given members (JSON without the braces).
func dcFiles(members string) map[string]string {
	body := `{"image": "` + testImage + `"`
	if members != "" {
		body += ", " + members
	}
	return map[string]string{".devcontainer/devcontainer.json": body + "}"}
}

// conn is one client connection to the env's server.
type conn struct {
	t     *testing.T
	c     *rpc.Client
	notes *notes
	done  chan error // ServeConn's result
}

// connect opens a connection; command serves it as a one-off command
// (ServeCommand) rather than an editor session. It is not initialized.
func (e *env) connect(command bool) *conn {
	e.t.Helper()
	sc, cc := net.Pipe()
	c := &conn{t: e.t, notes: &notes{changed: make(chan struct{})}, done: make(chan error, 1)}
	go func() {
		if command {
			c.done <- e.srv.ServeCommand(context.Background(), sc)
		} else {
			c.done <- e.srv.ServeConn(context.Background(), sc)
		}
	}()
	c.c = rpc.NewClient(context.Background(), cc, e.log, c.notes.add)
	e.t.Cleanup(func() {
		c.c.Close()
		c.wait()
	})
	return c
}

// dial opens an editor connection and initializes it on the workspace.
func (e *env) dial() *conn {
	e.t.Helper()
	c := e.connect(false)
	// The tests' configurations are their own: trust_test.go tests trust.
	c.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, InitializationOptions: &rpc.InitializationOptions{Trust: true}}, nil)
	return c
}

// wait waits for ServeConn to return and gives its error.
func (c *conn) wait() error {
	c.t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for the next wait
		return err
	case <-time.After(15 * time.Second):
		c.t.Fatal("ServeConn did not return")
		return nil
	}
}

func (c *conn) call(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.c.Call(ctx, method, params, result)
}

func (c *conn) mustCall(method string, params, result any) {
	c.t.Helper()
	if err := c.call(method, params, result); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
}

// code is a call's JSON-RPC error code: 0 for success, -1 for an error
// that isn't a JSON-RPC error.
func code(err error) int64 {
	var re *jsonrpc2.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return re.Code
	}
	return -1
}

// exec starts argv and returns its pid.
func (c *conn) exec(params rpc.ExecParams) string {
	c.t.Helper()
	var res rpc.ExecResult
	c.mustCall("berth/exec", params, &res)
	return res.PID
}

// run runs argv with berth/run.
func (c *conn) run(argv ...string) rpc.RunResult {
	c.t.Helper()
	var res rpc.RunResult
	c.mustCall("berth/run", rpc.ExecParams{Argv: argv}, &res)
	return res
}

// notes records a connection's notifications in arrival order.
type notes struct {
	mu      sync.Mutex // guards the following
	list    []note
	changed chan struct{} // closed and replaced on every note
}

type note struct {
	Method string
	Params json.RawMessage
}

func (n *notes) add(method string, params json.RawMessage) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, note{method, slices.Clone(params)})
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *notes) all() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.list)
}

// wait waits until cond holds for the notes so far.
func (n *notes) wait(t *testing.T, what string, cond func([]note) bool) []note {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		n.mu.Lock()
		list, ch := slices.Clone(n.list), n.changed
		n.mu.Unlock()
		if cond(list) {
			return list
		}
		select {
		case <-ch:
		case <-deadline:
			var b strings.Builder
			for _, x := range list {
				fmt.Fprintf(&b, "\n  %s %s", x.Method, x.Params)
			}
			t.Fatalf("timed out waiting for %s; heard:%s", what, b.String())
		}
	}
}

// decode decodes the params of the notes of method.
func decode[T any](t *testing.T, list []note, method string) []T {
	t.Helper()
	var out []T
	for _, x := range list {
		if x.Method != method {
			continue
		}
		var v T
		if err := json.Unmarshal(x.Params, &v); err != nil {
			t.Fatalf("%s %s: %v", method, x.Params, err)
		}
		out = append(out, v)
	}
	return out
}

// waitExit waits for pid's berth/exit.
func (c *conn) waitExit(pid string) rpc.ExitParams {
	c.t.Helper()
	var ex rpc.ExitParams
	c.notes.wait(c.t, "the exit of "+pid, func(list []note) bool {
		for _, e := range decode[rpc.ExitParams](c.t, list, "berth/exit") {
			if e.PID == pid {
				ex = e
				return true
			}
		}
		return false
	})
	return ex
}

// output joins pid's berth/output on stream so far.
func (c *conn) output(pid, stream string) string {
	var b strings.Builder
	for _, o := range decode[rpc.OutputParams](c.t, c.notes.all(), "berth/output") {
		if o.PID == pid && o.Stream == stream {
			b.WriteString(o.Text)
		}
	}
	return b.String()
}

// instanceChanges lists the berth/instanceChanged heard so far, as
// "state/reason".
func (c *conn) instanceChanges() []string {
	var out []string
	for _, p := range decode[rpc.InstanceChangedParams](c.t, c.notes.all(), "berth/instanceChanged") {
		out = append(out, p.State+"/"+p.Reason)
	}
	return out
}

// waitInstance waits for a berth/instanceChanged of state/reason.
func (c *conn) waitInstance(want string) {
	c.t.Helper()
	c.notes.wait(c.t, "instanceChanged "+want, func(list []note) bool {
		return slices.Contains(c.instanceChanges(), want)
	})
}

// wire is a client that sees every message in arrival order and picks
// its request ids: for tests of ordering and cancellation.
type wire struct {
	t    *testing.T
	conn *jsonrpc2.Conn
	done chan error

	mu  sync.Mutex // guards log
	log []string   // "reply <id>", "error <id> <code>" or the notification's method
}

type recordingStream struct {
	jsonrpc2.ObjectStream
	w *wire
}

func (s recordingStream) ReadObject(v any) error {
	var raw json.RawMessage
	if err := s.ObjectStream.ReadObject(&raw); err != nil {
		return err
	}
	var m struct {
		ID     *jsonrpc2.ID
		Method string
		Error  *jsonrpc2.Error
	}
	if err := json.Unmarshal(raw, &m); err == nil {
		entry := m.Method
		switch {
		case m.Method == "" && m.Error != nil:
			entry = "error " + m.ID.String() + " " + strconv.FormatInt(m.Error.Code, 10)
		case m.Method == "":
			entry = "reply " + m.ID.String()
		}
		s.w.mu.Lock()
		s.w.log = append(s.w.log, entry)
		s.w.mu.Unlock()
	}
	return json.Unmarshal(raw, v)
}

// dialWire opens an editor connection through a wire client and
// initializes it.
func (e *env) dialWire() *wire {
	e.t.Helper()
	sc, cc := net.Pipe()
	w := &wire{t: e.t, done: make(chan error, 1)}
	go func() { w.done <- e.srv.ServeConn(context.Background(), sc) }()
	stream := recordingStream{jsonrpc2.NewBufferedStream(cc, jsonrpc2.VSCodeObjectCodec{}), w}
	w.conn = jsonrpc2.NewConn(context.Background(), stream, jsonrpc2.HandlerWithError(func(context.Context, *jsonrpc2.Conn, *jsonrpc2.Request) (any, error) {
		return nil, nil
	}))
	e.t.Cleanup(func() {
		w.conn.Close()
		select {
		case <-w.done:
		case <-time.After(15 * time.Second):
			e.t.Error("ServeConn did not return")
		}
	})
	if err := w.call("init", "initialize", rpc.InitializeParams{RootURI: "file://" + e.ws}, nil); err != nil {
		e.t.Fatal(err)
	}
	return w
}

// call sends a request with the given id.
func (w *wire) call(id, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return w.conn.Call(ctx, method, params, result, jsonrpc2.PickID(jsonrpc2.ID{Str: id, IsString: true}))
}

func (w *wire) transcript() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log)
}

// rawConn speaks framed bytes to a server connection, for what no
// well-behaved client sends.
type rawConn struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	done chan error
}

func (e *env) dialRaw() *rawConn {
	sc, cc := net.Pipe()
	rc := &rawConn{t: e.t, c: cc, r: bufio.NewReader(cc), done: make(chan error, 1)}
	go func() { rc.done <- e.srv.ServeConn(context.Background(), sc) }()
	e.t.Cleanup(func() {
		cc.Close()
		<-rc.done
	})
	return rc
}

// send writes body framed.
func (rc *rawConn) send(body string) {
	rc.t.Helper()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(rc.c, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		rc.t.Fatal(err)
	}
}

// recv reads one framed message.
func (rc *rawConn) recv() map[string]any {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n := -1
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatal(err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		rc.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		rc.t.Fatalf("%q: %v", body, err)
	}
	return m
}
