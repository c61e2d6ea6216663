package plugins

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/backends"
)

const (
	// DefaultTimeout bounds a call that names no timeout.
	DefaultTimeout = 30 * time.Second
	// MaxOutput bounds the JSON a plugin may answer with.
	MaxOutput = 16 << 20
	// stderrTail is how much of a plugin's stderr an error carries.
	stderrTail = 4 << 10
	// killTimeout bounds killing a plugin and seeing it gone.
	killTimeout = 5 * time.Second
)

// CallError is a plugin that failed: it exited non-zero or before
// answering, printed something other than JSON, or answered with a
// JSON-RPC error.
type CallError struct {
	Plugin, Method string
	Msg            string
	ExitCode       *int            // set when the plugin exited
	Stderr         string          // the tail of its stderr
	RPC            *jsonrpc2.Error // an rpc plugin's error answer
}

func (e *CallError) Error() string {
	msg := fmt.Sprintf("plugin %s: %s: %s", e.Plugin, e.Method, e.Msg)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "; stderr: " + s
	}
	return msg
}

func (e *CallError) Unwrap() error { return ErrFailed }

// SplitMethod splits "hello.greet" into the plugin's name and its method.
func SplitMethod(full string) (name, method string, ok bool) {
	name, method, ok = strings.Cut(full, ".")
	return name, method, ok && name != "" && method != ""
}

// Host calls the plugins of one start of one instance. It caches what the
// instance declares, and owns the rpc-mode plugins it starts: they run
// until Close, and one that dies is started again by the next call.
//
// Goroutines: per running rpc plugin, a waiter (the process's Wait, then
// closing its connection) and a watcher (killing the process when its
// connection breaks), besides the connection's own reader; all are counted
// in wg. Exec-mode calls wait for their own process before returning.
type Host struct {
	c      Container
	log    *slog.Logger
	ctx    context.Context // ends at Close: the lifetime of rpc plugins
	cancel context.CancelFunc
	wg     sync.WaitGroup

	startMu sync.Mutex // serialises starting rpc plugins

	mu      sync.Mutex // guards the following
	set     *Set       // the last discovery; nil: none yet
	servers map[string]*server
	closed  bool
}

// NewHost returns a Host calling plugins in c.
func NewHost(c Container, log *slog.Logger) *Host {
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{c: c, log: log, ctx: ctx, cancel: cancel, servers: map[string]*server{}}
}

// ErrClosed is a call on a closed Host.
var ErrClosed = errors.New("plugins: host closed")

// Discover reads the instance's plugin files afresh and remembers them.
func (h *Host) Discover(ctx context.Context) (Set, error) {
	set, err := Discover(ctx, h.c)
	if err != nil {
		return Set{}, err
	}
	h.mu.Lock()
	h.set = &set
	h.mu.Unlock()
	return set, nil
}

// lookup finds name's plugin, reading the files again when the last reading
// doesn't know it or its method: the image, or a hook, may have added it.
func (h *Host) lookup(ctx context.Context, name, method string) (Plugin, error) {
	h.mu.Lock()
	set := h.set
	h.mu.Unlock()
	if set != nil {
		if p, ok := set.Lookup(name); ok && p.Exported(method) {
			return p, nil
		}
	}
	fresh, err := h.Discover(ctx)
	if err != nil {
		return Plugin{}, err
	}
	p, ok := fresh.Lookup(name)
	if !ok {
		msg := fmt.Sprintf("%q: the image declares %s", name, names(fresh))
		if len(fresh.Errors) > 0 {
			// It may be declared in one of them.
			skipped := make([]string, len(fresh.Errors))
			for i, e := range fresh.Errors {
				skipped[i] = e.Error()
			}
			msg += "; skipped: " + strings.Join(skipped, "; ")
		}
		return Plugin{}, fmt.Errorf("%w %s", ErrNoSuchPlugin, msg)
	}
	if !p.Exported(method) {
		return Plugin{}, fmt.Errorf("plugin %s: %w: %q (it exports %s)", name, ErrNotExported, method, strings.Join(p.Exports, ", "))
	}
	return p, nil
}

