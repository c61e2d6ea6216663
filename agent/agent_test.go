//go:build linux

package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/yamux"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends"
)

// These tests run the agent in-process: Start execs it through inProcess,
// whose Exec runs Serve on the exec's stdio in a goroutine. The processes
// the agent spawns are real host processes.

func TestMain(m *testing.M) {
	noDumpHelper()
	goleak.VerifyTestMain(m)
}

const testHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var discard = slog.New(slog.DiscardHandler)

// inProcess is a backends.Backend whose one working method is a direct
// Exec, which serves the agent in this process on the exec's stdio.
type inProcess struct {
	version string
	door    doorConfig // where a launched agent opens its door

	mu      sync.Mutex // guards the following
	agents  []*agentProc
	daemons []*agentProc // launched behind the door; they outlive their exec
	copies  int
}

var _ backends.Backend = (*inProcess)(nil)

func (b *inProcess) Name() string               { return "inprocess" }
func (b *inProcess) Ping(context.Context) error { return nil }
func (b *inProcess) Ensure(context.Context, backends.Spec) (backends.Instance, bool, error) {
	return backends.Instance{}, false, backends.ErrNotSupported
}
func (b *inProcess) Find(context.Context, string) (backends.Instance, error) {
	return backends.Instance{}, backends.ErrNotSupported
}
func (b *inProcess) List(context.Context) ([]backends.Instance, error) {
	return nil, backends.ErrNotSupported
}
func (b *inProcess) Stop(context.Context, string) error   { return backends.ErrNotSupported }
func (b *inProcess) Remove(context.Context, string) error { return backends.ErrNotSupported }
func (b *inProcess) CopyFrom(context.Context, string, string) (io.ReadCloser, error) {
	return nil, backends.ErrNotSupported
}

// CopyTo counts installs and pretends they worked.
func (b *inProcess) CopyTo(context.Context, string, string, io.Reader) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.copies++
	return nil
}

func (b *inProcess) Exec(_ context.Context, _ string, spec backends.ExecSpec) (backends.Process, error) {
	if !spec.Direct {
		return nil, fmt.Errorf("inprocess: only the agent's direct exec: %w", backends.ErrNotSupported)
	}
	if spec.Argv[len(spec.Argv)-1] == "door" {
		return b.launch(spec), nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{io: stdio{r: spec.Stdin, w: spec.Stdout}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer cancel()
		p.err = Serve(ctx, p.io, discard, b.version)
	}()
	b.mu.Lock()
	b.agents = append(b.agents, p)
	b.mu.Unlock()
	return p, nil
}

// launch runs the door's daemon in a goroutine, as the launcher would in
// a process of its own: the exec ends once the daemon has answered, and
// the daemon serves on until stopDaemons.
func (b *inProcess) launch(spec backends.ExecSpec) backends.Process {
	ctx, cancel := context.WithCancel(context.Background())
	d := &agentProc{cancel: cancel, done: make(chan struct{})}
	answered := &agentProc{cancel: func() {}, done: make(chan struct{})}
	out := &closeOnce{w: spec.Stdout, closed: answered.done}
	go func() {
		defer close(d.done)
		defer cancel()
		d.err = daemon(ctx, spec.Stdin, out, discard, b.version, b.door)
		out.Close()
	}()
	b.mu.Lock()
	b.daemons = append(b.daemons, d)
	b.mu.Unlock()
	return answered
}

// closeOnce is the daemon's stdout: closing it ends the launcher's exec.
type closeOnce struct {
	w      io.Writer
	once   sync.Once
	closed chan struct{}
}

func (c *closeOnce) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *closeOnce) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// stopDaemons stops every daemon launched, as the instance's stop would,
// and fails t unless they return.
func (b *inProcess) stopDaemons(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	daemons := b.daemons
	b.mu.Unlock()
	for i, d := range daemons {
		d.cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Errorf("daemon %d has not returned", i)
		}
	}
}

