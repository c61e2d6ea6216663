package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/pathmap"
)

// Sink receives a client's process events. For one pid, every Output is
// delivered before its Exit. Output for stdout and stderr may arrive from two
// goroutines at once; within a stream it is in order.
type Sink interface {
	// Output delivers a process's output. text is only valid during the
	// call: its buffer is reused.
	Output(pid, stream string, text []byte)
	Exit(pid string, st backends.ExitStatus, reason string)
	// ConfigChanged says a workspace's configuration inputs changed so
	// that its instance is now stale.
	ConfigChanged(workspace string, files []string)
	// InstanceChanged says a workspace's instance changed state outside
	// the client's own calls: stopped, killed, removed, restarted, or its
	// engine lost or back.
	InstanceChanged(workspace, state, reason string)
}

// ExecOptions describe a process to start.
type ExecOptions struct {
	Workspace string // resolved workspace
	Image     string // used only if the instance must be created
	Argv      []string
	Cwd       string            // host path under a mount, or container path
	Env       map[string]string // added to the instance environment
	User      string
	Stdin     bool   // keep stdin open for Client.Stdin
	Kind      string // run, test, lint, debug, os
	MapPaths  bool   // rewrite container paths in output to host paths
	TTY       bool   // run on a terminal (needs the agent)
	Cols      uint16 // terminal size, with TTY
	Rows      uint16

	// Internal runs are berth's own probes: not listed in Processes, and
	// not given the configuration's user and environment.
	Internal bool
}

// Process states.
const (
	StateRunning = "running"
	StateExited  = "exited"
)

// ProcessInfo is a snapshot of a process.
type ProcessInfo struct {
	ID         string
	Workspace  string
	Argv       []string
	Kind       string
	State      string
	Status     backends.ExitStatus // valid when State is exited
	StartedAt  time.Time
	FinishedAt time.Time
}

// Process is a process a client started.
type Process struct {
	id        string
	workspace string
	argv      []string
	kind      string
	tty       bool
	startedAt time.Time
	proc      backends.Process
	stdin     *stdinQueue // nil without stdin
	out       *outbox
	done      chan struct{} // closed after the exit event was delivered

	mu         sync.Mutex // guards the following
	exited     bool
	status     backends.ExitStatus
	finishedAt time.Time
}

// ID is the process's berth id.
func (p *Process) ID() string { return p.id }

// Release lets the process's events flow to the sink. Until then they are
// held, so that a client learns the pid before it sees output for it.
func (p *Process) Release() { p.out.release() }

// Done is closed once the process has exited and its exit event was
// delivered.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill ends the process's group in the container.
func (p *Process) Kill(ctx context.Context) error { return p.proc.Kill(ctx) }

// Info returns a snapshot of the process.
func (p *Process) Info() ProcessInfo { return p.info() }

func (p *Process) info() ProcessInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := StateRunning
	if p.exited {
		st = StateExited
	}
	return ProcessInfo{
		ID: p.id, Workspace: p.workspace, Argv: p.argv, Kind: p.kind, State: st,
		Status: p.status, StartedAt: p.startedAt, FinishedAt: p.finishedAt,
	}
}

// Client is one editor connection's view of the session: the workspaces it
// uses and the processes and tunnels it started.
//
// Goroutines, all counted by wg and waited for by Close: per process, a
// waiter that delivers the exit event and a pump that delivers its output;
// per debuggee tunnel, a closer (CloseTunnelOnExit). Tunnels own their
// accept loops; the config watcher and syncers own theirs. Close ends every
// process, then cancels the client's lifetime ctx, which unblocks waits a
// frozen engine still holds.
type Client struct {
	m    *Manager
	log  *slog.Logger
	sink Sink

	ctx    context.Context // the client's lifetime: ends in Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // process waiters

	mu         sync.Mutex // guards the following
	procs      map[string]*Process
	next       int
	tunnels    map[string]*tunnel
	nextTunnel int
	closed     bool
	configPath string              // explicit configuration file, "" to discover
	limits     backends.Limits     // initializationOptions.limits
	secrets    map[string]string   // given to every process but berth's own probes
	editor     bool                // an editor session: counts for shutdownAction
	attached   map[*Workspace]bool // workspaces this session is attached to
	upped      map[*Workspace]bool // workspaces this client called Up on
	watcher    *configWatcher      // started by the first Up
	syncers    map[string]*syncer
	trust      TrustPolicy     // how its workspaces get trust
	declined   map[string]bool // workspace+config hashes the user declined to trust
}

