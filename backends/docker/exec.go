package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/internal/marker"
)

// A docker exec cannot be signalled or killed through the API (moby#9098),
// but runc makes every exec a session and process-group leader. So each
// command runs under a tiny sh wrapper that reports its pid on stderr and
// then execs the command in place; signals go to that process group with a
// second exec of kill. The wrapper also turns a missing executable into a
// clear error instead of a per-engine exit code.
const (
	wrapper       = `command -v "$1" >/dev/null 2>&1 || { echo ` + missingMarker + ` >&2; exit 127; }; echo ` + pidMarker + `$$ >&2; exec "$@"`
	pidMarker     = "berth-pid:"
	missingMarker = "berth-missing"
)

// detachedTimeout bounds each engine call made after the caller's ctx was
// left behind (to learn an exit status, or to clean up), and the signal
// that Kill sends: a frozen daemon must not hold berth's shutdown. Tests
// shorten it.
var detachedTimeout = 5 * time.Second

// killGrace is how long Kill waits for the stream to end after the signal
// before it closes the stream itself.
const killGrace = time.Second

// Exec implements backends.Backend.
func (b *Backend) Exec(ctx context.Context, id string, spec backends.ExecSpec) (backends.Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("docker: exec: empty argv")
	}
	cmd := append([]string{"/bin/sh", "-c", wrapper, "berth"}, spec.Argv...)
	if spec.Direct {
		cmd = spec.Argv
	}
	opts := container.ExecOptions{
		Cmd:          cmd,
		Env:          spec.Env,
		WorkingDir:   spec.Cwd,
		User:         spec.User,
		AttachStdout: true,
		AttachStderr: true,
		AttachStdin:  spec.Stdin != nil,
	}
	created, err := b.cli.ContainerExecCreate(ctx, id, opts)
	if err != nil {
		return nil, b.execErr(id, err)
	}
	// ctx bounds the dial only: the hijacked stream outlives it.
	hj, err := b.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil && spec.User != "" && b.name == PodmanName && strings.Contains(err.Error(), "unable to upgrade") {
		// Podman refuses the upgrade when the exec can't start, and the
		// client drops its answer; a user it can't find is what does that
		// (a missing cwd fails later, on the stream).
		return nil, fmt.Errorf("docker: user: %w: Podman could not start the process as %q; is it in the container's /etc/passwd? (%v)", backends.ErrBadUser, spec.User, err)
	}
	if err != nil {
		return nil, b.execErr(id, err)
	}
	p := &process{
		b:       b,
		cid:     id,
		execID:  created.ID,
		hj:      hj,
		argv0:   spec.Argv[0],
		stdin:   spec.Stdin,
		started: make(chan struct{}),
		done:    make(chan struct{}),
	}
	p.marker = marker.New(spec.Stderr, p.onMarker)
	p.stdout = &heldWriter{w: spec.Stdout}
	if spec.Direct {
		p.stdout.release()
		p.direct = true
		p.marker.Pass()
		close(p.started)
	}
	p.wg.Add(1)
	go p.demux(p.stdout)
	if spec.Stdin != nil {
		p.wg.Add(1)
		go p.copyStdin()
	} else {
		_ = hj.CloseWrite()
	}

	select {
	case <-p.started:
	case <-ctx.Done():
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
		_ = p.Kill(cctx)
		_, _ = p.Wait(cctx)
		return nil, fmt.Errorf("docker: exec %s: %w", spec.Argv[0], ctx.Err())
	}
	if p.direct {
		return p, nil
	}
	if p.missing {
		_, _ = p.Wait(ctx)
		return nil, fmt.Errorf("docker: %q: %w in the container (not on PATH or not executable)", spec.Argv[0], backends.ErrCommandNotFound)
	}
	if p.pid == 0 {
		// The wrapper never ran; the engine said why on the stream.
		_, _ = p.Wait(ctx)
		return nil, startError(spec, strings.TrimSpace(p.stdout.buf.String()+p.marker.First()))
	}
	return p, nil
}

// startError explains an exec that failed before the wrapper ran, from
// what the engine wrote on the stream.
func startError(spec backends.ExecSpec, msg string) error {
	switch {
	case strings.Contains(msg, "chdir to cwd"):
		return fmt.Errorf("docker: cwd: %w: %s is not a directory in the container", backends.ErrBadCwd, spec.Cwd)
	case strings.Contains(msg, "unable to find user"), strings.Contains(msg, "no matching entries in passwd"):
		return fmt.Errorf("docker: user: %w: %q is not in the container's /etc/passwd", backends.ErrBadUser, spec.User)
	case strings.Contains(msg, "/bin/sh") || msg == "":
		return fmt.Errorf("docker: exec %q: the plain exec path needs /bin/sh in the image (the agent doesn't): %w", spec.Argv[0], backends.ErrCommandNotFound)
	}
	return fmt.Errorf("docker: exec %q failed to start: %s", spec.Argv[0], msg)
}

// heldWriter holds stdout until the wrapper has reported, so that a failed
// start's message from the engine is not mistaken for the command's output.
type heldWriter struct {
	w        io.Writer
	buf      bytes.Buffer
	released bool
}

func (h *heldWriter) Write(p []byte) (int, error) {
	if h.released {
		return h.w.Write(p)
	}
	return h.buf.Write(p)
}

func (h *heldWriter) release() {
	if !h.released {
		h.released = true
		if h.buf.Len() > 0 {
			_, _ = h.w.Write(h.buf.Bytes())
			h.buf.Reset()
		}
	}
}

