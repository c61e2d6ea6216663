// Package rpc is berth's wire protocol: JSON-RPC 2.0 with LSP base-protocol
// framing (github.com/sourcegraph/jsonrpc2 with VSCodeObjectCodec), the
// method dispatcher, the wire types, and the one mapping of errors to
// JSON-RPC codes. docs/protocol.md is its reference.
package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/trust"
)

// MaxInFlight bounds the concurrent requests of one connection that have
// been read but not yet answered. At the bound the reader pauses until one
// is answered, so a client that doesn't read its replies can't make berth
// hold unbounded work.
const MaxInFlight = 64

// ErrExitWithoutShutdown is returned by ServeConn when the client sent exit
// before shutdown; LSP says the process then exits with code 1.
var ErrExitWithoutShutdown = errors.New("exit without shutdown")

// Options configure a Server.
type Options struct {
	// Managers holds one session manager per available backend, by name.
	Managers map[string]*session.Manager
	// Default names the backend used when a client asks for none.
	Default string
	Logger  *slog.Logger
	Version string
	// Trace logs every frame at debug level, secrets masked.
	Trace bool
	// Secrets are given to every client's processes as environment
	// variables (--secrets-file); a client's own secrets win a name.
	Secrets map[string]string
	// Masker hides every secret's value in logs, traces, error messages
	// and reports. nil: the server makes its own. Pass the one that masks
	// the rest of the program's logs.
	Masker *secrets.Masker
	// Trust keeps workspace trust decisions; nil keeps none.
	Trust *trust.Store
	// Remote returns the manager of a backend's named remote
	// (initializationOptions.incusRemote), made on first use and kept for
	// the server's life. nil: clients can't name remotes.
	Remote func(backend, name string) (*session.Manager, error)
}

// Server serves berth's protocol. One Server serves any number of
// connections at once; they share the managers, and so the instances.
type Server struct {
	opts    Options
	methods []string // sorted method names, for capabilities
}

// NewServer returns a server.
func NewServer(opts Options) *Server {
	if opts.Masker == nil {
		opts.Masker = secrets.NewMasker()
	}
	opts.Masker.Add(opts.Secrets) // for the server's life
	opts.Logger = secrets.Logger(opts.Logger, opts.Masker)
	return &Server{opts: opts, methods: MethodNames()}
}

// mask hides secret values in text bound for a client.
func (s *Server) mask(text string) string { return s.opts.Masker.Mask(text) }

// Version returns the version the server reports.
func (s *Server) Version() string { return s.opts.Version }