// waitAgents fails t unless every agent served has returned.
func (b *inProcess) waitAgents(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	agents := b.agents
	b.mu.Unlock()
	for i, p := range agents {
		select {
		case <-p.done:
			if p.err != nil {
				t.Errorf("agent %d: Serve = %v", i, p.err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent %d: Serve has not returned", i)
		}
	}
}

// stdio is the agent's end of its exec's stdin and stdout.
type stdio struct {
	r io.Reader
	w io.Writer
}

func (s stdio) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s stdio) Write(p []byte) (int, error) { return s.w.Write(p) }

// Close closes both ends, as the agent's exit would.
func (s stdio) Close() error {
	if c, ok := s.r.(io.Closer); ok {
		c.Close()
	}
	if c, ok := s.w.(io.Closer); ok {
		c.Close()
	}
	return nil
}

// agentProc is the exec running the agent: the Serve goroutine.
type agentProc struct {
	io     stdio
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve has returned
	err    error         // Serve's result, set before done closes
}

func (p *agentProc) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
		return backends.ExitStatus{}, p.err
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
}

func (p *agentProc) Signal(context.Context, int) error { return backends.ErrNotSupported }

// Kill drops the stream, as a direct exec's Kill does.
func (p *agentProc) Kill(context.Context) error {
	p.cancel()
	return nil
}

// sever cuts the transport under the agent without a word to either side:
// berth died.
func (p *agentProc) sever() { p.io.Close() }

// newClient starts an agent in-process and a client on it. Cleanup closes
// the client and checks that Serve returned.
func newClient(t *testing.T) (*Client, *inProcess) {
	t.Helper()
	b := &inProcess{version: testHash}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, b, "test", &Binary{Hash: testHash}, discard, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		b.waitAgents(t)
	})
	return c, b
}

func (b *inProcess) agent(t *testing.T) *agentProc {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.agents) != 1 {
		t.Fatalf("%d agents started, want 1", len(b.agents))
	}
	return b.agents[0]
}

// result is what a finished process left behind.
type result struct {
	Stdout, Stderr string
	Status         backends.ExitStatus
}

// run starts spec through c, waits for it and returns its output. tty may be
// nil. spec's Stdout and Stderr are set here.
func run(t *testing.T, c *Client, spec backends.ExecSpec, tty *Terminal) (result, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := c.Exec(ctx, spec, tty)
	if err != nil {
		return result{}, err
	}
	st, err := p.Wait(ctx)
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Status: st}, err
}

// watchBuffer collects output written from one goroutine while the test
// reads it, and closes seen once it contains want.
type watchBuffer struct {
	want string
	seen chan struct{}

	mu  sync.Mutex // guards the following
	buf bytes.Buffer
}

