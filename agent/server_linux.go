package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// Server is the agent's side: it runs inside the instance and serves
// connections, each a yamux session: the exec stream it was started on, or,
// as the door's daemon, every connection that passes the door. A
// connection owns the process groups and listeners started through it, and
// they end with it: when berth closes it, dies (EOF), or goes silent past
// the keepalive bound.
//
// Goroutines: per connection, its accept loop (run), one handler per stream
// (exec, dial, listen), each with its own copiers, and one accept loop per
// listener; the door's accept loop. run waits for a connection's; the
// serve functions wait for every connection's run.
type Server struct {
	log      *slog.Logger
	version  string
	wg       sync.WaitGroup // run, per connection
	browsers browserSet     // connections that take $BROWSER requests

	mu     sync.Mutex // guards the following
	conns  map[*conn]bool
	closed bool
}

// conn is one connection to the agent and everything started through it.
type conn struct {
	s    *Server
	sess *yamux.Session
	wg   sync.WaitGroup // stream handlers and listener loops

	mu        sync.Mutex   // guards the following
	groups    map[int]bool // process groups started through it; true: a helper of berth's
	listeners map[uint64]net.Listener
	nextLn    uint64
}

func newServer(log *slog.Logger, version string) *Server {
	if err := loopbackUp(); err != nil {
		log.Debug("could not bring lo up", "err", err)
	}
	return &Server{log: log, version: version, conns: map[*conn]bool{}}
}

// Serve runs the agent on rwc (its stdin and stdout) until the stream ends
// or ctx is done, then kills every process group it started.
func Serve(ctx context.Context, rwc io.ReadWriteCloser, log *slog.Logger, version string) error {
	return serve(ctx, rwc, log, version, "", "")
}

// ServeInstance is Serve in an instance: it also serves the $BROWSER
// helper's socket in BrowseDir, and links BrowserPath to the agent.
func ServeInstance(ctx context.Context, rwc io.ReadWriteCloser, log *slog.Logger, version string) error {
	return serve(ctx, rwc, log, version, BrowseDir, BrowserPath)
}

func serve(ctx context.Context, rwc io.ReadWriteCloser, log *slog.Logger, version, browseDir, browserLink string) error {
	sess, err := yamux.Server(newJoinedConn(rwc), muxConfig())
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	s := newServer(log, version)
	if browseDir != "" {
		if stop, err := s.openBrowse(browseDir, browserLink); err != nil {
			log.Debug("no $BROWSER socket", "err", err)
		} else {
			defer stop()
		}
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	s.run(sess)
	return nil
}

// run serves one connection until it ends, then ends what it started:
// nothing berth started may outlive berth's connection.
func (s *Server) run(sess *yamux.Session) {
	c := &conn{s: s, sess: sess, groups: map[int]bool{}, listeners: map[uint64]net.Listener{}}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sess.Close()
		return
	}
	s.conns[c] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.handle(st)
		}()
	}
	c.killAll()
	c.closeListeners()
	sess.Close()
	c.wg.Wait()
}

// count is the number of live connections.
func (s *Server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// closeAll ends every connection and refuses new ones.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.sess.Close()
	}
}

func (c *conn) handle(st *yamux.Stream) {
	defer st.Close()
	var req request
	if err := readJSON(st, frameRequest, &req); err != nil {
		c.s.log.Debug("bad request", "err", err)
		return
	}
	switch req.Op {
	case opHello:
		_ = writeJSON(st, frameReply, reply{Version: c.s.version, Proto: protoVersion, MinProto: minProto, OS: runtime.GOOS, Arch: runtime.GOARCH, PID: os.Getpid()})
	case opExec:
		c.exec(st, req)
	case opDial:
		c.dial(st, req)
	case opListen:
		c.listen(st, req)
	case opWatch:
		c.watch(st, req)
	case opService:
		c.service(st, req)
	case opProcs:
		_ = writeJSON(st, frameReply, reply{Count: c.s.processes()})
	case opSync:
		if err := serveSync(st, req.Cwd); err != nil {
			c.s.log.Debug("sync stream", "err", err)
		}
	default:
		_ = writeJSON(st, frameReply, reply{Error: fmt.Sprintf("unknown op %q", req.Op)})
	}
}