// NewClient returns a client of m whose process events go to sink.
// It counts as an editor session until SetEditor says otherwise.
func NewClient(m *Manager, log *slog.Logger, sink Sink) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{m: m, log: log, sink: sink, ctx: ctx, cancel: cancel, editor: true,
		procs: map[string]*Process{}, tunnels: map[string]*tunnel{}, syncers: map[string]*syncer{}}
}

// SetEditor says whether the client is an editor session, whose leaving
// may stop a container (shutdownAction), or a one-off such as a CLI
// command, which never does. Call it before the client's first call.
func (c *Client) SetEditor(on bool) {
	c.mu.Lock()
	c.editor = on
	c.mu.Unlock()
}

// Manager returns the client's manager.
func (c *Client) Manager() *Manager { return c.m }

func (c *Client) newID() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", ErrClosed
	}
	c.next++
	return "p" + strconv.Itoa(c.next), nil
}

// Exec starts a process. ctx bounds the start only: the process runs until
// it exits, is signalled, or the client closes. The caller must call
// Release on the result once it has told its client the pid.
func (c *Client) Exec(ctx context.Context, opts ExecOptions) (*Process, error) {
	id, err := c.newID()
	if err != nil {
		return nil, err
	}
	return c.start(ctx, id, opts, newOutbox(),
		func(stream string, text []byte) { c.sink.Output(id, stream, text) },
		func(st backends.ExitStatus, err error) {
			reason := ""
			if err != nil {
				reason = err.Error()
			}
			c.sink.Exit(id, st, reason)
		})
}

func (c *Client) start(ctx context.Context, id string, opts ExecOptions, out *outbox,
	output func(stream string, text []byte), exit func(backends.ExitStatus, error)) (*Process, error) {
	if len(opts.Argv) == 0 {
		return nil, errors.New("argv: must name a command")
	}
	w := c.Workspace(opts.Workspace)
	r, err := c.ensure(ctx, w, opts.Image)
	if err != nil {
		return nil, err
	}
	p, err := c.startOn(ctx, w, r, id, opts, out, output, exit)
	if errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrNotRunning) || errors.Is(err, agent.ErrLost) {
		// The instance went away or restarted behind our back: bring it
		// back once (with its hooks, if it must be made anew).
		w.forget()
		if r, err = c.ensure(ctx, w, opts.Image); err == nil {
			p, err = c.startOn(ctx, w, r, id, opts, out, output, exit)
		}
	}
	return p, err
}