func newWatchBuffer(want string) *watchBuffer {
	return &watchBuffer{want: want, seen: make(chan struct{})}
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitSeen waits until w has seen its string.
func waitSeen(t *testing.T, w *watchBuffer) {
	t.Helper()
	select {
	case <-w.seen:
	case <-time.After(10 * time.Second):
		t.Fatalf("output never contained %q; got %q", w.want, w.String())
	}
}

// liveInGroup lists the processes of group pgid that are not zombies (no
// one may be reaping orphans in a container).
func liveInGroup(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid pgrp ...; comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitGroupGone polls until group pgid has no live process, or fails t
// after d. There is no channel to wait on for another process's children.
func waitGroupGone(t *testing.T, pgid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		live := liveInGroup(pgid)
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("process group %d still has live processes %v after %v", pgid, live, d)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killGroup is cleanup for tests that leave a group's stragglers behind.
// It kills the leader by pid too, in case it never got a group of its own.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

func seq(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestExec(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	dir := t.TempDir()
	// 300000 lines of seq are about 2 MiB: more than one frame, more than
	// one yamux window update.
	bigOut, bigErr := seq(1, 300000), seq(1, 200000)
	tests := []struct {
		name  string
		spec  backends.ExecSpec
		stdin string // nil Stdin when empty
		want  result
	}{
		{
			name: "exit 0, streams apart",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "echo out; echo err >&2"}},
			want: result{Stdout: "out\n", Stderr: "err\n"},
		},
		{
			name: "exit 7",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "echo bye; exit 7"}},
			want: result{Stdout: "bye\n", Status: backends.ExitStatus{Code: 7}},
		},
		{
			name: "more than 1 MiB on each stream",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "seq 1 300000; seq 1 200000 >&2"}},
			want: result{Stdout: bigOut, Stderr: bigErr},
		},
		{
			name: "streams interleaved",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "for i in 1 2 3; do echo o$i; echo e$i >&2; done"}},
			want: result{Stdout: "o1\no2\no3\n", Stderr: "e1\ne2\ne3\n"},
		},
		{
			name: "env overlays the agent's",
			spec: backends.ExecSpec{
				Argv: []string{"sh", "-c", `echo "$BERTH_A|$BERTH_B|$HOME|$PATH"`},
				Env:  []string{"BERTH_A=1", "BERTH_B=x=y", "HOME=/nowhere", "BERTH_A=2"},
			},
			want: result{Stdout: "2|x=y|/nowhere|" + os.Getenv("PATH") + "\n"},
		},
		{
			name: "PATH from env finds the command",
			spec: backends.ExecSpec{Argv: []string{"true"}, Env: []string{"PATH=/nonexistent:/usr/bin:/bin"}},
			want: result{},
		},
		{
			name: "cwd",
			spec: backends.ExecSpec{Argv: []string{"pwd", "-P"}, Cwd: dir},
			want: result{Stdout: dir + "\n"},
		},
		{
			name: "relative command resolved in cwd",
			spec: backends.ExecSpec{Argv: []string{"./run.sh"}, Cwd: dir},
			want: result{Stdout: "ran\n"},
		},
		{
			name:  "stdin, data then EOF",
			spec:  backends.ExecSpec{Argv: []string{"cat"}},
			stdin: "hello\nworld without newline",
			want:  result{Stdout: "hello\nworld without newline"},
		},
		{
			name:  "stdin counted",
			spec:  backends.ExecSpec{Argv: []string{"wc", "-c"}},
			stdin: strings.Repeat("z", 3<<20),
			want:  result{Stdout: strconv.Itoa(3<<20) + "\n"},
		},
		{
			name: "no stdin reads as empty",
			spec: backends.ExecSpec{Argv: []string{"wc", "-c"}},
			want: result{Stdout: "0\n"},
		},
		{
			name: "user by uid",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "id -u; id -g; echo $HOME"}, User: "65534"},
			want: result{Stdout: "65534\n65534\n/nonexistent\n"},
		},
		{
			name: "user by name",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "id -u; id -g"}, User: "nobody"},
			want: result{Stdout: "65534\n65534\n"},
		},
		{
			name: "uid:gid",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "id -u; id -g"}, User: "65534:0"},
			want: result{Stdout: "65534\n0\n"},
		},
		{
			name: "uid unknown to passwd runs with gid 0",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "id -u; id -g"}, User: "54321"},
			want: result{Stdout: "54321\n0\n"},
		},
		{
			name: "HOME given wins over the user's",
			spec: backends.ExecSpec{Argv: []string{"sh", "-c", "echo $HOME"}, User: "65534", Env: []string{"HOME=/h"}},
			want: result{Stdout: "/h\n"},
		},
	}
	if err := os.WriteFile(dir+"/run.sh", []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec
			if tt.stdin != "" {
				spec.Stdin = strings.NewReader(tt.stdin)
			}
			got, err := run(t, c, spec, nil)
			if err != nil {
				t.Fatalf("run %q: %v", spec.Argv, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				if len(diff) > 2000 {
					diff = diff[:2000] + "..."
				}
				t.Errorf("run %q (-want +got):\n%s", spec.Argv, diff)
			}
		})
	}
}

func TestExecErrors(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	file := t.TempDir() + "/file"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec backends.ExecSpec
		want error
	}{
		{"missing command", backends.ExecSpec{Argv: []string{"berth-no-such-command"}}, backends.ErrCommandNotFound},
		{"missing absolute path", backends.ExecSpec{Argv: []string{"/nonexistent/bin/x"}}, backends.ErrCommandNotFound},
		{"not executable", backends.ExecSpec{Argv: []string{file}}, backends.ErrNotExecutable},
		{"a directory", backends.ExecSpec{Argv: []string{"/"}}, backends.ErrNotExecutable},
		{"PATH without it", backends.ExecSpec{Argv: []string{"sh"}, Env: []string{"PATH=/nonexistent"}}, backends.ErrCommandNotFound},
		{"missing cwd", backends.ExecSpec{Argv: []string{"true"}, Cwd: "/nonexistent/dir"}, backends.ErrBadCwd},
		{"cwd is a file", backends.ExecSpec{Argv: []string{"true"}, Cwd: file}, backends.ErrBadCwd},
		{"unknown user", backends.ExecSpec{Argv: []string{"true"}, User: "berth-no-such-user"}, backends.ErrBadUser},
		{"unknown group", backends.ExecSpec{Argv: []string{"true"}, User: "nobody:berth-no-such-group"}, backends.ErrBadUser},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := run(t, c, tt.spec, nil)
			if !errors.Is(err, tt.want) {
				t.Errorf("run %q = %v, want %v", tt.spec.Argv, err, tt.want)
			}
		})
	}
	t.Run("empty argv", func(t *testing.T) {
		t.Parallel()
		_, err := run(t, c, backends.ExecSpec{}, nil)
		if err == nil || !strings.Contains(err.Error(), "empty argv") {
			t.Errorf("run with no argv = %v, want an empty argv error", err)
		}
	})
}