func (s *Server) backendNames() []string {
	names := make([]string, 0, len(s.opts.Managers))
	for n := range s.opts.Managers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lifecycle states of a connection.
const (
	stateNew = iota
	stateInitialized
	stateShutdown
)

// conn is one client connection.
//
// Goroutines: jsonrpc2's reader calls Handle in order; requests that may
// block run in their own goroutine, counted by wg and waited for by
// ServeConn before it returns.
type conn struct {
	s      *Server
	log    *slog.Logger
	stream *frameStream
	editor bool           // an editor session, not a one-off command
	wg     sync.WaitGroup // request goroutines
	sem    chan struct{}  // one token per concurrent request in flight

	mu        sync.Mutex // guards the following
	rpc       *jsonrpc2.Conn
	state     int
	exited    bool
	mgr       *session.Manager
	client    *session.Client
	defaultWS string
	image     string
	cancels   map[jsonrpc2.ID]context.CancelFunc
	published map[string]map[string]bool // workspace+linter → host URIs with diagnostics out
	unmask    func()                     // stops masking the client's own secrets; nil before initialize
}

// ServeConn serves one client on rwc until the client disconnects or sends
// exit, or ctx ends. Before it returns, every process the client started
// has ended. It returns nil after a clean exit or disconnect, and
// ErrExitWithoutShutdown when LSP wants exit code 1.
func (s *Server) ServeConn(ctx context.Context, rwc io.ReadWriteCloser) error {
	return s.serve(ctx, rwc, true, ConnOptions{})
}

// ServeConnWith is ServeConn for a connection that may need a token and an
// initialize deadline: one accepted on a socket.
func (s *Server) ServeConnWith(ctx context.Context, rwc io.ReadWriteCloser, opts ConnOptions) error {
	return s.serve(ctx, rwc, true, opts)
}

// ServeCommand is ServeConn for a one-off command, such as the CLI's
// `berth up`: it is not an editor session, so its end never stops a
// container (shutdownAction).
func (s *Server) ServeCommand(ctx context.Context, rwc io.ReadWriteCloser) error {
	return s.serve(ctx, rwc, false, ConnOptions{})
}

func (s *Server) serve(ctx context.Context, rwc io.ReadWriteCloser, editor bool, opts ConnOptions) error {
	c := &conn{
		s:       s,
		log:     s.opts.Logger,
		editor:  editor,
		cancels: map[jsonrpc2.ID]context.CancelFunc{},
		sem:     make(chan struct{}, MaxInFlight),
	}
	c.selectBackend(s.opts.Default)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stream := newFrameStream(rwc, s.opts.Logger, s.opts.Trace)
	if opts.Token != "" {
		stream.token = []byte(opts.Token)
		stream.fr.limit = maxUnauthFrame
	}
	c.stream = stream
	var initDeadline <-chan time.Time
	if opts.InitTimeout > 0 {
		t := time.NewTimer(opts.InitTimeout)
		defer t.Stop()
		initDeadline = t.C
	}
	rc := jsonrpc2.NewConn(ctx, stream, c, jsonrpc2.SetLogger(slogAdapter{s.opts.Logger}))
	c.setConn(rc)

wait:
	for {
		select {
		case <-rc.DisconnectNotify():
			break wait
		case <-ctx.Done():
			_ = rc.Close()
			break wait
		case <-initDeadline:
			initDeadline = nil
			c.mu.Lock()
			idle := c.state == stateNew
			c.mu.Unlock()
			if idle {
				c.log.Info("closing a connection that did not initialize in time", "timeout", opts.InitTimeout)
				setWriteDeadline(rwc, time.Now().Add(refuseWrite))
				_ = stream.writeError(&frameError{code: CodeServerNotInitialized,
					msg: fmt.Sprintf("server not initialized: no initialize within %s; closing the connection", opts.InitTimeout)})
				_ = rc.Close()
			}
		}
	}
	cancel() // ends in-flight requests
	c.wg.Wait()
	c.mu.Lock()
	client := c.client
	exitedEarly := c.exited && c.state != stateShutdown
	unmask := c.unmask
	c.mu.Unlock()
	// The client is gone: nothing of its may outlive it.
	client.Close(context.Background())
	if unmask != nil {
		unmask() // after Close: its processes' output has all been logged
	}
	if exitedEarly {
		return ErrExitWithoutShutdown
	}
	return nil
}

func (c *conn) selectBackend(name string) { c.selectManager(c.s.opts.Managers[name]) }

// selectManager makes mgr the client's.
func (c *conn) selectManager(mgr *session.Manager) {
	c.mgr = mgr
	if mgr != nil {
		c.client = session.NewClient(mgr, c.log, sink{c})
		c.client.SetEditor(c.editor)
	}
}

// method is one protocol method.
type method struct {
	// handle runs the method. raw is the params, possibly nil.
	handle func(ctx context.Context, c *conn, raw json.RawMessage) (any, error)
	// inline methods run on the reader goroutine: they are quick and their
	// order matters (stdin writes, lifecycle).
	inline bool
}

// setConn records the jsonrpc2 connection. Handle may run before NewConn
// has returned, so both it and ServeConn set it.
func (c *conn) setConn(rc *jsonrpc2.Conn) {
	c.mu.Lock()
	c.rpc = rc
	c.mu.Unlock()
}

func (c *conn) conn() *jsonrpc2.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rpc
}