// loopbackUp brings lo up: a container with no NIC and a minimal init may
// have it down, and tunnels dial 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// killGrace is how long process groups get between SIGTERM and SIGKILL
// when berth goes away.
const killGrace = 300 * time.Millisecond

func (c *conn) killAll() {
	c.mu.Lock()
	groups := make([]int, 0, len(c.groups))
	for pg := range c.groups {
		groups = append(groups, pg)
	}
	c.mu.Unlock()
	if len(groups) == 0 {
		return
	}
	for _, pg := range groups {
		_ = syscall.Kill(-pg, syscall.SIGTERM)
	}
	deadline := time.Now().Add(killGrace)
	for time.Now().Before(deadline) {
		alive := false
		for _, pg := range groups {
			if syscall.Kill(-pg, 0) == nil {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, pg := range groups {
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	}
}

// credential resolves "name", "uid", "name:group" or "uid:gid" from the
// container's /etc/passwd and /etc/group. A bare uid unknown to passwd runs
// with gid 0, as docker exec does.
func credential(spec string) (*syscall.Credential, string, error) {
	name, group, _ := strings.Cut(spec, ":")
	var uid, gid uint64
	home := "/"
	var groups []uint32
	if u, err := user.Lookup(name); err == nil {
		uid, _ = strconv.ParseUint(u.Uid, 10, 32)
		gid, _ = strconv.ParseUint(u.Gid, 10, 32)
		home = u.HomeDir
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil {
					groups = append(groups, uint32(g))
				}
			}
		}
	} else if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
		uid = n
		if u, err := user.LookupId(name); err == nil {
			gid, _ = strconv.ParseUint(u.Gid, 10, 32)
			home = u.HomeDir
		}
	} else {
		return nil, "", fmt.Errorf("unknown user %q: not in the container's /etc/passwd", name)
	}
	if group != "" {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ = strconv.ParseUint(g.Gid, 10, 32)
		} else if n, perr := strconv.ParseUint(group, 10, 32); perr == nil {
			gid = n
		} else {
			return nil, "", fmt.Errorf("unknown group %q: not in the container's /etc/group", group)
		}
		groups = nil
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, home, nil
}

// mergeEnv overlays extra KEY=VALUE pairs on base.
func mergeEnv(base, extra []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range append(append([]string(nil), base...), extra...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func envValue(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// lookPath resolves argv0 against the process's own PATH, not the agent's.
func lookPath(argv0 string, env []string, cwd string) (string, error) {
	// A file that exists but can't be run (a directory, no x bit) is
	// errNotExecutable, as the shells' 126 is to their 127.
	var denied string
	isExec := func(p string) bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			if denied == "" {
				denied = p
			}
			return false
		}
		return true
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) && cwd != "" {
			p = filepath.Join(cwd, p)
		}
		if isExec(p) {
			return argv0, nil
		}
		if denied != "" {
			return "", fmt.Errorf("%s: %w", argv0, errNotExecutable)
		}
		return "", fmt.Errorf("%s: no such executable", argv0)
	}
	path, ok := envValue(env, "PATH")
	if !ok {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		if p := filepath.Join(dir, argv0); isExec(p) {
			return p, nil
		}
	}
	if denied != "" {
		return "", fmt.Errorf("%s: %w", denied, errNotExecutable)
	}
	return "", fmt.Errorf("%s: not found in PATH %s", argv0, path)
}

// errNotExecutable is a command that exists but can't be run.
var errNotExecutable = errors.New("is a directory or not executable")

// streamWriter serialises frames from several goroutines onto one stream.
type streamWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (sw *streamWriter) frame(typ byte, p []byte) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return writeFrame(sw.w, typ, p)
}

// framed is frame for a payload after frameHead bytes of room in b.
func (sw *streamWriter) framed(typ byte, b []byte) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return writeFramed(sw.w, typ, b)
}

// drainGrace is how long output may keep flowing after the process exited,
// from children that inherited its stdout. After it, berth reports the exit
// rather than stall (docker exec stalls ~2 s here). It starts once the
// output the process left in its pipes has been read, however long a slow
// client makes that take.
const drainGrace = 200 * time.Millisecond

// pending is how many bytes wait in a pipe or terminal to be read
// (TIOCINQ is FIONREAD).
func pending(f *os.File) int64 {
	var n int
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	}
	return int64(n)
}