// As another user, a directory it may not enter and a command it may not
// run fail alike in the kernel (EACCES); berth tells them apart.
func TestExecErrorsAsAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run as nobody")
	}
	t.Parallel()
	c, _ := newClient(t)
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	locked, open := filepath.Join(base, "locked"), filepath.Join(base, "open")
	for d, mode := range map[string]os.FileMode{locked: 0o700, open: 0o755} {
		if err := os.Mkdir(d, mode); err != nil {
			t.Fatal(err)
		}
	}
	inner := filepath.Join(locked, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(open, "private")
	if err := os.WriteFile(private, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec backends.ExecSpec
		want error
	}{
		{"a directory it may not enter", backends.ExecSpec{Argv: []string{"true"}, Cwd: locked, User: "nobody"}, backends.ErrBadCwd},
		{"below a directory it may not enter", backends.ExecSpec{Argv: []string{"true"}, Cwd: inner, User: "nobody"}, backends.ErrBadCwd},
		{"a command it may not run", backends.ExecSpec{Argv: []string{private}, Cwd: open, User: "nobody"}, backends.ErrNotExecutable},
	}
	for _, tt := range tests {
		for _, tty := range []*Terminal{nil, {Cols: 80, Rows: 24}} {
			t.Run(fmt.Sprintf("%s tty=%t", tt.name, tty != nil), func(t *testing.T) {
				t.Parallel()
				_, err := run(t, c, tt.spec, tty)
				if !errors.Is(err, tt.want) {
					t.Errorf("run %q in %s = %v, want %v", tt.spec.Argv, tt.spec.Cwd, err, tt.want)
				}
			})
		}
	}
}

