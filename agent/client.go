package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/berthdev/berth/backends"
)

// ErrLost means the agent's stream died under a running process or call:
// the container was stopped or restarted, or the agent was killed.
var ErrLost = errors.New("agent connection lost (was the container stopped or restarted?)")

// Dir is where agents live inside instances. Each build has its own file,
// named by its hash, so a container that has this build is not copied to
// again, and a different build never runs by mistake.
const Dir = "/.berth"

// helloTimeout bounds the agent's start, copy excluded.
const helloTimeout = 15 * time.Second

// ErrIncompatible means the agent running in an instance speaks no
// protocol this berth does: berth starts another beside it.
var ErrIncompatible = errors.New("agent speaks another protocol")

// Client is berth's side of one connection to an agent: the exec stream of
// an agent started for it, or a connection through a running agent's door.
// The processes and tunnels it starts end when it closes.
//
// Goroutines: watch waits for the connection (and the agent's exec, when
// there is one) to end and tears the session down; acceptLoop takes
// connections the agent hands back for reverse tunnels, each joined in its
// own goroutine. Close waits for all of them.
type Client struct {
	log     *slog.Logger
	sess    *yamux.Session   // the connection: its end ends what it started
	proc    backends.Process // the agent's exec, on the exec stream; nil through the door
	stdoutW *io.PipeWriter
	version string
	goos    string // the agent's platform, from its greeting
	goarch  string
	pid     int    // the agent's pid in the instance
	proto   [2]int // the agent's protocol and the oldest it serves
	door    string // the door's socket on the host, when connected through it
	wg      sync.WaitGroup
	done    chan struct{} // closed when the session is gone

	mu        sync.Mutex // guards the following
	listeners map[uint64]func(net.Conn)
	browse    func(ctx context.Context, url string) error // takes $BROWSER requests; nil: none
	browsed   []time.Time                                 // when the last requests came, at most browseBurst
}

// A process in the instance must not flood the host with browser tabs:
// berth takes at most browseBurst $BROWSER requests per browseWindow.
const (
	browseBurst  = 10
	browseWindow = time.Minute
)

// errBrowseFlood is a $BROWSER request past the limit.
var errBrowseFlood = fmt.Errorf("more than %d URLs in %s: refused", browseBurst, browseWindow)

// browseAllowed counts a $BROWSER request, and reports whether it is
// within the limit. The caller holds c.mu.
func (c *Client) browseAllowed(now time.Time) bool {
	if len(c.browsed) == browseBurst {
		if now.Sub(c.browsed[0]) < browseWindow {
			return false
		}
		c.browsed = c.browsed[1:]
	}
	c.browsed = append(c.browsed, now)
	return true
}

// Options tune Start.
type Options struct {
	// FastDir is the host directory bind-mounted at RunDir in the instance,
	// when the engine is local (see HostRunDir): the agent there runs as a
	// daemon behind its door, which berth processes reach directly. Empty
	// means no door: the agent rides the exec stream and ends with it.
	FastDir string
}

// Start connects to the agent of instance id: with FastDir, to the one
// running behind its door if it speaks berth's protocol, else to one it
// launches there; otherwise, or if the door fails, to one it starts on the
// engine's exec stream. It copies bin in first if this build is needed and
// not there. ctx bounds the start only.
func Start(ctx context.Context, b backends.Backend, id string, bin *Binary, log *slog.Logger, opts Options) (*Client, error) {
	if opts.FastDir != "" {
		c, err := startDoor(ctx, b, id, bin, log, opts.FastDir)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		log.Debug("agent door unavailable; using the exec stream", "instance", id, "err", err)
	}
	// Trying first costs nothing when the build is there, the common case;
	// a missing binary fails the handshake at once.
	c, err := start(ctx, b, id, bin, log)
	if err != nil && ctx.Err() == nil {
		log.Debug("agent not started; installing it", "instance", id, "err", err)
		if err := Install(ctx, b, id, bin); err != nil {
			return nil, err
		}
		c, err = start(ctx, b, id, bin, log)
	}
	return c, err
}