// Handle implements jsonrpc2.Handler. jsonrpc2 calls it in arrival order.
func (c *conn) Handle(ctx context.Context, rc *jsonrpc2.Conn, req *jsonrpc2.Request) {
	c.setConn(rc)
	if p := c.stream.takeParams(); p != nil {
		req.Params = &p
	}
	if req.Notif {
		c.notification(req)
		return
	}
	m, ok := methods[req.Method]
	c.mu.Lock()
	state := c.state
	c.mu.Unlock()
	switch {
	case !ok:
		c.replyErr(ctx, req.ID, &codeError{CodeMethodNotFound, fmt.Sprintf("method not found: %q", req.Method)})
		return
	case state == stateNew && req.Method != "initialize":
		c.replyErr(ctx, req.ID, &codeError{CodeServerNotInitialized, fmt.Sprintf("%s: server not initialized: send initialize first", req.Method)})
		return
	case state == stateInitialized && req.Method == "initialize":
		c.replyErr(ctx, req.ID, &codeError{CodeInvalidRequest, "initialize: already initialized"})
		return
	case state == stateShutdown:
		c.replyErr(ctx, req.ID, &codeError{CodeShuttingDown, fmt.Sprintf("%s: server is shutting down; only exit is accepted", req.Method)})
		return
	}
	var raw json.RawMessage
	if req.Params != nil {
		raw = *req.Params
	}
	if m.inline {
		c.run(ctx, req, m, raw)
		return
	}
	if !c.acquire(ctx) {
		return // the connection is ending
	}
	rctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancels[req.ID] = cancel
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }() // the reply is written
		defer func() {
			c.mu.Lock()
			delete(c.cancels, req.ID)
			c.mu.Unlock()
			cancel()
		}()
		c.run(rctx, req, m, raw)
	}()
}

