package incus

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
	"github.com/berthdev/berth/backends/internal/marker"
)

// An incus exec'd process is neither a session nor a process-group leader:
// inside the container it shows pgid 0 and sid 0, its session being the
// daemon's outside the PID namespace. So, as on Docker, every command runs
// under a tiny sh wrapper that reports its pid on stderr, makes itself a
// session leader with setsid and then execs the command in place, so that
// `kill -SIG -PID` from a second exec reaches the whole group.
//
// setsid(1) forks, and exits 0 at once, when its caller already leads a
// process group, which would detach the command from berth; so the wrapper
// calls it only when its pgid (field 5 of /proc/$$/stat) is not its pid.
// Without setsid in the image, signals reach the process alone. The wrapper
// also turns a missing executable into a clear error, and enters the working
// directory itself: given a Cwd that does not exist, incus exec quietly
// starts the command elsewhere.
const (
	wrapper = `[ -z "$1" ] || cd -- "$1" 2>/dev/null || { echo ` + noCwdMarker + ` >&2; exit 126; }; shift; ` +
		`command -v "$1" >/dev/null 2>&1 || { echo ` + missingMarker + ` >&2; exit 127; }; ` +
		`echo ` + pidMarker + `$$ >&2; ` +
		`read -r _ _ _ _ pg _ </proc/$$/stat 2>/dev/null; ` +
		`[ "$pg" != $$ ] && command -v setsid >/dev/null 2>&1 && exec setsid "$@"; exec "$@"`
	pidMarker     = "berth-pid:"
	missingMarker = "berth-missing"
	noCwdMarker   = "berth-no-cwd"
)

// killGrace is how long Kill waits for the output to end before it stops
// waiting for it (a child that left the group may hold it open).
const killGrace = 2 * time.Second

// detachedTimeout bounds the cleanup Exec does after its ctx ended, and the
// signal Kill sends: a frozen incusd must not hold berth's shutdown.
const detachedTimeout = 5 * time.Second