// started runs argv and returns once it has printed ready: its children
// exist.
func started(t *testing.T, c *Client, argv []string, tty *Terminal) (*process, *watchBuffer) {
	t.Helper()
	out := newWatchBuffer("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.Exec(ctx, backends.ExecSpec{Argv: argv, Stdout: out, Stderr: out}, tty)
	if err != nil {
		t.Fatalf("Exec %q: %v", argv, err)
	}
	proc := p.(*process)
	t.Cleanup(func() { killGroup(proc.PID()) })
	waitSeen(t, out)
	return proc, out
}

func TestSignalReachesGroup(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	tests := []struct {
		name string
		sig  int
		want backends.ExitStatus
	}{
		{"SIGTERM", backends.SIGTERM, backends.ExitStatus{Code: 128 + 15, Signal: "SIGTERM"}},
		{"SIGHUP", 1, backends.ExitStatus{Code: 128 + 1, Signal: "SIGHUP"}},
		{"SIGKILL", backends.SIGKILL, backends.ExitStatus{Code: 128 + 9, Signal: "SIGKILL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := "sleep 1000 & sleep 1000 & echo ready; wait"
			p, _ := started(t, c, []string{"sh", "-c", script}, nil)
			pg := p.PID()
			if live := liveInGroup(pg); len(live) < 3 {
				t.Fatalf("group %d has %v before the signal, want the shell and two sleeps", pg, live)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Signal(ctx, tt.sig); err != nil {
				t.Fatalf("Signal: %v", err)
			}
			st, err := p.Wait(ctx)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if diff := cmp.Diff(tt.want, st); diff != "" {
				t.Errorf("exit status (-want +got):\n%s", diff)
			}
			waitGroupGone(t, pg, 2*time.Second)
			// Signalling an exited process is not an error.
			if err := p.Signal(ctx, backends.SIGTERM); err != nil {
				t.Errorf("Signal after exit = %v, want nil", err)
			}
		})
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	p, _ := started(t, c, []string{"sh", "-c", "trap '' TERM; echo ready; sleep 1000"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Kill(ctx); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if want := (backends.ExitStatus{Code: 137, Signal: "SIGKILL"}); st != want {
		t.Errorf("Wait after Kill = %+v, want %+v", st, want)
	}
	waitGroupGone(t, p.PID(), 2*time.Second)
	if err := p.Kill(ctx); err != nil {
		t.Errorf("second Kill = %v, want nil", err)
	}
}

// TestBerthGone checks the agent's promise: when its stream ends, every
// process group it started dies, and Serve returns.
func TestBerthGone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		gone func(c *Client, a *agentProc)
	}{
		{"transport severed", func(c *Client, a *agentProc) { a.sever() }},
		{"client closed", func(c *Client, a *agentProc) { c.Close() }},
		{"agent's exec killed", func(c *Client, a *agentProc) { _ = a.Kill(context.Background()) }},
	}
	procs := []struct {
		argv []string
		tty  *Terminal
	}{
		{[]string{"sh", "-c", "sleep 1000 & sleep 1000 & echo ready; wait"}, nil},
		// Ignoring SIGTERM (inherited by the sleep) needs the SIGKILL.
		{[]string{"sh", "-c", "trap '' TERM; sleep 1000 & echo ready; wait"}, nil},
		{[]string{"sh", "-c", "sleep 1000 & echo ready; wait"}, &Terminal{Cols: 80, Rows: 24}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, b := newClient(t)
			a := b.agent(t)
			// Registered before the processes' own cleanup, so it runs
			// after they are killed: a broken agent fails the test rather
			// than hang it.
			var gone sync.WaitGroup
			t.Cleanup(gone.Wait)
			var ps []*process
			for _, pr := range procs {
				p, _ := started(t, c, pr.argv, pr.tty)
				ps = append(ps, p)
			}
			start := time.Now()
			gone.Go(func() { tt.gone(c, a) })
			select {
			case <-a.done:
			case <-time.After(5 * time.Second):
				t.Fatal("Serve did not return after berth went away")
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("client's Done did not close after the agent went away")
			}
			if c.Alive() {
				t.Error("Alive() = true after the agent went away")
			}
			for _, p := range ps {
				waitGroupGone(t, p.PID(), 2*time.Second-time.Since(start))
			}
			t.Logf("all groups gone %v after berth went away", time.Since(start))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i, p := range ps {
				if _, err := p.Wait(ctx); !errors.Is(err, ErrLost) {
					t.Errorf("process %d: Wait = %v, want ErrLost", i, err)
				}
			}
			if _, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard}, nil); !errors.Is(err, ErrLost) {
				t.Errorf("Exec after the agent went away = %v, want ErrLost", err)
			}
		})
	}
}

func TestExitNotStalledByBackgroundChild(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	p, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"sh", "-c", "sleep 5 & echo hi"}, Stdout: &stdout, Stderr: &stderr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killGroup(p.(*process).PID()) })
	st, err := p.Wait(ctx)
	elapsed := time.Since(start)
	if err != nil || st != (backends.ExitStatus{}) {
		t.Fatalf("Wait = %+v, %v; want exit 0", st, err)
	}
	if stdout.String() != "hi\n" {
		t.Errorf("stdout = %q, want %q", stdout.String(), "hi\n")
	}
	// drainGrace is 200ms; 5s would mean the exit waited for the sleep.
	if elapsed > 2*time.Second {
		t.Errorf("Wait took %v with a child holding stdout, want about drainGrace (%v)", elapsed, drainGrace)
	}
}

var ptsPath = regexp.MustCompile(`^/dev/pts/[0-9]+$`)

func TestTTY(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	tests := []struct {
		name     string
		term     Terminal
		wantSize string
	}{
		{"requested size", Terminal{Cols: 100, Rows: 30}, "30 100"},
		{"zero means 80x24", Terminal{}, "24 80"},
		{"wide", Terminal{Cols: 400, Rows: 10}, "10 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			term := tt.term
			got, err := run(t, c, backends.ExecSpec{Argv: []string{"sh", "-c", "tty; stty size; echo err >&2"}}, &term)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(got.Stdout, "\r\n"), "\r\n")
			if len(lines) != 3 || !ptsPath.MatchString(lines[0]) || lines[1] != tt.wantSize || lines[2] != "err" {
				t.Errorf("stdout = %q, want a /dev/pts path, %q and err, CRLF-terminated", got.Stdout, tt.wantSize)
			}
			if got.Stderr != "" {
				t.Errorf("stderr = %q, want everything on stdout", got.Stderr)
			}
		})
	}
}