func names(s Set) string {
	if len(s.Plugins) == 0 {
		return "none (no " + CoreXFile + " nor " + Dir + "/*.toml)"
	}
	out := make([]string, len(s.Plugins))
	for i, p := range s.Plugins {
		out[i] = p.Name
	}
	return strings.Join(out, ", ")
}

// Call calls full ("hello.greet") with params, a JSON value or empty for
// null, and returns its JSON result. A method its plugin doesn't export is
// refused without running anything. timeout 0 means DefaultTimeout; a
// plugin still busy then is killed. Mapping paths is the caller's.
func (h *Host) Call(ctx context.Context, full string, params json.RawMessage, timeout time.Duration) (json.RawMessage, error) {
	name, method, ok := SplitMethod(full)
	if !ok {
		return nil, fmt.Errorf("%w: method %q is not PLUGIN.METHOD", ErrNoSuchPlugin, full)
	}
	if len(bytes.TrimSpace(params)) == 0 {
		params = json.RawMessage("null")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	p, err := h.lookup(ctx, name, method)
	if err != nil {
		return nil, err
	}
	if p.Mode == ModeRPC {
		return h.callRPC(ctx, p, method, params, timeout)
	}
	return h.callExec(ctx, p, method, params, timeout)
}

// callExec runs `path METHOD` once.
func (h *Host) callExec(ctx context.Context, p Plugin, method string, params json.RawMessage, timeout time.Duration) (json.RawMessage, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stdout := &capped{max: MaxOutput}
	stderr := &tail{max: stderrTail}
	proc, err := h.c.Exec(tctx, backends.ExecSpec{
		Argv:   []string{p.Path, method},
		Env:    []string{"BERTH_PLUGIN=" + p.Name, "BERTH_PLUGIN_MODE=" + ModeExec},
		Stdin:  bytes.NewReader(params),
		Stdout: stdout,
		Stderr: stderr,
	})
	if err != nil {
		if tctx.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("plugin %s: %s: %w after %v (starting it)", p.Name, method, ErrTimeout, timeout)
		}
		return nil, fmt.Errorf("plugin %s: start %s: %w", p.Name, p.Path, err)
	}
	type result struct {
		st  backends.ExitStatus
		err error
	}
	done := make(chan result, 1)
	wctx, wcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer wcancel()
	go func() {
		st, err := proc.Wait(wctx)
		done <- result{st, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-tctx.Done():
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
		_ = proc.Kill(kctx)
		kcancel()
		select {
		case <-done:
		case <-time.After(killTimeout):
			wcancel()
			<-done
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h.log.Debug("plugin timed out; killed it", "plugin", p.Name, "method", method, "timeout", timeout)
		return nil, fmt.Errorf("plugin %s: %s: %w after %v; it was killed", p.Name, method, ErrTimeout, timeout)
	}
	if r.err != nil {
		return nil, fmt.Errorf("plugin %s: %s: %w", p.Name, method, r.err)
	}
	if r.st.Code != 0 {
		code := r.st.Code
		msg := fmt.Sprintf("exited with code %d", code)
		if r.st.Signal != "" {
			msg = "killed by " + r.st.Signal
		}
		return nil, &CallError{Plugin: p.Name, Method: method, Msg: msg, ExitCode: &code, Stderr: stderr.String()}
	}
	if stdout.over {
		return nil, &CallError{Plugin: p.Name, Method: method, Msg: fmt.Sprintf("printed more than %d bytes", MaxOutput), Stderr: stderr.String()}
	}
	out := bytes.TrimSpace(stdout.buf.Bytes())
	if !json.Valid(out) {
		return nil, &CallError{Plugin: p.Name, Method: method, Msg: "printed no JSON value on stdout: " + quoteShort(out), Stderr: stderr.String()}
	}
	return json.RawMessage(out), nil
}

func quoteShort(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q…", b[:200])
	}
	return fmt.Sprintf("%q", b)
}

// server is one running rpc-mode plugin.
type server struct {
	p      Plugin
	proc   backends.Process
	conn   *jsonrpc2.Conn
	stderr *tail
	done   chan struct{} // closed once the process has exited and conn is closed

	mu       sync.Mutex // guards the following
	status   *backends.ExitStatus
	protoErr error // what broke the connection other than EOF
}

// watchedStream notes the error that broke a plugin's connection.
type watchedStream struct {
	jsonrpc2.ObjectStream
	s *server
}

func (w watchedStream) ReadObject(v any) error {
	err := w.ObjectStream.ReadObject(v)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.ErrClosedPipe) {
		w.s.mu.Lock()
		if w.s.protoErr == nil {
			w.s.protoErr = err
		}
		w.s.mu.Unlock()
	}
	return err
}