// Exec implements backends.Backend.
func (b *Backend) Exec(ctx context.Context, id string, spec backends.ExecSpec) (backends.Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("incus: exec: empty argv")
	}
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.StatusCode != rest.Running {
		return nil, fmt.Errorf("incus: exec in %s (%s): %w", in.Name, in.Status, backends.ErrNotRunning)
	}
	cwd := spec.Cwd
	if cwd == "" {
		cwd = in.Config[userPrefix+backends.LabelWorkdir] // as Docker's WorkingDir
	}
	cmd := append([]string{"/bin/sh", "-c", wrapper, "berth", cwd}, spec.Argv...)
	if spec.Direct {
		cmd = spec.Argv
	}
	req := rest.ExecPost{
		Command:     cmd,
		WaitForWS:   true,
		Environment: envMap(spec.Env),
		Cwd:         cwd,
	}
	if spec.User != "" {
		u, err := b.lookupUser(ctx, in.Name, spec.User)
		if err != nil {
			return nil, err
		}
		req.User, req.Group = u.uid, u.gid
		if _, ok := req.Environment["HOME"]; !ok && u.home != "" {
			req.Environment["HOME"] = u.home // Incus would say /root
		}
		if _, ok := req.Environment["USER"]; !ok && u.name != "" {
			req.Environment["USER"] = u.name
		}
	}

	p := &process{
		b:        b,
		name:     in.Name,
		direct:   spec.Direct,
		stdin:    spec.Stdin,
		stdout:   &gate{w: spec.Stdout},
		stderr:   &gate{w: spec.Stderr},
		dataDone: make(chan bool),
		started:  make(chan struct{}),
		gaveUp:   make(chan struct{}),
	}
	p.marker = marker.New(p.stderr, p.onMarker)
	args := &rest.ExecStreams{
		Stdout:   p.stdout,
		Stderr:   p.marker,
		DataDone: p.dataDone,
		Control:  p.setControl,
	}
	if p.direct {
		args.Stderr = p.stderr
		close(p.started)
	}
	var stdinW *io.PipeWriter
	if spec.Stdin != nil {
		// rest.Exec copies from stdinR in a goroutine of its own; copyStdin
		// feeds it, so that Wait can end both.
		p.stdinR, stdinW = io.Pipe()
		args.Stdin = p.stdinR
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	op, err := b.c.Exec(ctx, in.Name, req, args) // ctx bounds the request, not the streams
	if err != nil {
		if p.stdinR != nil {
			_ = p.stdinR.Close()
		}
		return nil, b.mapErr("exec in "+in.Name, err, backends.ErrNotFound)
	}
	p.opID = op.ID
	if stdinW != nil {
		p.wg.Add(1)
		go p.copyStdin(stdinW)
	}

	if p.direct {
		return p, nil // a missing executable shows up as exit code 127
	}
	select {
	case <-p.started:
	case <-p.dataDone: // the wrapper never spoke
		p.marker.Flush()
	case <-ctx.Done():
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
		_ = p.Kill(cctx)
		p.giveUp()
		_, _ = p.Wait(cctx)
		return nil, fmt.Errorf("incus: exec %s: %w", spec.Argv[0], ctx.Err())
	}
	if p.missing {
		_, _ = p.Wait(ctx)
		return nil, fmt.Errorf("incus: %q: %w in the container (not on PATH or not executable)", spec.Argv[0], backends.ErrCommandNotFound)
	}
	if p.noCwd {
		_, _ = p.Wait(ctx)
		return nil, fmt.Errorf("incus: exec %q: cwd: %w: %s does not exist in the container or is not accessible", spec.Argv[0], backends.ErrBadCwd, cwd)
	}
	if p.pid == 0 {
		// The wrapper's line never came. Either the wrapper never ran, or
		// incusd dropped it: incusd 6.0 can lose the unread output of a
		// process that has already exited when its stream reader is slow to
		// start (a busy daemon), so a quick command's marker, and perhaps
		// its output, never arrive. The exit code tells: the wrapper itself
		// exits only with 126 or 127.
		st, err := p.Wait(ctx)
		switch {
		case err == nil && st.Code != 126 && st.Code != 127:
			b.log.Warn("incusd dropped the start of an exec's output; the command ran and ended, but its output may be incomplete",
				"instance", in.Name, "argv0", spec.Argv[0], "code", st.Code)
			return p, nil // already waited: Wait returns st again
		case err == nil, errors.Is(err, backends.ErrCommandNotFound):
			return nil, fmt.Errorf("incus: exec %q: berth's exec wrapper needs /bin/sh in the image: %w", spec.Argv[0], backends.ErrCommandNotFound)
		}
		return nil, fmt.Errorf("incus: exec %q: the command did not start: %w", spec.Argv[0], err)
	}
	return p, nil
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

// process is one incus exec.
//
// Goroutines: copyStdin copies the caller's stdin into the pipe rest.Exec
// reads, until either ends; Wait waits for it. rest.Exec's own goroutines
// (output and stdin mirrors, control reader) end with the operation's
// websockets, and its stdin mirror with the pipe, which Wait closes; until
// they do, the gates keep them from the caller's writers once Wait has
// returned.
type process struct {
	b      *Backend
	name   string
	direct bool   // no wrapper: no pid, no signals
	opID   string // set before Exec returns; read-only after
	stdin  io.Reader
	stdinR *io.PipeReader // what rest.Exec reads; nil without stdin
	stdout *gate
	stderr *gate
	marker *marker.Writer

	wg       sync.WaitGroup // copyStdin
	dataDone chan bool      // closed by rest.Exec when all output is written
	started  chan struct{}  // closed once the wrapper reported
	once     sync.Once      // guards closing started
	gaveUp   chan struct{}  // closed when Wait should stop waiting for output
	giveOnce sync.Once

	// Set before started closes (or, without a marker, before dataDone is
	// seen); read-only after.
	pid     int
	missing bool
	noCwd   bool

	ctlMu sync.Mutex
	ctl   *websocket.Conn // the exec's control socket; guarded by ctlMu

	drainOnce sync.Once // guards the end of the streams in Wait

	statusMu sync.Mutex // guards the following
	ended    bool       // status and waitErr are final
	status   backends.ExitStatus
	waitErr  error
}

func (p *process) onMarker(line string) bool {
	defer p.once.Do(func() { close(p.started) })
	switch {
	case line == missingMarker:
		p.missing = true
		return true
	case line == noCwdMarker:
		p.noCwd = true
		return true
	case strings.HasPrefix(line, pidMarker):
		if n, err := strconv.Atoi(strings.TrimPrefix(line, pidMarker)); err == nil {
			p.pid = n
			return true
		}
	}
	return false
}

func (p *process) setControl(c *websocket.Conn) {
	p.ctlMu.Lock()
	p.ctl = c
	p.ctlMu.Unlock()
}

func (p *process) copyStdin(w *io.PipeWriter) {
	defer p.wg.Done()
	_, _ = io.Copy(w, p.stdin)
	_ = w.Close() // EOF for the process, whether stdin ended or was closed
}

// endStdin ends the process's stdin after what copyStdin already holds,
// by closing the caller's side when it can.
func (p *process) endStdin() {
	if c, ok := p.stdin.(io.Closer); ok {
		_ = c.Close()
	} else if p.stdinR != nil {
		_ = p.stdinR.Close()
	}
}

func (p *process) giveUp() { p.giveOnce.Do(func() { close(p.gaveUp) }) }

// closeStdin unblocks copyStdin, which may sit in a Read of the caller's
// stdin, and rest.Exec's reader of the pipe.
func (p *process) closeStdin() {
	if c, ok := p.stdin.(io.Closer); ok {
		_ = c.Close()
	}
	if p.stdinR != nil {
		_ = p.stdinR.Close()
	}
}

// Wait implements backends.Process. It waits for the output to be drained,
// then for the operation, whose metadata holds the exit code. The process
// may run on after closing its output, so that wait ends with ctx too, and
// a later Wait takes it up again.
func (p *process) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.dataDone:
	case <-p.gaveUp:
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
	p.drainOnce.Do(func() {
		p.stdout.close()
		p.stderr.close()
		p.closeStdin()
		p.wg.Wait()
	})
	p.statusMu.Lock()
	defer p.statusMu.Unlock()
	if !p.ended {
		st, err := p.exitStatus(ctx)
		if err != nil && ctx.Err() != nil {
			return st, err
		}
		p.status, p.waitErr, p.ended = st, err, true
	}
	return p.status, p.waitErr
}