func TestTTYResizeAndStdin(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	out := newWatchBuffer("ready")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := c.Exec(ctx, backends.ExecSpec{
		Argv:   []string{"sh", "-c", "stty -echo; echo ready; read line; echo \"got $line\"; stty size; cat"},
		Stdin:  stdinR,
		Stdout: out, Stderr: out,
	}, &Terminal{Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	waitSeen(t, out)
	r, ok := p.(backends.Resizer)
	if !ok {
		t.Fatal("a TTY process is not a backends.Resizer")
	}
	if err := r.Resize(ctx, 120, 40); err != nil {
		t.Fatalf("Resize: %v", err)
	}
	// Resize and stdin share the stream, in order: the size is set before
	// the line arrives.
	if _, err := io.WriteString(stdinW, "hello\nrest\n"); err != nil {
		t.Fatal(err)
	}
	stdinW.Close() // EOF on a terminal is ^D: cat ends after "rest"
	st, err := p.Wait(ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("Wait = %+v, %v; want exit 0", st, err)
	}
	want := "ready\r\ngot hello\r\n40 120\r\nrest\r\n"
	if got := out.String(); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

// echoServer listens on 127.0.0.1 and echoes each connection until EOF,
// then half-closes. It returns the address; cleanup closes it and waits.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// exchange writes data to c, half-closes it, and reads c to EOF
// concurrently, returning what it read.
func exchange(t *testing.T, c net.Conn, data []byte) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		closeWrite(c)
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Errorf("write: %v", err)
	}
	return got
}

func TestDial(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	addr := echoServer(t)
	for _, n := range []int{1, 5 << 20} {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := c.Dial(ctx, addr)
			if err != nil {
				t.Fatalf("Dial(%s): %v", addr, err)
			}
			defer conn.Close()
			data := randomBytes(t, n)
			if got := exchange(t, conn, data); !bytes.Equal(got, data) {
				t.Errorf("echo returned %d bytes, want the %d sent", len(got), len(data))
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := c.Dial(ctx, addr); err == nil {
			conn.Close()
			t.Errorf("Dial(%s) with nothing listening succeeded", addr)
		} else if !strings.Contains(err.Error(), "refused") {
			t.Errorf("Dial(%s) = %v, want connection refused", addr, err)
		}
	})
}

func TestListen(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The handler echoes, like a host service a reverse tunnel leads to.
	handled := make(chan struct{}, 10)
	ln, err := c.Listen(ctx, "127.0.0.1:0", func(conn net.Conn) {
		defer conn.Close()
		handled <- struct{}{}
		_, _ = io.Copy(conn, conn)
		closeWrite(conn)
	})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	if ln.Port == 0 {
		t.Fatal("Listen returned port 0")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Port))
	for i, n := range []int{5, 3 << 20, 1} {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: dial %s: %v", i, addr, err)
		}
		data := randomBytes(t, n)
		if got := exchange(t, conn, data); !bytes.Equal(got, data) {
			t.Errorf("connection %d: got %d bytes back, want the %d sent", i, len(got), len(data))
		}
		conn.Close()
	}
	if len(handled) != 3 {
		t.Errorf("handler ran %d times, want 3", len(handled))
	}
	if err := ln.Close(); err != nil {
		t.Fatalf("Listener.Close: %v", err)
	}
	// The agent closes its socket once it sees the listen stream end.
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections after Listener.Close", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Listen(ctx, "127.0.0.1:99999", func(net.Conn) {}); err == nil {
		t.Error("Listen on a bad address succeeded")
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	return a, b
}