// prepare makes req's command, with its environment, user and directory,
// and attr, its process attributes (group, session, credentials); kind
// classifies an error for berth.
func prepare(req request, attr *syscall.SysProcAttr) (cmd *exec.Cmd, kind string, err error) {
	if len(req.Argv) == 0 {
		return nil, "", errors.New("empty argv")
	}
	env := mergeEnv(os.Environ(), req.Env)
	if _, ok := envValue(req.Env, "PWD"); !ok && req.Cwd != "" {
		env = mergeEnv(env, []string{"PWD=" + req.Cwd}) // not the agent's own
	}
	if req.User != "" {
		cred, home, err := credential(req.User)
		if err != nil {
			return nil, errKindUser, err
		}
		attr.Credential = cred
		if _, ok := envValue(req.Env, "HOME"); !ok {
			env = mergeEnv(env, []string{"HOME=" + home})
		}
	}
	if req.Cwd != "" {
		if fi, err := os.Stat(req.Cwd); err != nil || !fi.IsDir() {
			return nil, errKindCwd, fmt.Errorf("%s is not a directory in the container", req.Cwd)
		}
	}
	path, err := lookPath(req.Argv[0], env, req.Cwd)
	if err != nil {
		kind := errKindNotFound
		if errors.Is(err, errNotExecutable) {
			kind = errKindNotExec
		}
		return nil, kind, err
	}
	return &exec.Cmd{Path: path, Args: req.Argv, Env: env, Dir: req.Cwd, SysProcAttr: attr}, "", nil
}