func (p *process) exitStatus(ctx context.Context) (backends.ExitStatus, error) {
	gaveUp := false
	select {
	case <-p.gaveUp:
		// The output may never end; don't wait long for the operation.
		gaveUp = true
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, killGrace)
		defer cancel()
	default:
	}
	op, err := p.b.waitOp(ctx, p.opID)
	if code, ok := exitCode(op); ok {
		return backends.StatusFromCode(code), nil
	}
	if gaveUp && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		if p.direct {
			return backends.ExitStatus{}, fmt.Errorf("incus: exec in %s: stream dropped while the process ran on", p.name)
		}
		return backends.StatusFromCode(128 + backends.SIGKILL), nil
	}
	if err == nil {
		err = fmt.Errorf("no exit code in %v", op.Metadata)
	}
	return backends.ExitStatus{}, p.b.mapErr("exec in "+p.name, err, backends.ErrNotFound)
}

// exitCode reads an ended exec operation's exit code. incusd fails the
// operation for codes 126 and 127 ("Command not executable", "Command not
// found") but still records them; -1 means the command never ran.
func exitCode(op *rest.Operation) (int, bool) {
	if op == nil {
		return 0, false
	}
	code, ok := op.Metadata["return"].(float64)
	if !ok || code < 0 {
		return 0, false
	}
	return int(code), true
}