func (b *Backend) execErr(id string, err error) error {
	// Podman says "can only create exec sessions on running containers".
	if msg := err.Error(); strings.Contains(msg, "is not running") || strings.Contains(msg, "on running containers") {
		return fmt.Errorf("docker: exec in %s: %w", id, backends.ErrNotRunning)
	}
	return b.mapErr("exec in "+id, err, backends.ErrNotFound)
}

// process is one docker exec.
//
// Goroutines: demux copies the multiplexed output until the stream ends;
// copyStdin copies stdin until it ends or the process exits. Wait waits for
// both.
type process struct {
	b      *Backend
	cid    string
	execID string
	hj     types.HijackedResponse
	argv0  string
	stdin  io.Reader
	marker *marker.Writer
	stdout *heldWriter

	wg      sync.WaitGroup
	started chan struct{} // closed once the wrapper reported, or the stream ended (or at once when direct)
	done    chan struct{} // closed when output is drained
	once    sync.Once     // guards closing started

	direct bool // no wrapper: no pid, no signals

	// Set before started closes; read-only after.
	pid     int
	missing bool

	waitOnce sync.Once
	status   backends.ExitStatus
	waitErr  error
}

func (p *process) onMarker(line string) bool {
	if p.direct {
		return false
	}
	defer p.once.Do(func() { close(p.started) })
	switch {
	case line == missingMarker:
		p.missing = true
		return true
	case strings.HasPrefix(line, pidMarker):
		if n, err := strconv.Atoi(strings.TrimPrefix(line, pidMarker)); err == nil {
			p.pid = n
			p.stdout.release()
			return true
		}
	}
	return false
}

func (p *process) demux(stdout io.Writer) {
	defer p.wg.Done()
	defer close(p.done)
	_, err := stdcopy.StdCopy(stdout, p.marker, p.hj.Reader)
	if err != nil {
		p.b.log.Debug("exec stream ended", "instance", p.cid, "err", err)
	}
	p.marker.Flush()
	if !p.direct {
		p.once.Do(func() { close(p.started) })
	}
}

func (p *process) copyStdin() {
	defer p.wg.Done()
	_, _ = io.Copy(p.hj.Conn, p.stdin)
	_ = p.hj.CloseWrite()
}

// Wait implements backends.Process.
func (p *process) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
	p.waitOnce.Do(func() {
		// Unblock copyStdin, which may sit in a Read of the caller's stdin.
		if c, ok := p.stdin.(io.Closer); ok {
			_ = c.Close()
		}
		p.hj.Close()
		p.wg.Wait()
		// The status is learnt once for every caller, so no caller's ctx
		// may cut it short; detachedTimeout bounds it instead.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		defer cancel()
		p.status, p.waitErr = p.exitStatus(sctx)
	})
	return p.status, p.waitErr
}

// exitStatus inspects the finished exec. The engine may report it running
// for a moment after the stream closed, so it polls for a while, and then
// takes the last answer.
func (p *process) exitStatus(ctx context.Context) (backends.ExitStatus, error) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		ins, err := p.b.cli.ContainerExecInspect(ctx, p.execID)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				return backends.ExitStatus{}, fmt.Errorf("docker: exec inspect: %w: the daemon did not answer in time (is dockerd frozen?): %w",
					backends.ErrUnavailable, err)
			}
			return backends.ExitStatus{}, p.b.mapErr("exec inspect", err, backends.ErrNotFound)
		}
		if !ins.Running || time.Now().After(deadline) {
			return backends.StatusFromCode(ins.ExitCode), nil
		}
		select {
		case <-ctx.Done():
			return backends.StatusFromCode(ins.ExitCode), nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Signal implements backends.Process.
func (p *process) Signal(ctx context.Context, sig int) error {
	pid := 0
	select {
	case <-p.started: // pid is written before started closes
		pid = p.pid
	default: // Exec is still waiting for the wrapper (and Kill gives up on it)
	}
	if pid == 0 {
		return fmt.Errorf("docker: signal: process has no pid: %w", backends.ErrNotSupported)
	}
	// Negative pid: the whole group. Fall back to the pid if the group is gone.
	script := fmt.Sprintf("kill -%d -%d 2>/dev/null || kill -%d %d", sig, pid, sig, pid)
	code, out, err := p.b.run(ctx, p.cid, []string{"/bin/sh", "-c", script})
	if err != nil {
		return err
	}
	if code != 0 {
		select {
		case <-p.done:
			return nil // it exited meanwhile
		default:
		}
		return fmt.Errorf("docker: kill -%d %d: exit %d: %s", sig, pid, code, strings.TrimSpace(out))
	}
	return nil
}

// Kill implements backends.Process.
func (p *process) Kill(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if p.direct {
		p.hj.Close()
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, detachedTimeout)
	err := p.Signal(sctx, backends.SIGKILL)
	cancel()
	if err != nil {
		// No signal went out (the daemon may be frozen): drop the stream,
		// which is all that unblocks Wait.
		p.hj.Close()
		return err
	}
	// A daemonised child that escaped the group can hold the stream open;
	// don't let it hold us.
	select {
	case <-p.done:
	case <-time.After(killGrace):
		p.hj.Close()
	}
	return nil
}

// run executes argv to completion and returns its exit code and combined output.
func (b *Backend) run(ctx context.Context, id string, argv []string) (int, string, error) {
	created, err := b.cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, "", b.execErr(id, err)
	}
	hj, err := b.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return 0, "", b.execErr(id, err)
	}
	defer hj.Close()
	// The stream does not watch ctx; closing it ends the copy.
	stop := context.AfterFunc(ctx, hj.Close)
	defer stop()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, hj.Reader); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, out.String(), fmt.Errorf("docker: exec %s: %w", argv[0], err)
	}
	p := &process{b: b, execID: created.ID}
	st, err := p.exitStatus(ctx)
	return st.Code, out.String(), err
}