func (c *conn) exec(st *yamux.Stream, req request) {
	fail := func(kind string, err error) {
		_ = writeJSON(st, frameReply, reply{Error: err.Error(), ErrKind: kind})
	}
	attr := &syscall.SysProcAttr{Setpgid: !req.TTY, Setsid: req.TTY, Setctty: req.TTY}
	cmd, kind, err := prepare(req, attr)
	if err != nil {
		fail(kind, err)
		return
	}

	var (
		stdin     io.WriteCloser
		outs      []*os.File // read ends, in frame-type order
		types     []byte
		childEnds []*os.File
		ptmx      *os.File
	)
	if req.TTY {
		ws := &pty.Winsize{Cols: req.Cols, Rows: req.Rows}
		if ws.Cols == 0 || ws.Rows == 0 {
			ws = &pty.Winsize{Cols: 80, Rows: 24}
		}
		cmd.SysProcAttr = nil // pty sets its own attributes below
		ptmx, err = pty.StartWithAttrs(cmd, ws, attr)
		if err != nil {
			fail(startErr(cmd, err))
			return
		}
		stdin, outs, types = ptmx, []*os.File{ptmx}, []byte{frameStdout}
	} else {
		or, ow, err := os.Pipe()
		if err != nil {
			fail("", err)
			return
		}
		er, ew, err := os.Pipe()
		if err != nil {
			fail("", err)
			return
		}
		cmd.Stdout, cmd.Stderr = ow, ew
		widenPipe(or)
		outs, types, childEnds = []*os.File{or, er}, []byte{frameStdout, frameStderr}, []*os.File{ow, ew}
		if req.Stdin {
			ir, iw, err := os.Pipe()
			if err != nil {
				fail("", err)
				return
			}
			cmd.Stdin, stdin = ir, iw
			childEnds = append(childEnds, ir)
		}
		if err := cmd.Start(); err != nil {
			for _, f := range append(outs, childEnds...) {
				f.Close()
			}
			if stdin != nil {
				stdin.Close()
			}
			fail(startErr(cmd, err))
			return
		}
		for _, f := range childEnds {
			f.Close()
		}
	}
	pid := cmd.Process.Pid
	c.mu.Lock()
	c.groups[pid] = req.Helper
	c.mu.Unlock()
	defer func() {
		// Children the process left running in its group still belong to
		// berth: keep the group until it is empty, so they die with it.
		if syscall.Kill(-pid, 0) != nil {
			c.mu.Lock()
			delete(c.groups, pid)
			c.mu.Unlock()
		}
	}()

	sw := &streamWriter{w: st}
	if err := writeJSON(st, frameReply, reply{PID: pid}); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}

	// Output copiers.
	var outWG sync.WaitGroup
	read := make([]atomic.Int64, len(outs)) // bytes each copier has taken
	for i, f := range outs {
		outWG.Add(1)
		go func() {
			defer outWG.Done()
			// Read after room for the frame's header: each read goes out
			// in one write, with no buffer allocated for it.
			buf := make([]byte, frameHead+256<<10)
			for {
				n, err := f.Read(buf[frameHead:])
				if n > 0 {
					read[i].Add(int64(n))
					if werr := sw.framed(types[i], buf[:frameHead+n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}

	// Control reader: stdin, signals, resizes. It ends when berth closes
	// its side of the stream or the stream dies.
	in := newQueue()
	// A resize works on the terminal's raw descriptor, which must not be
	// closed (and maybe reused) under it.
	var ptyMu sync.Mutex
	ptyClosed := false // guarded by ptyMu
	closeOuts := func() {
		ptyMu.Lock()
		defer ptyMu.Unlock()
		for _, f := range outs {
			f.Close()
		}
		ptyClosed = true
	}
	var ctlWG sync.WaitGroup
	ctlWG.Add(2)
	go func() {
		defer ctlWG.Done()
		in.drainTo(stdin)
	}()
	go func() {
		defer ctlWG.Done()
		defer in.close()
		var buf []byte
		for {
			typ, p, err := readFrame(st, buf)
			if err != nil {
				return
			}
			buf = p[:0]
			switch typ {
			case frameStdin:
				in.push(p)
			case frameEOF:
				if ptmx != nil {
					in.push([]byte{4}) // a terminal's EOF is ^D; closing it would hang up
				} else {
					in.close()
				}
			case frameSignal:
				var m signalMsg
				if json.Unmarshal(p, &m) == nil && m.Signal > 0 {
					_ = syscall.Kill(-pid, syscall.Signal(m.Signal))
				}
			case frameResize:
				var m resizeMsg
				if ptmx != nil && json.Unmarshal(p, &m) == nil {
					ptyMu.Lock()
					if !ptyClosed {
						_ = pty.Setsize(ptmx, &pty.Winsize{Cols: m.Cols, Rows: m.Rows})
					}
					ptyMu.Unlock()
				}
			}
		}
	}()

	werr := cmd.Wait()
	drained := make(chan struct{})
	go func() {
		outWG.Wait()
		close(drained)
	}()
	// The process's own output is what the copiers hold and what its pipes
	// hold now: all of it goes to berth. Then drainGrace starts.
	left := make([]int64, len(outs))
	for i, f := range outs {
		left[i] = read[i].Load() + pending(f)
	}
	ownRead := func() bool {
		for i := range outs {
			if read[i].Load() < left[i] {
				return false
			}
		}
		return true
	}
	tick := time.NewTicker(drainGrace / 8)
	var grace <-chan time.Time
wait:
	for {
		select {
		case <-drained:
			break wait
		case <-tick.C:
			if grace == nil && ownRead() {
				grace = time.After(drainGrace)
			}
		case <-grace:
			closeOuts() // unblocks the copiers
			<-drained
			break wait
		}
	}
	tick.Stop()
	closeOuts()
	var ex exitMsg
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				ex.Signal = int(ws.Signal())
				ex.Code = 128 + ex.Signal
			} else {
				ex.Code = ee.ExitCode()
			}
		} else {
			ex.Code, ex.Reason = -1, werr.Error()
		}
	}
	_ = sw.frame(frameExit, mustJSON(ex))
	// Half-close; berth closes its side after reading the exit frame, which
	// ends the control reader.
	_ = st.Close()
	in.close()
	ctlWG.Wait()
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// queue is stdin in flight: the control reader must never block on a
// process that doesn't read its stdin, or signals would queue behind.
type queue struct {
	mu     sync.Mutex
	chunks [][]byte
	closed bool
	ready  chan struct{} // closed and replaced on every change
}

func newQueue() *queue { return &queue{ready: make(chan struct{})} }

func (q *queue) push(p []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.chunks = append(q.chunks, append([]byte(nil), p...))
	close(q.ready)
	q.ready = make(chan struct{})
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ready)
		q.ready = make(chan struct{})
	}
}

// drainTo writes queued chunks to w until the queue is closed and empty,
// then closes w. A nil w discards.
func (q *queue) drainTo(w io.WriteCloser) {
	if w != nil {
		defer w.Close()
	}
	for {
		q.mu.Lock()
		chunks, closed, ready := q.chunks, q.closed, q.ready
		q.chunks = nil
		q.mu.Unlock()
		for _, c := range chunks {
			if w != nil {
				if _, err := w.Write(c); err != nil {
					w = nil // the process closed stdin; keep draining
				}
			}
		}
		if closed && len(chunks) == 0 {
			return
		}
		if len(chunks) == 0 {
			<-ready
		}
	}
}