// startOn starts a process in r's instance, which the caller ensured.
func (c *Client) startOn(ctx context.Context, w *Workspace, r Ready, id string, opts ExecOptions, out *outbox,
	output func(stream string, text []byte), exit func(backends.ExitStatus, error)) (*Process, error) {
	c.applyConfig(ctx, w, r, &opts)
	if !opts.Internal {
		if _, set := opts.Env["BROWSER"]; !set {
			if ac, _ := w.agent(ctx, r); ac != nil && ac.Proto() >= agent.ProtoPorts {
				// The agent's helper opens URLs on the host (see PortSink).
				env := make(map[string]string, len(opts.Env)+1)
				maps.Copy(env, opts.Env)
				env["BROWSER"] = agent.BrowserPath
				opts.Env = env
			}
		}
	}
	p := &Process{
		id: id, workspace: opts.Workspace, argv: opts.Argv, kind: opts.Kind, tty: opts.TTY,
		out: out, done: make(chan struct{}),
	}
	stdout := newStreamWriter(r.Mapper, opts.MapPaths, func(p []byte) { out.output("stdout", p) })
	stderr := newStreamWriter(r.Mapper, opts.MapPaths, func(p []byte) { out.output("stderr", p) })
	spec := backends.ExecSpec{
		Argv:   opts.Argv,
		Cwd:    containerCwd(r.Mapper, opts.Cwd, r.Workdir),
		Env:    envList(opts.Env),
		User:   opts.User,
		Stdout: stdout,
		Stderr: stderr,
		Helper: opts.Internal,
	}
	if opts.Stdin {
		p.stdin = newStdinQueue()
		spec.Stdin = p.stdin
	}
	var tty *agent.Terminal
	if opts.TTY {
		tty = &agent.Terminal{Cols: opts.Cols, Rows: opts.Rows}
	}

	p.startedAt = time.Now()
	oom := w.oomMark(ctx, r.ID)
	proc, err := w.exec(ctx, r, spec, tty)
	if err != nil {
		return nil, err
	}
	p.proc = proc

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = proc.Kill(bctx)
		_, _ = proc.Wait(bctx)
		return nil, ErrClosed
	}
	if !opts.Internal {
		c.procs[id] = p
	}
	c.wg.Add(2)
	c.mu.Unlock()
	w.processStarted()
	c.log.Debug("process started", "pid", id, "argv", opts.Argv, "workspace", opts.Workspace)
	out.started() // output limits apply from here: the backend's start may need its output to flow

	go func() {
		defer c.wg.Done()
		out.run(output)
		close(p.done)
	}()
	go func() {
		defer c.wg.Done()
		st, err := proc.Wait(c.ctx)
		stdout.Flush()
		stderr.Flush()
		if err != nil {
			st = backends.ExitStatus{Code: -1}
		} else {
			st.OOM = w.m.oomKilled(c.ctx, r.ID, st, oom)
		}
		p.mu.Lock()
		p.exited, p.status, p.finishedAt = true, st, time.Now()
		p.mu.Unlock()
		c.prune()
		out.exit(func() { exit(st, err) })
		c.log.Debug("process exited", "pid", id, "code", st.Code, "signal", st.Signal)
		w.processEnded(c.ctx, r)
	}()
	return p, nil
}

// ContainerCwd is the container directory a process asking for cwd runs
// in: workdir when cwd is empty; a host path or URI under a mount, mapped;
// any other absolute path as it is, a container path already; a relative
// one under workdir.
func ContainerCwd(m *pathmap.Mapper, cwd, workdir string) string {
	return containerCwd(m, cwd, workdir)
}

// containerCwd maps a host cwd into the container; a path no mount covers
// is taken as a container path already.
func containerCwd(m *pathmap.Mapper, cwd, workdir string) string {
	if cwd == "" {
		return workdir
	}
	if strings.HasPrefix(cwd, "file:") {
		if _, ok := ToContainer(m, cwd); !ok {
			if u, err := url.Parse(cwd); err == nil && u.Scheme == "file" {
				cwd = u.Path // a container URI: its path
			}
		}
	}
	if p, ok := ToContainer(m, cwd); ok {
		if u, err := url.Parse(p); err == nil && u.Scheme == "file" {
			return u.Path // a URI in, but a directory is a path
		}
		return p
	}
	if path.IsAbs(cwd) {
		return cwd
	}
	return path.Join(workdir, cwd)
}

// EnvList turns env into sorted KEY=VALUE pairs.
func EnvList(env map[string]string) []string { return envList(env) }

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// RunResult is the outcome of Run.
type RunResult struct {
	Status    backends.ExitStatus
	Stdout    string
	Stderr    string
	TimedOut  bool
	Truncated bool
}

// MaxRunOutput caps what Run captures per stream.
const MaxRunOutput = 1 << 20