// startDoor connects to the agent behind hostDir's door, launching one
// first when none that berth can use runs there. Launches are serialised
// across berth processes by a lock beside the record.
func startDoor(ctx context.Context, b backends.Backend, id string, bin *Binary, log *slog.Logger, hostDir string) (*Client, error) {
	// The instance's root can chmod or chown hostDir; its parent it cannot
	// reach.
	for _, d := range []string{filepath.Dir(hostDir), hostDir} {
		if err := PrivateDir(d); err != nil {
			return nil, fmt.Errorf("agent door: %w", err)
		}
	}
	unlock, err := lockDoor(ctx, hostDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c, err := Attach(ctx, hostDir, log)
	if err == nil {
		return c, nil
	}
	if errors.Is(err, ErrIncompatible) {
		log.Info("replacing the running agent, which speaks another protocol; its connections keep it until they end", "instance", id, "err", err)
	} else {
		log.Debug("no running agent at the door", "instance", id, "err", err)
	}
	rec, err := launch(ctx, b, id, bin, log)
	if err != nil && ctx.Err() == nil {
		log.Debug("agent not launched; installing it", "instance", id, "err", err)
		if err := Install(ctx, b, id, bin); err != nil {
			return nil, err
		}
		rec, err = launch(ctx, b, id, bin, log)
	}
	if err != nil {
		return nil, err
	}
	if err := writeRecord(hostDir, rec); err != nil {
		log.Warn("the agent's door is not recorded; other berth processes cannot use it", "err", err)
	}
	return attach(ctx, hostDir, rec, log)
}

// lockDoor takes the lock that serialises launches at hostDir's door.
func lockDoor(ctx context.Context, hostDir string) (func(), error) {
	f, err := os.OpenFile(filepath.Clean(hostDir)+".lock", os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent door: lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("agent door: lock: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// launch runs bin's launcher in the instance with a new key and socket
// name, and returns the door's record once the daemon has opened it.
func launch(ctx context.Context, b backends.Backend, id string, bin *Binary, log *slog.Logger) (doorRecord, error) {
	key, err := newKey()
	if err != nil {
		return doorRecord{}, err
	}
	name := make([]byte, 8)
	if _, err := rand.Read(name); err != nil {
		return doorRecord{}, err
	}
	rec := doorRecord{Version: doorVersion, Socket: "a-" + hex.EncodeToString(name) + ".sock", Key: key}
	var in bytes.Buffer
	if err := writeJSON(&in, frameRequest, request{Op: opDoor, Addr: rec.Socket, Key: key}); err != nil {
		return doorRecord{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	out := &limitedBuffer{max: maxJSON + 5}
	proc, err := b.Exec(ctx, id, backends.ExecSpec{
		Argv:   []string{bin.ContainerPath(), "door"},
		User:   "0",
		Direct: true,
		Stdin:  &in,
		Stdout: out,
		Stderr: &logWriter{log: log},
	})
	if err != nil {
		return doorRecord{}, fmt.Errorf("agent: launch in %s: %w", id, err)
	}
	st, werr := proc.Wait(ctx)
	var rep reply
	if err := readJSONMax(bytes.NewReader(out.Bytes()), frameReply, &rep, maxJSON); err != nil {
		if werr != nil {
			return doorRecord{}, fmt.Errorf("agent: launch in %s: %w", id, werr)
		}
		return doorRecord{}, fmt.Errorf("agent: launch in %s: exit code %d, no answer: %w", id, st.Code, err)
	}
	if err := checkReply(opDoor, &rep); err != nil {
		return doorRecord{}, err
	}
	if rep.Error != "" {
		return doorRecord{}, fmt.Errorf("agent: launch in %s: %s", id, agentText(rep.Error))
	}
	if rep.Version != bin.Hash {
		return doorRecord{}, fmt.Errorf("agent: %s in %s reports build %.12s, want %.12s", bin.ContainerPath(), id, rep.Version, bin.Hash)
	}
	log.Debug("agent launched", "instance", id, "pid", rep.PID, "socket", rec.Socket)
	return rec, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// Attach connects to the agent running behind the door whose host
// directory is hostDir, as any berth process of this user may: with the
// key in berth's record of the door, and only if the agent serves berth's
// protocol (else ErrIncompatible). Nothing goes through the engine. The
// processes started through the Client end when it closes.
func Attach(ctx context.Context, hostDir string, log *slog.Logger) (*Client, error) {
	rec, err := readRecord(hostDir)
	if err != nil {
		return nil, err
	}
	return attach(ctx, hostDir, rec, log)
}

// Known is what a berth process already knows of the agent behind a door,
// from another that greeted it: AttachKnown then skips the greeting.
type Known struct {
	Socket          string // the door's socket: the agent's start
	Proto, MinProto int
	PID             int
}

// Known returns what the client learnt of its agent at the door.
func (c *Client) Known() Known {
	return Known{Socket: c.Socket(), Proto: c.proto[0], MinProto: c.proto[1], PID: c.pid}
}

// AttachKnown is Attach to an agent that k describes, without the
// greeting's round trip: only if the door's record still names k's socket
// (else ErrDoorRecord) and k's protocols serve berth's (else
// ErrIncompatible).
func AttachKnown(ctx context.Context, hostDir string, k Known, log *slog.Logger) (*Client, error) {
	rec, err := readRecord(hostDir)
	if err != nil {
		return nil, err
	}
	if rec.Socket != k.Socket {
		return nil, fmt.Errorf("%w: the door is %s now, not %s", ErrDoorRecord, rec.Socket, k.Socket)
	}
	if !compatible(k.Proto, k.MinProto) {
		return nil, fmt.Errorf("%w: it serves protocols %d to %d, berth speaks %d to %d", ErrIncompatible, k.MinProto, k.Proto, minProto, protoVersion)
	}
	c, err := dialClient(ctx, hostDir, rec, log)
	if err != nil {
		return nil, err
	}
	c.pid, c.proto = k.PID, [2]int{k.Proto, k.MinProto}
	return c, nil
}

// dialClient connects to the door and starts a session on it.
func dialClient(ctx context.Context, hostDir string, rec doorRecord, log *slog.Logger) (*Client, error) {
	conn, err := dialDoor(ctx, hostDir, rec)
	if err != nil {
		return nil, err
	}
	sess, err := yamux.Client(newJoinedConn(conn), muxConfig())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	c := &Client{
		log: log, sess: sess, door: filepath.Join(hostDir, rec.Socket),
		done: make(chan struct{}), listeners: map[uint64]func(net.Conn){},
	}
	c.wg.Add(2)
	go c.watch()
	go func() {
		defer c.wg.Done()
		c.acceptOn(sess)
	}()
	return c, nil
}

func attach(ctx context.Context, hostDir string, rec doorRecord, log *slog.Logger) (*Client, error) {
	c, err := dialClient(ctx, hostDir, rec, log)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	var rep reply
	if err := c.callOn(hctx, c.sess, request{Op: opHello}, &rep); err != nil {
		c.Close()
		return nil, fmt.Errorf("agent: handshake at the door: %w", err)
	}
	if !compatible(rep.Proto, rep.MinProto) {
		c.Close()
		return nil, fmt.Errorf("%w: it serves protocols %d to %d, berth speaks %d to %d", ErrIncompatible, rep.MinProto, rep.Proto, minProto, protoVersion)
	}
	c.version, c.pid, c.proto = rep.Version, rep.PID, [2]int{rep.Proto, rep.MinProto}
	c.goos, c.goarch = rep.OS, rep.Arch
	log.Debug("attached to the running agent", "pid", rep.PID, "build", rep.Version[:min(12, len(rep.Version))], "proto", rep.Proto)
	return c, nil
}

// FastPath reports whether the client reaches its agent through the door.
func (c *Client) FastPath() bool { return c.door != "" }

// Socket is the name of the door's socket the client came through, which
// names the agent's start; "" on the exec stream.
func (c *Client) Socket() string {
	if c.door == "" {
		return ""
	}
	return filepath.Base(c.door)
}

// PID is the agent's pid in the instance.
func (c *Client) PID() int { return c.pid }

func start(ctx context.Context, b backends.Backend, id string, bin *Binary, log *slog.Logger) (*Client, error) {
	path := bin.ContainerPath()
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	proc, err := b.Exec(ctx, id, backends.ExecSpec{
		Argv:   []string{path, "serve"},
		User:   "0",
		Direct: true,
		Stdin:  stdinR,
		Stdout: stdoutW,
		Stderr: &logWriter{log: log},
	})
	if err != nil {
		stdinW.Close()
		return nil, fmt.Errorf("agent: start in %s: %w", id, err)
	}
	sess, err := yamux.Client(newJoinedConn(pipeConn{r: stdoutR, w: stdinW}), muxConfig())
	if err != nil {
		_ = proc.Kill(ctx)
		return nil, fmt.Errorf("agent: %w", err)
	}
	c := &Client{
		log: log, sess: sess, proc: proc, stdoutW: stdoutW,
		done: make(chan struct{}), listeners: map[uint64]func(net.Conn){},
	}
	c.wg.Add(2)
	go c.watch()
	go func() {
		defer c.wg.Done()
		c.acceptOn(sess)
	}()

	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	var rep reply
	if err := c.callOn(hctx, sess, request{Op: opHello}, &rep); err != nil {
		c.Close()
		return nil, fmt.Errorf("agent: handshake with %s in %s: %w", path, id, err)
	}
	if rep.Version != bin.Hash {
		c.Close()
		return nil, fmt.Errorf("agent: %s in %s reports build %.12s, want %.12s", path, id, rep.Version, bin.Hash)
	}
	c.version, c.pid, c.proto = rep.Version, rep.PID, [2]int{rep.Proto, rep.MinProto}
	c.goos, c.goarch = rep.OS, rep.Arch
	log.Debug("agent up", "instance", id, "pid", rep.PID)
	return c, nil
}

// Install copies bin into the instance at its ContainerPath, and also as
// InitPath, the stable name an instance can use as its main process.
func Install(ctx context.Context, b backends.Backend, id string, bin *Binary) error {
	tarball, err := bin.Tar()
	if err != nil {
		return err
	}
	backends.Report(ctx, "installing the berth agent (%d KiB)", tarball.Len()>>10)
	if err := b.CopyTo(ctx, id, "/", tarball); err != nil {
		return fmt.Errorf("agent: copy into %s: %w", id, err)
	}
	return nil
}

// watch ends the session when the agent's exec ends, and the reverse.
func (c *Client) watch() {
	defer c.wg.Done()
	defer close(c.done)
	if c.proc == nil {
		<-c.sess.CloseChan()
		return
	}
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		_, _ = c.proc.Wait(context.Background())
		c.stdoutW.CloseWithError(io.EOF)
	}()
	select {
	case <-c.sess.CloseChan():
		// Closing our stdin ends the agent, which kills what it started.
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = c.proc.Kill(context.Background())
			<-waited
		}
	case <-waited:
		c.sess.Close()
	}
}

// Done is closed when the agent is gone.
func (c *Client) Done() <-chan struct{} { return c.done }

// Alive reports whether the agent still answers.
func (c *Client) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return !c.sess.IsClosed()
	}
}

// Version is the agent build's hash.
func (c *Client) Version() string { return c.version }

// Platform is the agent's GOOS and GOARCH, as its greeting gave them.
func (c *Client) Platform() (goos, goarch string) { return c.goos, c.goarch }

// Close ends the connection, which ends every process and tunnel started
// through it, and waits. An agent on the exec stream ends with it; one
// behind its door serves on.
func (c *Client) Close() error {
	c.sess.Close()
	c.wg.Wait()
	return nil
}

// callOn runs a request/reply exchange on a fresh stream of sess and
// closes it.
func (c *Client) callOn(ctx context.Context, sess *yamux.Session, req request, rep *reply) error {
	st, err := c.openOn(ctx, sess, req, rep)
	if err != nil {
		return err
	}
	return st.Close()
}

// open starts a stream on the session; see openOn.
func (c *Client) open(ctx context.Context, req request, rep *reply) (*yamux.Stream, error) {
	return c.openOn(ctx, c.sess, req, rep)
}

// openOn starts a stream of sess with req and reads its reply; on an error
// reply the stream is closed and the error returned.
func (c *Client) openOn(ctx context.Context, sess *yamux.Session, req request, rep *reply) (*yamux.Stream, error) {
	st, err := sess.OpenStream()
	if err != nil {
		return nil, c.lost(err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	if err := writeJSON(st, frameRequest, req); err != nil {
		st.Close()
		return nil, c.lost(err)
	}
	if err := readJSONMax(st, frameReply, rep, maxJSON); err != nil {
		st.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.lost(err)
	}
	if err := checkReply(req.Op, rep); err != nil {
		st.Close()
		return nil, err
	}
	_ = st.SetDeadline(time.Time{})
	if rep.Error != "" {
		st.Close()
		switch rep.ErrKind {
		case errKindNotFound:
			return nil, fmt.Errorf("%s: %w in the container (%s)", firstArg(req.Argv), backends.ErrCommandNotFound, rep.Error)
		case errKindNotExec:
			return nil, fmt.Errorf("%s: %w in the container (%s)", firstArg(req.Argv), backends.ErrNotExecutable, rep.Error)
		case errKindUser:
			return nil, fmt.Errorf("user: %w: %s", backends.ErrBadUser, rep.Error)
		case errKindCwd:
			return nil, fmt.Errorf("cwd: %w: %s", backends.ErrBadCwd, rep.Error)
		default:
			return nil, fmt.Errorf("agent: %s: %s", req.Op, rep.Error)
		}
	}
	return st, nil
}

func firstArg(argv []string) string {
	if len(argv) == 0 {
		return ""
	}
	return fmt.Sprintf("%q", argv[0])
}

func (c *Client) lost(err error) error {
	if c.sess.IsClosed() {
		return ErrLost
	}
	return fmt.Errorf("agent: %w", err)
}

// Terminal sizes a TTY exec.
type Terminal struct {
	Cols, Rows uint16
}

// Exec starts a process through the agent. tty, when non-nil, runs it on a
// terminal (stdout carries both streams). ctx bounds the start only.
func (c *Client) Exec(ctx context.Context, spec backends.ExecSpec, tty *Terminal) (backends.Process, error) {
	req := request{Op: opExec, Argv: spec.Argv, Env: spec.Env, Cwd: spec.Cwd, User: spec.User, Stdin: spec.Stdin != nil, Helper: spec.Helper}
	if tty != nil {
		req.TTY, req.Cols, req.Rows = true, tty.Cols, tty.Rows
	}
	var rep reply
	st, err := c.open(ctx, req, &rep)
	if err != nil {
		return nil, err
	}
	p := &process{c: c, st: st, pid: rep.PID, stdin: spec.Stdin, done: make(chan struct{})}
	p.wg.Add(1)
	go p.read(spec.Stdout, spec.Stderr)
	if spec.Stdin != nil {
		p.wg.Add(1)
		go p.copyStdin()
	}
	return p, nil
}

// process is one exec through the agent.
//
// Goroutines: read demultiplexes output until the exit frame; copyStdin
// feeds stdin. Wait waits for both.
type process struct {
	c     *Client
	st    *yamux.Stream
	pid   int
	stdin io.Reader
	wg    sync.WaitGroup
	done  chan struct{} // closed when read has finished

	wmu sync.Mutex // serialises frames to the agent

	frames     atomic.Int64 // frames read so far
	delivering atomic.Bool  // read is handing output to stdout or stderr

	// Set by read before done closes.
	status backends.ExitStatus
	err    error
}

func (p *process) read(stdout, stderr io.Writer) {
	defer p.wg.Done()
	defer close(p.done)
	status, reason, err := demux(p.st, stdout, stderr, &p.frames, &p.delivering)
	p.st.Close()
	switch {
	case err == nil:
		p.status, p.err = status, reason
	case errors.Is(err, errBadFrame):
		p.err = err
	case p.c.sess.IsClosed():
		p.err = ErrLost
	default:
		p.err = fmt.Errorf("agent: process stream: %w", err)
	}
}

// demux reads a process stream's frames from r until the exit frame,
// handing output to stdout and stderr. It returns the exit status and the
// error the exit frame reports; err is why the stream ended without one.
// frames counts the frames read, and delivering is set while a writer has
// output.
func demux(r io.Reader, stdout, stderr io.Writer, frames *atomic.Int64, delivering *atomic.Bool) (status backends.ExitStatus, reason, err error) {
	// Little read-ahead: while a writer blocks, what read has taken off the
	// stream waits here, beyond the stream's window.
	br := bufio.NewReaderSize(r, 32<<10)
	var buf []byte
	for {
		typ, payload, err := readFrame(br, buf)
		if err != nil {
			return status, nil, err
		}
		frames.Add(1)
		buf = payload[:0]
		switch typ {
		case frameStdout:
			delivering.Store(true)
			_, _ = stdout.Write(payload)
			delivering.Store(false)
		case frameStderr:
			delivering.Store(true)
			_, _ = stderr.Write(payload)
			delivering.Store(false)
		case frameExit:
			return decodeExit(payload)
		default:
			return status, nil, fmt.Errorf("%w: %q on a process stream", errBadFrame, typ)
		}
	}
}

func (p *process) copyStdin() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := p.stdin.Read(buf)
		if n > 0 {
			if p.frame(frameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = p.frame(frameEOF, nil)
			return
		}
	}
}

func (p *process) frame(typ byte, payload []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return writeFrame(p.st, typ, payload)
}

// Wait implements backends.Process.
func (p *process) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
	if c, ok := p.stdin.(io.Closer); ok {
		_ = c.Close() // unblocks copyStdin
	}
	p.wg.Wait()
	return p.status, p.err
}

// Signal implements backends.Process: the agent signals the whole group.
func (p *process) Signal(ctx context.Context, sig int) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	b, _ := json.Marshal(signalMsg{Signal: sig})
	if err := p.frame(frameSignal, b); err != nil {
		return p.c.lost(err)
	}
	return nil
}

// killWait is how long Kill waits on an agent that sends nothing. A
// loaded 2-core machine can starve a live agent's stream for 2 s.
const killWait = 5 * time.Second

// Kill implements backends.Process. The exit frame comes after the output
// before it, which is read only as fast as the writers take it, so Kill
// waits as long as frames arrive or a writer is busy; it gives up on an
// agent that sends nothing for killWait.
func (p *process) Kill(ctx context.Context) error {
	err := p.Signal(ctx, backends.SIGKILL)
	t := time.NewTicker(killWait)
	defer t.Stop()
	last := p.frames.Load()
	for {
		select {
		case <-p.done:
			return err
		case <-t.C:
			if n := p.frames.Load(); n != last || p.delivering.Load() {
				last = n
				continue
			}
		}
		// Close alone is a half-close and would leave read blocked.
		_ = p.st.SetReadDeadline(time.Now())
		p.st.Close()
		return err
	}
}

// Resize implements backends.Resizer.
func (p *process) Resize(ctx context.Context, cols, rows uint16) error {
	b, _ := json.Marshal(resizeMsg{Cols: cols, Rows: rows})
	return p.frame(frameResize, b)
}

// PID is the process's pid inside the instance.
func (p *process) PID() int { return p.pid }

// Dial connects to addr (host:port) from inside the instance.
func (c *Client) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var rep reply
	st, err := c.open(ctx, request{Op: opDial, Addr: addr}, &rep)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Listener is a listening socket inside the instance.
type Listener struct {
	Port int
	c    *Client
	id   uint64
	st   *yamux.Stream
}

// Close stops listening.
func (l *Listener) Close() error {
	l.c.mu.Lock()
	delete(l.c.listeners, l.id)
	l.c.mu.Unlock()
	return l.st.Close()
}

// Listen listens on addr inside the instance; every connection accepted
// there is passed to handle, which owns it, on its own goroutine.
func (c *Client) Listen(ctx context.Context, addr string, handle func(net.Conn)) (*Listener, error) {
	var rep reply
	st, err := c.open(ctx, request{Op: opListen, Addr: addr}, &rep)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.listeners[rep.Listener] = handle
	c.mu.Unlock()
	return &Listener{Port: rep.Port, c: c, id: rep.Listener, st: st}, nil
}

// maxPendingConns bounds the streams the agent opened that have not yet
// said what they are: as many as yamux holds before berth accepts them.
const maxPendingConns = 256

// acceptOn takes the connections the agent hands back on sess for reverse
// tunnels.
func (c *Client) acceptOn(sess *yamux.Session) {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Streams the agent opened and has not yet said what they are: an
	// agent that opens them without end is refused, not fed memory.
	pending := make(chan struct{}, maxPendingConns)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return
		}
		select {
		case pending <- struct{}{}:
		default:
			c.log.Debug("agent: too many connections handed back at once; refusing one")
			st.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The agent gets as long to say what a stream is as berth
			// gives itself to start a process.
			_ = st.SetReadDeadline(time.Now().Add(helloTimeout))
			var req request
			err := readJSONMax(st, frameRequest, &req, maxJSON)
			<-pending
			if err == nil && req.Op == opBrowse {
				c.answerBrowse(st, req.URL)
				return
			}
			if err != nil || req.Op != opConn || req.Listener == 0 {
				st.Close()
				return
			}
			_ = st.SetReadDeadline(time.Time{})
			c.mu.Lock()
			handle := c.listeners[req.Listener]
			c.mu.Unlock()
			if handle == nil {
				_ = writeJSON(st, frameReply, reply{Error: "listener closed"})
				st.Close()
				return
			}
			if err := writeJSON(st, frameReply, reply{}); err != nil {
				st.Close()
				return
			}
			handle(st)
		}()
	}
}