// boundedCodec is LSP framing, as jsonrpc2.VSCodeObjectCodec, with what a
// plugin may send bounded: a header line of at most 4 KiB and a body of at
// most MaxOutput. A plugin that prints a stream of anything else must not
// grow berth without end.
type boundedCodec struct{}

const maxHeaderLine = 4 << 10

func (boundedCodec) WriteObject(w io.Writer, v any) error {
	return jsonrpc2.VSCodeObjectCodec{}.WriteObject(w, v)
}

func (boundedCodec) ReadObject(r *bufio.Reader, v any) error {
	var n uint64
	for {
		line, err := readLine(r)
		if err != nil {
			return err
		}
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("not a header line: %q", quoteShort([]byte(line)))
		}
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			if n, err = strconv.ParseUint(strings.TrimSpace(value), 10, 64); err != nil {
				return fmt.Errorf("bad Content-Length %q", value)
			}
		}
	}
	if n == 0 {
		return errors.New("no Content-Length header")
	}
	if n > MaxOutput {
		return fmt.Errorf("a message of %d bytes, over the %d-byte limit", n, MaxOutput)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// readLine reads one CRLF-terminated line of at most maxHeaderLine bytes,
// without its CRLF.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for len(b) <= maxHeaderLine {
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		if c == '\n' {
			if len(b) == 0 || b[len(b)-1] != '\r' {
				return "", fmt.Errorf("a header line not ended by CRLF: %q", quoteShort(b))
			}
			return string(b[:len(b)-1]), nil
		}
		b = append(b, c)
	}
	return "", fmt.Errorf("a header line over %d bytes", maxHeaderLine)
}

// debugPrintf sends jsonrpc2's own complaints to the debug log.
type debugPrintf struct{ log *slog.Logger }