// Run starts a process, waits for it and returns its captured output. When
// timeout is positive the process group is killed after it. Cancelling ctx
// kills the process too.
func (c *Client) Run(ctx context.Context, opts ExecOptions, timeout time.Duration) (RunResult, error) {
	// A run that a recreate of its container killed lost a race with it:
	// it runs again, once, on the new container.
	w := c.Workspace(opts.Workspace)
	before := w.recreations()
	res, err := c.runOnce(ctx, opts, timeout)
	if errors.Is(err, agent.ErrLost) && w.recreations() != before && ctx.Err() == nil {
		c.log.Info("run lost to a recreate; running it again", "argv", opts.Argv)
		return c.runOnce(ctx, opts, timeout)
	}
	return res, err
}

// recreations counts the recreates of w's container so far.
func (w *Workspace) recreations() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recreates
}

func (c *Client) runOnce(ctx context.Context, opts ExecOptions, timeout time.Duration) (RunResult, error) {
	id, err := c.newID()
	if err != nil {
		return RunResult{}, err
	}
	var (
		mu         sync.Mutex
		outb, errb capped
		status     backends.ExitStatus
		exitErr    error
	)
	out := newOutbox()
	out.release()
	opts.Stdin = false
	p, err := c.start(ctx, id, opts, out,
		func(stream string, text []byte) {
			mu.Lock()
			defer mu.Unlock()
			if stream == "stdout" {
				outb.add(text)
			} else {
				errb.add(text)
			}
		},
		func(st backends.ExitStatus, err error) {
			mu.Lock()
			defer mu.Unlock()
			status, exitErr = st, err
		})
	if err != nil {
		return RunResult{}, err
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	res := RunResult{}
	select {
	case <-p.done:
	case <-timer:
		res.TimedOut = true
		_ = p.proc.Kill(context.WithoutCancel(ctx))
		<-p.done
	case <-ctx.Done():
		_ = p.proc.Kill(context.WithoutCancel(ctx))
		<-p.done
		return RunResult{}, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if exitErr != nil {
		return RunResult{}, fmt.Errorf("%s: %w", opts.Argv[0], exitErr)
	}
	res.Status = status
	res.Stdout, res.Stderr = outb.String(), errb.String()
	res.Truncated = outb.truncated || errb.truncated
	return res, nil
}

func (c *Client) lookup(pid string) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.procs[pid]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchProcess, pid)
	}
	return p, nil
}

// KeepExited is how many exited processes a client remembers for
// berth/processes; the oldest are forgotten first. Running processes are
// always listed.
const KeepExited = 1000

// prune forgets the oldest exited processes beyond KeepExited.
func (c *Client) prune() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var exited []*Process
	for _, p := range c.procs {
		if p.info().State == StateExited {
			exited = append(exited, p)
		}
	}
	if len(exited) <= KeepExited {
		return
	}
	sort.Slice(exited, func(i, j int) bool { return exited[i].finishedAt.Before(exited[j].finishedAt) })
	for _, p := range exited[:len(exited)-KeepExited] {
		delete(c.procs, p.id)
	}
}

// Stdin queues text for the process's stdin and, with closeIt, closes it
// after the text. It never blocks on the process.
func (c *Client) Stdin(pid, text string, closeIt bool) error {
	p, err := c.lookup(pid)
	if err != nil {
		return err
	}
	if p.info().State == StateExited {
		return fmt.Errorf("%w: %s", ErrProcessExited, pid)
	}
	if p.stdin == nil {
		return fmt.Errorf("%w: %s was started without stdin: true", ErrStdinClosed, pid)
	}
	if err := p.stdin.write(text, closeIt); err != nil {
		return fmt.Errorf("%w: %s", err, pid)
	}
	return nil
}

// Signal delivers sig to the process's group in the container.
func (c *Client) Signal(ctx context.Context, pid string, sig int) error {
	p, err := c.lookup(pid)
	if err != nil {
		return err
	}
	if p.info().State == StateExited {
		return fmt.Errorf("%w: %s", ErrProcessExited, pid)
	}
	return p.proc.Signal(ctx, sig)
}