// Signal implements backends.Process.
func (p *process) Signal(ctx context.Context, sig int) error {
	if p.direct {
		return fmt.Errorf("incus: signal: a direct exec has no process group: %w", backends.ErrNotSupported)
	}
	pid := 0
	select {
	case <-p.started: // pid is written before started closes
		pid = p.pid
	default:
	}
	if pid == 0 {
		select {
		case <-p.dataDone:
			return nil // it has exited (and its marker may have been lost)
		default:
		}
		// No pid yet: the control socket reaches the process itself.
		p.ctlMu.Lock()
		defer p.ctlMu.Unlock()
		if p.ctl == nil {
			return fmt.Errorf("incus: signal: process has no pid yet: %w", backends.ErrNotSupported)
		}
		deadline := time.Now().Add(detachedTimeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = p.ctl.SetWriteDeadline(deadline)
		return p.ctl.WriteJSON(rest.ExecControl{Command: "signal", Signal: sig})
	}
	// Negative pid: the whole group. Fall back to the pid if the group is gone.
	script := fmt.Sprintf("kill -%d -%d 2>/dev/null || kill -%d %d", sig, pid, sig, pid)
	code, err := p.b.runCommand(ctx, p.name, []string{"/bin/sh", "-c", script})
	if err != nil {
		return err
	}
	if code != 0 {
		select {
		case <-p.dataDone:
			return nil // it exited meanwhile
		default:
		}
		return fmt.Errorf("incus: kill -%d %d: exit %d (no such process?)", sig, pid, code)
	}
	return nil
}

// Kill implements backends.Process.
func (p *process) Kill(ctx context.Context) error {
	select {
	case <-p.dataDone:
		return nil
	default:
	}
	var err error
	if p.direct {
		p.endStdin() // all a direct exec gets: its stdin ends
	} else {
		sctx, cancel := context.WithTimeout(ctx, detachedTimeout)
		err = p.Signal(sctx, backends.SIGKILL)
		cancel()
	}
	// A daemonised child that escaped the group (or a direct process that
	// ignores its stdin) can hold the output open; don't let it hold Wait.
	select {
	case <-p.dataDone:
	case <-time.After(killGrace):
		p.giveUp()
	}
	return err
}

// runCommand executes argv to completion, its output discarded, and
// returns its exit code. It opens no stream, so ctx bounds all of it.
func (b *Backend) runCommand(ctx context.Context, name string, argv []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	op, err := b.c.Exec(ctx, name, rest.ExecPost{Command: argv}, nil)
	if err != nil {
		return 0, b.mapErr("exec in "+name, err, backends.ErrNotFound)
	}
	res, err := b.waitOp(ctx, op.ID)
	code, ok := exitCode(res)
	if !ok {
		if err == nil {
			err = fmt.Errorf("no exit code in %v", res.Metadata)
		}
		return 0, b.mapErr("exec "+argv[0], err, backends.ErrNotFound)
	}
	return code, nil
}

// execUser is a resolved ExecSpec.User.
type execUser struct {
	uid, gid uint32
	name     string // empty for a uid without a passwd entry
	home     string
}

// lookupUser resolves a user name or uid (optionally :group or :gid) with
// the instance's /etc/passwd and /etc/group, since Incus takes numeric ids.
func (b *Backend) lookupUser(ctx context.Context, name, spec string) (execUser, error) {
	read := func(path string) []byte {
		if ctx.Err() != nil {
			return nil
		}
		rc, err := b.c.File(ctx, name, path)
		if err != nil {
			return nil // a missing file only matters for names, reported below
		}
		defer rc.Close()
		data, _ := io.ReadAll(io.LimitReader(rc, 4<<20))
		return data
	}
	u, err := resolveUser(spec, read("/etc/passwd"), read("/etc/group"))
	if err != nil {
		return execUser{}, fmt.Errorf("incus: exec in %s: user: %w: %v", name, backends.ErrBadUser, err)
	}
	return u, nil
}

// resolveUser does lookupUser's work on the files' contents. As with
// Docker, a uid without an entry gets gid 0 unless a group is given.
func resolveUser(spec string, passwd, group []byte) (execUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var u execUser
	found := false
	for _, f := range colonFields(passwd, 7) {
		if f[0] == userPart || f[2] == userPart {
			uid, err1 := strconv.ParseUint(f[2], 10, 32)
			gid, err2 := strconv.ParseUint(f[3], 10, 32)
			if err1 != nil || err2 != nil {
				continue
			}
			u = execUser{uid: uint32(uid), gid: uint32(gid), name: f[0], home: f[5]}
			found = true
			break
		}
	}
	if !found {
		uid, err := strconv.ParseUint(userPart, 10, 32)
		if err != nil {
			return execUser{}, fmt.Errorf("unable to find user %s: no matching entries in passwd file", userPart)
		}
		u = execUser{uid: uint32(uid), home: "/"}
	}
	if hasGroup {
		gid, err := strconv.ParseUint(groupPart, 10, 32)
		if err != nil {
			found := false
			for _, f := range colonFields(group, 4) {
				if f[0] == groupPart {
					if g, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						gid, found = g, true
						break
					}
				}
			}
			if !found {
				return execUser{}, fmt.Errorf("unable to find group %s: no matching entries in group file", groupPart)
			}
		}
		u.gid = uint32(gid)
	}
	return u, nil
}

// colonFields splits /etc/passwd-style lines, skipping comments and lines
// with fewer than n fields.
func colonFields(data []byte, n int) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= n {
			out = append(out, f)
		}
	}
	return out
}

// gate passes writes through until closed, and drops them after, so that
// rest.Exec's goroutines cannot write to the caller once Wait returned.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool // guarded by mu
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}