// acquire takes an in-flight slot for a concurrent request. At the bound
// the reader pauses here and reads nothing, not even $/cancelRequest, exit
// or the end of the input, until a slot frees. It reports false when the
// connection is ending.
func (c *conn) acquire(ctx context.Context) bool {
	// The reader simply waits: looking ahead for exit or EOF while paused
	// held the buffered input hostage when the client had sent no more.
	select {
	case c.sem <- struct{}{}:
		if ctx.Err() != nil {
			// A slot freed because the connection is ending: run nothing more.
			<-c.sem
			return false
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// afterReply is implemented by results that must act once the client has
// their reply, such as releasing a process's output.
type afterReply interface {
	result() any
	afterReply()
}

// progressKey carries a request's LSP workDoneToken, as its raw JSON.
type progressKey struct{}

// progressParams is LSP's ProgressParams with the token kept as the client
// sent it (go.lsp.dev's ProgressToken marshals only through a pointer).
type progressParams struct {
	Token json.RawMessage `json:"token"`
	Value any             `json:"value"`
}

func (c *conn) run(ctx context.Context, req *jsonrpc2.Request, m method, raw json.RawMessage) {
	// LSP work-done progress: a client that sends a workDoneToken gets
	// $/progress begin, a report per step, and end.
	var wd struct {
		Token json.RawMessage `json:"workDoneToken"`
	}
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &wd) == nil && validID(wd.Token) {
		ctx = context.WithValue(ctx, progressKey{}, wd.Token)
		c.notify("$/progress", progressParams{Token: wd.Token, Value: protocol.WorkDoneProgressBegin{
			Kind: protocol.WorkDoneProgressKindBegin, Title: "berth: " + strings.TrimPrefix(req.Method, "berth/"),
		}})
	}
	res, err := m.handle(ctx, c, raw)
	if wd.Token != nil && validID(wd.Token) {
		// End before the response, so a client sees the work finish first.
		c.notify("$/progress", progressParams{Token: wd.Token, Value: protocol.WorkDoneProgressEnd{
			Kind: protocol.WorkDoneProgressKindEnd,
		}})
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = &codeError{CodeRequestCancelled, req.Method + ": request cancelled"}
		}
		c.log.Debug("request failed", "method", req.Method, "err", err)
		c.replyErr(ctx, req.ID, err)
		return
	}
	if ar, ok := res.(afterReply); ok {
		defer ar.afterReply()
		res = ar.result()
	}
	if err := c.conn().Reply(context.WithoutCancel(ctx), req.ID, res); err != nil && !errors.Is(err, jsonrpc2.ErrClosed) {
		c.log.Warn("reply failed", "method", req.Method, "err", err)
	}
}

func (c *conn) replyErr(ctx context.Context, id jsonrpc2.ID, err error) {
	e := toError(err)
	e.Message = c.s.mask(e.Message)
	if rerr := c.conn().ReplyWithError(context.WithoutCancel(ctx), id, e); rerr != nil && !errors.Is(rerr, jsonrpc2.ErrClosed) {
		c.log.Warn("reply failed", "err", rerr)
	}
}

func (c *conn) notification(req *jsonrpc2.Request) {
	switch req.Method {
	case "initialized":
	case "exit":
		c.mu.Lock()
		c.exited = true
		c.mu.Unlock()
		_ = c.conn().Close()
	case "$/cancelRequest":
		var p struct {
			ID jsonrpc2.ID `json:"id"`
		}
		if req.Params != nil && json.Unmarshal(*req.Params, &p) == nil {
			c.mu.Lock()
			if cancel, ok := c.cancels[p.ID]; ok {
				cancel()
			}
			c.mu.Unlock()
		}
	default:
		// LSP: unknown notifications, $/ ones above all, are ignored.
		c.log.Debug("ignored notification", "method", req.Method)
	}
}

// notify sends a notification, ignoring a closed connection: the client
// that would read it is gone.
func (c *conn) notify(method string, params any) {
	if err := c.conn().Notify(context.Background(), method, params); err != nil && !errors.Is(err, jsonrpc2.ErrClosed) {
		c.log.Debug("notify failed", "method", method, "err", err)
	}
}

// progressCtx returns ctx with long operations' steps reported to the
// client: as $/progress reports when the request carried a workDoneToken,
// and always as window/logMessage, which the CLI prints.
func (c *conn) progressCtx(ctx context.Context) context.Context {
	token, _ := ctx.Value(progressKey{}).(json.RawMessage)
	return backends.WithProgress(ctx, func(msg string) {
		c.log.Info(msg)
		if token != nil {
			c.notify("$/progress", progressParams{Token: token, Value: protocol.WorkDoneProgressReport{
				Kind: protocol.WorkDoneProgressKindReport, Message: msg,
			}})
		}
		c.notify("window/logMessage", protocol.LogMessageParams{Type: protocol.MessageTypeInfo, Message: "berth: " + msg})
	})
}

// sink delivers a client's process events as notifications.
type sink struct{ c *conn }

func (s sink) Output(pid, stream string, text []byte) {
	if err := s.c.stream.writeOutput(pid, stream, text); err != nil && !errors.Is(err, jsonrpc2.ErrClosed) {
		s.c.log.Debug("notify failed", "method", "berth/output", "err", err)
	}
}

func (s sink) ConfigChanged(ws string, files []string) {
	s.c.notify("berth/configChanged", ConfigChangedParams{Workspace: ws, Files: files})
}

func (s sink) InstanceChanged(ws, state, reason string) {
	s.c.notify("berth/instanceChanged", InstanceChangedParams{Workspace: ws, State: state, Reason: reason})
}

// HealthChanged is berth/instanceChanged with reason "health".
func (s sink) HealthChanged(ws, health, why string) {
	s.c.notify("berth/instanceChanged", InstanceChangedParams{Workspace: ws, State: string(backends.StateRunning), Reason: "health", Health: health, HealthError: s.c.s.mask(why)})
}

func (s sink) Exit(pid string, st backends.ExitStatus, reason string) {
	if st.OOM && reason == "" {
		reason = ReasonOOM
	}
	s.c.notify("berth/exit", ExitParams{PID: pid, Code: st.Code, Signal: st.Signal, Reason: s.c.s.mask(reason)})
}

// slogAdapter lets jsonrpc2 log through slog.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