func (d debugPrintf) Printf(format string, v ...any) {
	d.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// running returns name's rpc plugin, starting it when it isn't running.
func (h *Host) running(ctx context.Context, p Plugin) (*server, error) {
	h.startMu.Lock()
	defer h.startMu.Unlock()
	h.mu.Lock()
	s := h.servers[p.Name]
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if s != nil && s.p.Path == p.Path {
		select {
		case <-s.done:
		default:
			return s, nil
		}
	}
	if s != nil {
		h.stop(s) // a new declaration, or dead
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s = &server{p: p, stderr: &tail{max: stderrTail}, done: make(chan struct{})}
	proc, err := h.c.Exec(ctx, backends.ExecSpec{
		Argv:   []string{p.Path},
		Env:    []string{"BERTH_PLUGIN=" + p.Name, "BERTH_PLUGIN_MODE=" + ModeRPC},
		Stdin:  inR,
		Stdout: outW,
		Stderr: s.stderr,
	})
	if err != nil {
		inW.Close()
		outW.Close()
		return nil, fmt.Errorf("plugin %s: start %s: %w", p.Name, p.Path, err)
	}
	s.proc = proc
	stream := watchedStream{jsonrpc2.NewBufferedStream(pipes{outR, inW}, boundedCodec{}), s}
	s.conn = jsonrpc2.NewConn(h.ctx, stream, refuse{}, jsonrpc2.SetLogger(debugPrintf{h.log.With("plugin", p.Name)}))
	h.log.Debug("rpc plugin started", "plugin", p.Name, "path", p.Path)
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		st, err := proc.Wait(h.ctx)
		if err == nil {
			s.mu.Lock()
			s.status = &st
			s.mu.Unlock()
		}
		outW.Close()
		inR.Close()
		s.conn.Close()
		close(s.done)
		h.log.Debug("rpc plugin exited", "plugin", p.Name, "code", st.Code, "err", err)
	}()
	go func() {
		defer h.wg.Done()
		select {
		case <-s.conn.DisconnectNotify():
			// It printed something other than a framed message, or closed
			// its stdout: it is of no more use. Nothing reads its output
			// now, so fail the writes that would block its exit.
			outR.CloseWithError(errors.New("plugin connection closed"))
			h.kill(s)
		case <-s.done:
		}
	}()
	h.mu.Lock()
	h.servers[p.Name] = s
	h.mu.Unlock()
	return s, nil
}

// kill ends s's process, bounded.
func (h *Host) kill(s *server) {
	ctx, cancel := context.WithTimeout(context.Background(), killTimeout)
	defer cancel()
	_ = s.proc.Kill(ctx)
}

// stop kills s and waits, bounded, for its waiter to see it gone.
func (h *Host) stop(s *server) {
	h.kill(s)
	select {
	case <-s.done:
	case <-time.After(killTimeout):
		h.log.Warn("rpc plugin did not end when killed", "plugin", s.p.Name)
	}
}

func (h *Host) callRPC(ctx context.Context, p Plugin, method string, params json.RawMessage, timeout time.Duration) (json.RawMessage, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := h.running(tctx, p)
	if err != nil {
		return nil, err
	}
	var res json.RawMessage
	err = s.conn.Call(tctx, method, params, &res)
	var re *jsonrpc2.Error
	switch {
	case err == nil:
		if len(res) == 0 {
			res = json.RawMessage("null")
		}
		return res, nil
	case errors.As(err, &re):
		return nil, &CallError{Plugin: p.Name, Method: method, Msg: re.Message, RPC: re}
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case tctx.Err() != nil:
		h.log.Debug("rpc plugin timed out; killed it", "plugin", p.Name, "method", method, "timeout", timeout)
		h.stop(s)
		return nil, fmt.Errorf("plugin %s: %s: %w after %v; it was killed and starts again on the next call", p.Name, method, ErrTimeout, timeout)
	}
	// The connection broke: the plugin died or spoke something else.
	select {
	case <-s.done:
	case <-time.After(killTimeout):
	}
	ce := &CallError{Plugin: p.Name, Method: method, Stderr: s.stderr.String()}
	s.mu.Lock()
	st, protoErr := s.status, s.protoErr
	s.mu.Unlock()
	if protoErr != nil {
		ce.Msg = fmt.Sprintf("the rpc plugin printed something other than a JSON-RPC message with LSP framing (%v); it was killed and starts again on the next call", protoErr)
	} else if st != nil {
		code := st.Code
		ce.ExitCode = &code
		ce.Msg = fmt.Sprintf("the rpc plugin exited with code %d before answering; it starts again on the next call", code)
	} else {
		ce.Msg = fmt.Sprintf("the rpc plugin's connection broke (%v); it was killed and starts again on the next call", err)
	}
	return nil, ce
}

// Close kills the rpc plugins and waits for them.
func (h *Host) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	// A start in progress finishes first, and registers what it started.
	h.startMu.Lock()
	h.mu.Lock()
	servers := h.servers
	h.servers = map[string]*server{}
	h.mu.Unlock()
	h.startMu.Unlock()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.kill(s)
		}()
	}
	wg.Wait()
	h.cancel()
	h.wg.Wait()
}

// Running names the rpc plugins running now.
func (h *Host) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for n, s := range h.servers {
		select {
		case <-s.done:
		default:
			out = append(out, n)
		}
	}
	return out
}

// refuse answers a plugin's requests to berth: berth serves none.
type refuse struct{}

func (refuse) Handle(ctx context.Context, c *jsonrpc2.Conn, r *jsonrpc2.Request) {
	if r.Notif {
		return
	}
	_ = c.ReplyWithError(ctx, r.ID, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "berth serves no requests to plugins"})
}

// pipes joins the plugin's stdout and stdin into one stream.
type pipes struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p pipes) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipes) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipes) Close() error {
	p.w.Close()
	return p.r.Close()
}

// capped keeps at most max bytes and notes whether there were more.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		c.over = true
		return len(p), nil
	}
	return c.buf.Write(p)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