// yamuxPair returns both ends of one yamux stream over a net.Pipe.
func yamuxPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	p1, p2 := net.Pipe()
	cli, err := yamux.Client(p1, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := yamux.Server(p2, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		srv.Close()
	})
	a, err := cli.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	b, err := srv.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestJoin(t *testing.T) {
	t.Parallel()
	pairs := map[string]func(*testing.T) (net.Conn, net.Conn){"tcp": tcpPair, "yamux": yamuxPair}
	tests := []struct {
		left, right string
		n1, n2      int
	}{
		{"tcp", "tcp", 4, 4},
		{"tcp", "tcp", 3 << 20, 1 << 20},
		{"yamux", "tcp", 4, 0},
		{"yamux", "tcp", 2 << 20, 3 << 20},
		{"tcp", "yamux", 0, 4},
		{"yamux", "yamux", 1 << 20, 7},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s-%s/%d-%d", tt.left, tt.right, tt.n1, tt.n2), func(t *testing.T) {
			t.Parallel()
			// x ~ a  join  b ~ y
			x, a := pairs[tt.left](t)
			b, y := pairs[tt.right](t)
			joined := make(chan struct{})
			go func() {
				defer close(joined)
				Join(a, b)
			}()
			defer func() { <-joined }()
			defer x.Close()
			defer y.Close()

			// x says its piece and half-closes; y only sees EOF after it,
			// and can still answer.
			d1, d2 := randomBytes(t, tt.n1), randomBytes(t, tt.n2)
			got1 := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(y)
				got1 <- b
			}()
			if _, err := x.Write(d1); err != nil {
				t.Fatal(err)
			}
			closeWrite(x)
			select {
			case g := <-got1:
				if !bytes.Equal(g, d1) {
					t.Errorf("y got %d bytes, want the %d x sent", len(g), len(d1))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("x's EOF never reached y")
			}
			select {
			case <-joined:
				t.Fatal("Join returned after one direction ended")
			default:
			}
			got2 := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(x)
				got2 <- b
			}()
			if _, err := y.Write(d2); err != nil {
				t.Fatalf("y writes after x's EOF: %v", err)
			}
			closeWrite(y)
			select {
			case g := <-got2:
				if !bytes.Equal(g, d2) {
					t.Errorf("x got %d bytes, want the %d y sent", len(g), len(d2))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("y's EOF never reached x")
			}
			select {
			case <-joined:
			case <-time.After(10 * time.Second):
				t.Fatal("Join did not return after both directions ended")
			}
			// Both joined ends are closed.
			for name, c := range map[string]net.Conn{"a": a, "b": b} {
				if _, err := c.Write([]byte("late")); err == nil {
					t.Errorf("%s: Write after Join returned = nil error, want closed", name)
				}
			}
		})
	}
}

func TestStartInstallsOnVersionMismatch(t *testing.T) {
	t.Parallel()
	b := &inProcess{version: "some-other-build"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	path := t.TempDir() + "/berth-agent"
	if err := os.WriteFile(path, []byte("not really an agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := &Binary{Hash: testHash, Path: path}
	c, err := Start(ctx, b, "test", bin, discard, Options{})
	if err == nil {
		c.Close()
		t.Fatal("Start with an agent of another build succeeded")
	}
	if !strings.Contains(err.Error(), "reports build") {
		t.Errorf("Start = %v, want a build mismatch", err)
	}
	b.mu.Lock()
	copies, agents := b.copies, len(b.agents)
	b.mu.Unlock()
	if copies != 1 || agents != 2 {
		t.Errorf("Start made %d copies and %d starts, want 1 install between 2 tries", copies, agents)
	}
	b.waitAgents(t)
}

func TestHelloVersion(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	if got := c.Version(); got != testHash {
		t.Errorf("Version() = %q, want %q", got, testHash)
	}
	if !c.Alive() {
		t.Error("Alive() = false on a fresh client")
	}
	if c.FastPath() {
		t.Error("FastPath() = true with no FastDir")
	}
}

// Guard against an agent that forgot to put processes in their own group:
// Setpgid must make the child its group's leader.
func TestOwnProcessGroup(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	got, err := run(t, c, backends.ExecSpec{Argv: []string{"sh", "-c", "echo $$; cut -d' ' -f5 /proc/$$/stat"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(got.Stdout)
	if len(f) != 2 || f[0] != f[1] {
		t.Errorf("pid and pgid = %q, want equal", got.Stdout)
	}
	if pg, _ := strconv.Atoi(f[len(f)-1]); pg == syscall.Getpgrp() {
		t.Errorf("process runs in the test's own group %d", pg)
	}
}