// answerBrowse hands a $BROWSER request to the handler WatchPorts set, and
// answers the agent.
func (c *Client) answerBrowse(st *yamux.Stream, url string) {
	defer st.Close()
	c.mu.Lock()
	handle := c.browse
	allowed := c.browseAllowed(time.Now())
	c.mu.Unlock()
	err := CheckBrowseURL(url)
	switch {
	case err != nil:
	case handle == nil:
		err = errors.New("this berth session takes no $BROWSER requests")
	case !allowed:
		err = errBrowseFlood
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), browseTimeout)
		err = handle(ctx, url)
		cancel()
	}
	rep := reply{}
	if err != nil {
		rep.Error = err.Error()
	}
	_ = st.SetWriteDeadline(time.Now().Add(writeTimeout))
	_ = writeJSON(st, frameReply, rep)
}

// Proto is the protocol the agent speaks; ProtoPorts and later watch
// ports.
func (c *Client) Proto() int { return c.proto[0] }

// ErrNoPortWatch means the agent predates the port watch (ProtoPorts).
var ErrNoPortWatch = errors.New("the agent predates the port watch")

// WatchPorts reports the instance's listening TCP sockets to onPorts: all
// of them at once, then again each time they change, until ctx ends or
// the connection does; it returns why it stopped. The agent's own
// listeners are never reported. With browse non-nil, the agent also
// passes the $BROWSER helper's requests (already checked with
// CheckBrowseURL) to browse while the watch lasts, the newest watch of all
// berth connections taking them; its error goes back to the helper. With
// onPorts nil, the agent watches no ports and the watch only carries
// browse.
func (c *Client) WatchPorts(ctx context.Context, onPorts func([]ListenPort), browse func(ctx context.Context, url string) error) error {
	if c.proto[0] < ProtoPorts {
		return ErrNoPortWatch
	}
	if browse != nil {
		c.mu.Lock()
		c.browse = browse
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.browse = nil
			c.mu.Unlock()
		}()
	}
	var rep reply
	st, err := c.open(ctx, request{Op: opWatch, Browse: browse != nil, NoPorts: onPorts == nil}, &rep)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		_ = st.SetReadDeadline(time.Now())
		st.Close()
	})
	defer stop()
	defer st.Close()
	var buf []byte
	for {
		typ, payload, err := readFrameMax(st, buf, maxFrame)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return c.lost(err)
		}
		buf = payload[:0]
		if typ != framePorts {
			return fmt.Errorf("%w: %q on a port watch", errBadFrame, typ)
		}
		var m portsMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			return fmt.Errorf("%w: ports: %w", errBadFrame, err)
		}
		if err := checkPorts(&m); err != nil {
			return err
		}
		if onPorts != nil {
			onPorts(m.Ports)
		}
	}
}

// Join copies a and b into each other until both sides are done, then
// closes both. Tunnels use it to splice host sockets to agent streams.
func Join(a, b net.Conn) { join(a, b) }

// pipeConn is the agent's stdio as one connection for yamux.
type pipeConn struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p pipeConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p pipeConn) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p pipeConn) Close() error {
	p.w.Close()
	return p.r.Close()
}

// logWriter turns the agent's stderr into debug log lines.
type logWriter struct {
	log *slog.Logger
	buf []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.Debug("agent: " + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 4096 {
		w.log.Debug("agent: " + string(w.buf))
		w.buf = nil
	}
	return len(p), nil
}