func (c *conn) dial(st *yamux.Stream, req request) {
	nc, err := net.DialTimeout("tcp", req.Addr, 10*time.Second)
	if err != nil {
		_ = writeJSON(st, frameReply, reply{Error: err.Error()})
		return
	}
	if err := writeJSON(st, frameReply, reply{}); err != nil {
		nc.Close()
		return
	}
	join(st, nc)
}

func (c *conn) listen(st *yamux.Stream, req request) {
	ln, err := net.Listen("tcp", req.Addr)
	if err != nil {
		_ = writeJSON(st, frameReply, reply{Error: err.Error()})
		return
	}
	c.mu.Lock()
	c.nextLn++
	id := c.nextLn
	c.listeners[id] = ln
	c.mu.Unlock()
	port := ln.Addr().(*net.TCPAddr).Port
	if err := writeJSON(st, frameReply, reply{Port: port, Listener: id}); err != nil {
		ln.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.connBack(nc, id)
			}()
		}
	}()
	// The listen stream is the listener's lifetime: berth closes it to stop.
	_, _ = io.Copy(io.Discard, st)
	c.mu.Lock()
	delete(c.listeners, id)
	c.mu.Unlock()
	ln.Close()
	wg.Wait()
}

// connBack hands a connection accepted in the container to berth.
func (c *conn) connBack(nc net.Conn, id uint64) {
	st, err := c.sess.OpenStream()
	if err != nil {
		nc.Close()
		return
	}
	var rep reply
	if err := writeJSON(st, frameRequest, request{Op: opConn, Listener: id}); err == nil {
		err = readJSON(st, frameReply, &rep)
		if err == nil && rep.Error == "" {
			join(st, nc)
			return
		}
	}
	nc.Close()
	st.Close()
}

func (c *conn) closeListeners() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ln := range c.listeners {
		ln.Close()
		delete(c.listeners, id)
	}
}

// startErr classifies an error of cmd's start, with a terminal or without,
// for berth: not found, not executable, a working directory its user can't
// enter, or "" for anything else. The kernel answers EACCES alike for a
// command the user may not run and a directory it may not enter, and the
// agent's own stat of the directory, as root, found it there: only the
// user's permissions on the way to it tell the two apart.
func startErr(cmd *exec.Cmd, err error) (string, error) {
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Op != "fork/exec" {
		return "", err // not the process's start: a pipe, a terminal
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errKindNotFound, err
	case errors.Is(err, os.ErrPermission), errors.Is(err, syscall.ENOEXEC):
		if attr := cmd.SysProcAttr; attr != nil && attr.Credential != nil && cmd.Dir != "" && !maySearch(cmd.Dir, attr.Credential) {
			return errKindCwd, fmt.Errorf("%s can't be entered by user %d in the container: %w", cmd.Dir, attr.Credential.Uid, err)
		}
		return errKindNotExec, err
	}
	return "", err
}

// maySearch reports whether cred may pass through every directory on the
// way to dir and into it, by the mode bits (ACLs aside).
func maySearch(dir string, cred *syscall.Credential) bool {
	if cred.Uid == 0 {
		return true
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return false
		}
		var bit uint32
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return false
		}
		if p == "/" || p == "." {
			return true
		}
	}
}

// outputPipeSize is a process's stdout pipe capacity, up from the kernel's
// 64 KiB. A writer that outpaces berth fills it while a frame is on its
// way, so the next read takes up to the copier's whole buffer: a quarter
// of the frames, and of the wake-ups on both ends (on Incus, `berth exec`
// went from 68–81% of `incus exec`'s rate to 95–118%). No larger: the
// kernel counts a pipe's capacity against its user, and an unprivileged
// user (an Incus container's root) past fs.pipe-user-pages-soft (64 MiB)
// gets small pipes everywhere.
const outputPipeSize = 256 << 10

// widenPipe grows f's pipe to outputPipeSize, as far as the kernel allows
// (fs.pipe-max-size); a pipe left at the default only costs speed.
func widenPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, outputPipeSize) })
	}
}