// Resize changes the terminal size of a TTY process.
func (c *Client) Resize(ctx context.Context, pid string, cols, rows uint16) error {
	p, err := c.lookup(pid)
	if err != nil {
		return err
	}
	if p.info().State == StateExited {
		return fmt.Errorf("%w: %s", ErrProcessExited, pid)
	}
	r, ok := p.proc.(backends.Resizer)
	if !ok || !p.tty {
		return fmt.Errorf("%w: %s was not started with tty: true", backends.ErrNotSupported, pid)
	}
	return r.Resize(ctx, cols, rows)
}

// Processes lists the client's processes, all or those of one workspace,
// in start order.
func (c *Client) Processes(workspace string) []ProcessInfo {
	c.mu.Lock()
	procs := make([]*Process, 0, len(c.procs))
	for _, p := range c.procs {
		if workspace == "" || p.workspace == workspace {
			procs = append(procs, p)
		}
	}
	c.mu.Unlock()
	out := make([]ProcessInfo, 0, len(procs))
	for _, p := range procs {
		out = append(out, p.info())
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID[1:])
		b, _ := strconv.Atoi(out[j].ID[1:])
		return a < b
	})
	return out
}

// killGrace is how long processes get between SIGTERM and SIGKILL when
// their client goes away.
const killGrace = 500 * time.Millisecond

// closeBudget bounds Client.Close as a whole: berth must exit within
// seconds of losing its editor, even when the engine is frozen.
const closeBudget = 3500 * time.Millisecond

// Close closes the client's tunnels and ends every running process of the
// client (SIGTERM, then SIGKILL after a grace period), and waits until all
// have exited. New processes are refused from the moment it is called.
// It takes at most closeBudget (less if ctx ends sooner): what a frozen
// engine still holds then is left to the agent, which ends the processes
// when its connection drops.
func (c *Client) Close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, closeBudget)
	defer cancel()
	c.mu.Lock()
	c.closed = true
	var running, all []*Process
	for _, p := range c.procs {
		all = append(all, p)
		p.out.close() // release its output, and never wait on other clients' editors
		if p.info().State == StateRunning {
			running = append(running, p)
		}
	}
	watcher, syncers := c.watcher, c.syncers
	c.syncers = map[string]*syncer{}
	c.mu.Unlock()
	if watcher != nil {
		watcher.Close()
	}
	for _, s := range syncers {
		s.Close()
	}
	c.closeTunnels()

	var wg sync.WaitGroup
	for _, p := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.proc.Signal(ctx, backends.SIGTERM)
			select {
			case <-p.done:
				return
			case <-time.After(killGrace):
			}
			if err := p.proc.Kill(ctx); err != nil {
				c.log.Warn("kill failed", "pid", p.id, "err", err)
			}
		}()
	}
	waitCtx(ctx, &wg)
	for _, p := range all {
		p.Release() // nobody may be left to release it
	}
	// Waits still blocked on the engine give up after a grace period.
	grace, cancelGrace := context.WithTimeout(ctx, killGrace)
	done := waitCtx(grace, &c.wg)
	cancelGrace()
	c.cancel()
	if !done && !waitCtx(ctx, &c.wg) {
		c.log.Warn("processes did not report their exit in time; the agent ends them")
	}
	c.mu.Lock()
	attached := c.attached
	c.attached = nil
	c.mu.Unlock()
	for w := range attached {
		w.detach(ctx)
	}
	for _, w := range c.m.known() {
		w.mu.Lock()
		delete(w.clients, c)
		w.mu.Unlock()
		w.stopPorts(false)
	}
}

// waitCtx waits for wg until ctx ends, and reports whether wg finished.
// The goroutines it gives up on end on their own, bounded by their own
// deadlines or by the lifetime contexts their owners cancel.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// capped is a string builder that stops growing at MaxRunOutput.
type capped struct {
	buf       []byte
	truncated bool
}

func (c *capped) add(s []byte) {
	if room := MaxRunOutput - len(c.buf); room < len(s) {
		cut := max(room, 0)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut-- // never split a character
		}
		s = s[:cut]
		c.truncated = true
	}
	c.buf = append(c.buf, s...)
}

func (c *capped) String() string { return string(c.buf) }

var _ io.Reader = (*stdinQueue)(nil)
