package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
)

func TestRun(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Memory: memory.Options{Users: map[string]int{"root": 0, "dev": 1000}}})
	c, _ := e.client(nil, false)
	e.run(c, "mkdir", "-p", e.workdir()+"/sub")
	wd := e.workdir()
	tests := []struct {
		name    string
		opts    ExecOptions
		timeout time.Duration
		want    RunResult
		wantErr error
	}{
		{name: "exit 0", opts: ExecOptions{Argv: []string{"true"}}},
		{name: "exit 1", opts: ExecOptions{Argv: []string{"false"}}, want: RunResult{Status: backends.ExitStatus{Code: 1}}},
		{name: "exit code and both streams", opts: ExecOptions{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}},
			want: RunResult{Status: backends.ExitStatus{Code: 7}, Stdout: "out\n", Stderr: "err\n"}},
		{name: "container paths mapped to host paths", opts: ExecOptions{Argv: []string{"echo", wd + "/a.go:3:1: x"}, MapPaths: true},
			want: RunResult{Stdout: filepath.Join(e.ws, "a.go") + ":3:1: x\n"}},
		{name: "unmapped without MapPaths", opts: ExecOptions{Argv: []string{"echo", wd + "/a.go"}},
			want: RunResult{Stdout: wd + "/a.go\n"}},
		{name: "default cwd", opts: ExecOptions{Argv: []string{"pwd"}}, want: RunResult{Stdout: wd + "\n"}},
		{name: "relative cwd", opts: ExecOptions{Argv: []string{"pwd"}, Cwd: "sub"}, want: RunResult{Stdout: wd + "/sub\n"}},
		{name: "host cwd", opts: ExecOptions{Argv: []string{"pwd"}, Cwd: filepath.Join(e.ws, "sub")}, want: RunResult{Stdout: wd + "/sub\n"}},
		{name: "host cwd as URI", opts: ExecOptions{Argv: []string{"pwd"}, Cwd: "file://" + filepath.Join(e.ws, "sub")}, want: RunResult{Stdout: wd + "/sub\n"}},
		{name: "container cwd", opts: ExecOptions{Argv: []string{"pwd"}, Cwd: "/tmp"}, want: RunResult{Stdout: "/tmp\n"}},
		{name: "container cwd as URI", opts: ExecOptions{Argv: []string{"pwd"}, Cwd: "file:///tmp"}, want: RunResult{Stdout: "/tmp\n"}},
		{name: "env", opts: ExecOptions{Argv: []string{"sh", "-c", "echo $A-$B"}, Env: map[string]string{"A": "1", "B": "two"}}, want: RunResult{Stdout: "1-two\n"}},
		{name: "user", opts: ExecOptions{Argv: []string{"id", "-un"}, User: "dev"}, want: RunResult{Stdout: "dev\n"}},
		{name: "timeout", opts: ExecOptions{Argv: []string{"sleep", "10"}}, timeout: 50 * time.Millisecond,
			want: RunResult{Status: backends.ExitStatus{Code: 137, Signal: "SIGKILL"}, TimedOut: true}},
		{name: "command not found", opts: ExecOptions{Argv: []string{"no-such-command"}}, wantErr: backends.ErrCommandNotFound},
		{name: "unknown user", opts: ExecOptions{Argv: []string{"true"}, User: "nobody"}, wantErr: backends.ErrBadUser},
		{name: "missing cwd", opts: ExecOptions{Argv: []string{"true"}, Cwd: "/no/such/dir"}, wantErr: backends.ErrBadCwd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Workspace = e.ws
			got, err := c.Run(testCtx(t), tt.opts, tt.timeout)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Run (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws}, 0); err == nil {
		t.Errorf("Run without argv succeeded")
	}
}

func TestRunTruncatesOutput(t *testing.T) {
	big := strings.Repeat("é", MaxRunOutput) // 2 bytes each
	e := newMemEnv(t, memEnvOptions{Memory: memory.Options{Commands: map[string]memory.Command{
		"big": func(_ context.Context, p *memory.Proc) int {
			io.WriteString(p.Stdout, big)
			io.WriteString(p.Stderr, "small")
			return 0
		},
	}}})
	c, _ := e.client(nil, false)
	res := e.run(c, "big")
	if !res.Truncated || len(res.Stdout) != MaxRunOutput || res.Stdout != big[:MaxRunOutput] || res.Stderr != "small" {
		t.Errorf("truncated %v, stdout %d bytes, stderr %q", res.Truncated, len(res.Stdout), res.Stderr)
	}
}

func TestRunCancelled(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, _ := e.client(nil, false)
	e.run(c, "true")
	ctx, cancel := context.WithCancel(testCtx(t))
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.Run(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "10"}}, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v, want context.Canceled", err)
	}
	procs, _ := e.mem.Processes(e.ws)
	if len(procs) != 0 {
		t.Errorf("still running: %q", procs)
	}
}

func TestExecStdin(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	p, err := c.Exec(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"cat"}, Stdin: true, Kind: "run"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Stdin(p.ID(), "hello\n", false); err != nil {
		t.Fatal(err)
	}
	if got := sink.output(p.ID(), "stdout"); got != "" {
		t.Errorf("output %q before Release", got)
	}
	p.Release()
	sink.wait(t, "the echo", func() bool { return sink.out[p.ID()]["stdout"] == "hello\n" })
	if err := c.Stdin(p.ID(), "bye", true); err != nil {
		t.Fatal(err)
	}
	if ex := sink.waitExit(t, p.ID()); ex != (recExit{}) {
		t.Errorf("exit %+v", ex)
	}
	<-p.Done()
	if got := sink.output(p.ID(), "stdout"); got != "hello\nbye" {
		t.Errorf("stdout %q", got)
	}

	tests := []struct {
		name string
		err  error
		want error
	}{
		{"exited", c.Stdin(p.ID(), "more", false), ErrProcessExited},
		{"unknown pid", c.Stdin("p999", "x", false), ErrNoSuchProcess},
	}
	q, err := c.Exec(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "infinity"}})
	if err != nil {
		t.Fatal(err)
	}
	q.Release()
	r, err := c.Exec(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "infinity"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	tests = append(tests,
		struct {
			name string
			err  error
			want error
		}{"started without stdin", c.Stdin(q.ID(), "x", false), ErrStdinClosed},
		struct {
			name string
			err  error
			want error
		}{"closing", c.Stdin(r.ID(), "x", true), nil},
		struct {
			name string
			err  error
			want error
		}{"closed already", c.Stdin(r.ID(), "x", false), ErrStdinClosed},
	)
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
}

func TestSignal(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	tests := []struct {
		sig  int
		want backends.ExitStatus
	}{
		{backends.SIGTERM, backends.ExitStatus{Code: 143, Signal: "SIGTERM"}},
		{backends.SIGKILL, backends.ExitStatus{Code: 137, Signal: "SIGKILL"}},
		{2, backends.ExitStatus{Code: 130, Signal: "SIGINT"}},
	}
	for _, tt := range tests {
		p, err := c.Exec(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "sleep 100; echo never"}})
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
		if err := c.Signal(testCtx(t), p.ID(), 17); err != nil { // SIGCHLD: ignored
			t.Fatal(err)
		}
		if err := c.Signal(testCtx(t), p.ID(), tt.sig); err != nil {
			t.Fatal(err)
		}
		if ex := sink.waitExit(t, p.ID()); ex.Status != tt.want {
			t.Errorf("signal %d: exit %+v, want %+v", tt.sig, ex.Status, tt.want)
		}
		<-p.Done()
		if err := c.Signal(testCtx(t), p.ID(), tt.sig); !errors.Is(err, ErrProcessExited) {
			t.Errorf("signalling an exited process: %v", err)
		}
		if err := c.Resize(testCtx(t), p.ID(), 80, 24); !errors.Is(err, ErrProcessExited) {
			t.Errorf("resizing an exited process: %v", err)
		}
	}
	if err := c.Signal(testCtx(t), "p999", 15); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("unknown pid: %v", err)
	}
	if err := c.Resize(testCtx(t), "p999", 80, 24); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("resize unknown pid: %v", err)
	}
}

// Terminals and tunnels need the agent; without it they say so.
func TestNeedsAgent(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	p, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "infinity"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	r, err := c.Ready(ctx, e.ws, "")
	if err != nil {
		t.Fatal(err)
	}
	_, errTTY := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sh"}, TTY: true, Cols: 80, Rows: 24})
	_, errFwd := c.Forward(ctx, e.ws, "", "127.0.0.1", 8080, 0)
	_, errRev := c.Reverse(ctx, e.ws, "", 8080, 0)
	for name, err := range map[string]error{
		"tty": errTTY, "forward": errFwd, "reverse": errRev, "NeedAgent": c.NeedAgent(ctx, r),
	} {
		if !errors.Is(err, ErrNeedsAgent) || !strings.Contains(err.Error(), "agent not configured") {
			t.Errorf("%s: %v, want ErrNeedsAgent saying why", name, err)
		}
	}
	if err := c.Resize(ctx, p.ID(), 80, 24); !errors.Is(err, backends.ErrNotSupported) {
		t.Errorf("resize without a tty: %v", err)
	}
	if err := c.CloseTunnel("t1"); !errors.Is(err, ErrNoSuchTunnel) {
		t.Errorf("CloseTunnel: %v", err)
	}
	if got := c.Tunnels(""); len(got) != 0 {
		t.Errorf("tunnels %+v", got)
	}
	if err := c.CloseTunnelOnExit(p, "t1"); err != nil {
		t.Errorf("CloseTunnelOnExit: %v", err)
	}
}

func TestProcesses(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	ws2, err := ResolveWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	var pids []string
	for _, o := range []ExecOptions{
		{Workspace: e.ws, Argv: []string{"sh", "-c", "exit 3"}, Kind: "test"},
		{Workspace: ws2, Argv: []string{"sleep", "infinity"}, Kind: "debug"},
		{Workspace: e.ws, Argv: []string{"sleep", "infinity"}, Kind: "run"},
		{Workspace: e.ws, Argv: []string{"true"}, Kind: "os", Internal: true},
	} {
		p, err := c.Exec(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		p.Release()
		pids = append(pids, p.ID())
	}
	sink.waitExit(t, pids[0])
	sink.waitExit(t, pids[3])
	type row struct {
		ID, Workspace, Kind, State string
		Argv                       []string
		Code                       int
	}
	rows := func(infos []ProcessInfo) []row {
		var out []row
		for _, in := range infos {
			out = append(out, row{in.ID, in.Workspace, in.Kind, in.State, in.Argv, in.Status.Code})
			if in.StartedAt.IsZero() || (in.State == StateExited) == in.FinishedAt.IsZero() {
				t.Errorf("%s: started %v, finished %v", in.ID, in.StartedAt, in.FinishedAt)
			}
		}
		return out
	}
	all := []row{
		{pids[0], e.ws, "test", StateExited, []string{"sh", "-c", "exit 3"}, 3},
		{pids[1], ws2, "debug", StateRunning, []string{"sleep", "infinity"}, 0},
		{pids[2], e.ws, "run", StateRunning, []string{"sleep", "infinity"}, 0},
	}
	if diff := cmp.Diff(all, rows(c.Processes(""))); diff != "" {
		t.Errorf("Processes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]row{all[0], all[2]}, rows(c.Processes(e.ws))); diff != "" {
		t.Errorf("Processes of one workspace (-want +got):\n%s", diff)
	}
	p, err := c.lookup(pids[1])
	if err != nil || p.Info().Kind != "debug" {
		t.Errorf("lookup: %+v, %v", p, err)
	}
	if err := p.Kill(ctx); err != nil {
		t.Errorf("Kill: %v", err)
	}
	if ex := sink.waitExit(t, pids[1]); ex.Status.Code != 137 {
		t.Errorf("killed: %+v", ex)
	}
}

// A client remembers the last KeepExited exited processes, and every
// running one.
func TestKeepExited(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a thousand processes")
	}
	e := newMemEnv(t, memEnvOptions{})
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	running, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "infinity"}})
	if err != nil {
		t.Fatal(err)
	}
	running.Release()
	const extra = 5
	for range KeepExited + extra {
		e.run(c, "true")
	}
	infos := c.Processes("")
	if len(infos) != KeepExited+1 {
		t.Fatalf("%d processes listed, want %d", len(infos), KeepExited+1)
	}
	if infos[0].ID != running.ID() || infos[0].State != StateRunning {
		t.Errorf("first listed %+v, want the running one", infos[0])
	}
	if want := fmt.Sprintf("p%d", 2+extra); infos[1].ID != want {
		t.Errorf("oldest exited kept is %s, want %s", infos[1].ID, want)
	}
}

// Close ends every process, SIGTERM first, and refuses new ones.
func TestClientClose(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Memory: memory.Options{Commands: map[string]memory.Command{
		// stubborn ignores its ctx: only the backend's cut-off ends it.
		"stubborn": func(ctx context.Context, p *memory.Proc) int {
			time.Sleep(2 * time.Second)
			return 0
		},
	}}})
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	var pids []string
	for _, argv := range [][]string{{"sleep", "infinity"}, {"sh", "-c", "sleep 100"}, {"stubborn"}} {
		p, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p.ID())
		// Not released: Close must release them.
	}
	start := time.Now()
	c.Close(ctx)
	if d := time.Since(start); d > closeBudget {
		t.Errorf("Close took %v", d)
	}
	for _, pid := range pids {
		if ex := sink.waitExit(t, pid); ex.Status.Code != 143 {
			t.Errorf("%s: exit %+v, want SIGTERM's", pid, ex)
		}
	}
	if _, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Exec after Close: %v", err)
	}
	if _, err := c.Run(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if _, err := c.RunWork(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("RunWork after Close: %v", err)
	}
	if err := c.CloseTunnelOnExit(nil, "t1"); !errors.Is(err, ErrClosed) {
		t.Errorf("CloseTunnelOnExit after Close: %v", err)
	}
	c.Close(ctx) // twice is fine
}

// A start that finds its instance gone brings it back once.
func TestExecRecreatesAVanishedInstance(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"onCreateCommand": "echo created >> /tmp/created.log"`), NoWatch: true})
	c, _ := e.client(nil, false)
	e.run(c, "true")
	first, _ := e.mem.Find(testCtx(t), e.ws)
	if err := e.mem.RemoveExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	// berth hears nothing (NoWatch) and still thinks it is there.
	if res := e.run(c, "echo", "again"); res.Stdout != "again\n" {
		t.Errorf("after the removal: %q", res.Stdout)
	}
	now, _ := e.mem.Find(testCtx(t), e.ws)
	if now.ID == first.ID || e.file("/tmp/created.log") != "created\n" {
		t.Errorf("id %s (was %s), create hooks %q", now.ID, first.ID, e.file("/tmp/created.log"))
	}
	if err := e.mem.StopExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	if res := e.run(c, "echo", "started"); res.Stdout != "started\n" {
		t.Errorf("after the stop: %q", res.Stdout)
	}
	// It gives up after one try.
	e.mem.SetError("Exec", fmt.Errorf("memory: injected: %w", backends.ErrNotRunning))
	if _, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, 0); !errors.Is(err, backends.ErrNotRunning) {
		t.Errorf("with exec failing: %v", err)
	}
	if n := e.mem.Calls("Exec"); n < 2 {
		t.Errorf("%d execs", n)
	}
}

// remoteUser and remoteEnv apply to the client's processes, under what the
// call gives; containerEnv is the instance's.
func TestRemoteUserAndEnv(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{
		Files:  dcFiles(`"remoteUser": "dev", "containerEnv": {"BASE": "/opt"}, "remoteEnv": {"TOOLS": "${containerEnv:BASE}/tools", "MODE": "remote"}`),
		Memory: memory.Options{Users: map[string]int{"root": 0, "dev": 1000}},
	})
	c, _ := e.client(nil, false)
	res, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "id -un; echo $TOOLS $MODE"}, Env: map[string]string{"MODE": "call"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "dev\n/opt/tools call\n" {
		t.Errorf("got %q", res.Stdout)
	}
	// berth's own probes run as the image's user, without remoteEnv.
	res, err = c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "id -un; echo $TOOLS"}, Internal: true}, 0)
	if err != nil || res.Stdout != "root\n\n" {
		t.Errorf("internal run: %q, %v", res.Stdout, err)
	}
}

// A client's secrets reach its processes and the lifecycle hooks its calls
// run, over remoteEnv and under what the call gives; berth's own probes
// don't get them.
func TestSecretsEnv(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{
		Files: dcFiles(`"remoteEnv": {"TOKEN": "from-remoteEnv", "MODE": "remote"}, "waitFor": "postCreateCommand", "postCreateCommand": "echo $TOKEN $MODE > /tmp/hook.log"`),
	})
	c, _ := e.client(nil, false)
	c.SetSecrets(map[string]string{"TOKEN": "s3cr3t", "MODE": "secret", "ONLY": "only-secret"})
	res, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "echo $TOKEN $MODE $ONLY"}, Env: map[string]string{"MODE": "call"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "s3cr3t call only-secret\n" {
		t.Errorf("exec env: %q", res.Stdout)
	}
	if got := e.file("/tmp/hook.log"); got != "s3cr3t secret\n" {
		t.Errorf("postCreateCommand saw %q", got)
	}
	res, err = c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "echo $TOKEN $ONLY"}, Internal: true}, 0)
	if err != nil || res.Stdout != "\n" {
		t.Errorf("internal run: %q, %v", res.Stdout, err)
	}

	// Without a configuration, secrets are the only layer under the call.
	plain := newMemEnv(t, memEnvOptions{})
	pc, _ := plain.client(nil, false)
	pc.SetSecrets(map[string]string{"TOKEN": "s3cr3t"})
	if res := plain.run(pc, "sh", "-c", "echo $TOKEN"); res.Stdout != "s3cr3t\n" {
		t.Errorf("plain image: %q", res.Stdout)
	}
}

func TestRunWorkAndReadFile(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	wd := e.workdir()
	upper := func(s string) string { return strings.ToUpper(s) }
	run, err := c.RunWork(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sh", "-c", "echo " + wd + "/x.go; echo " + wd + "/y.go >&2; exit 2"}}, upper)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status.Code != 2 || string(run.Stdout) != wd+"/x.go\n" || string(run.Stderr) != wd+"/y.go\n" {
		t.Errorf("captured %+v", run)
	}
	sink.waitExit(t, run.PID)
	if got, want := sink.output(run.PID, "stdout"), strings.ToUpper(wd+"/x.go\n"); got != want {
		t.Errorf("streamed stdout %q, want %q (transformed, then mapped)", got, want)
	}
	if got, want := sink.output(run.PID, "stderr"), filepath.Join(e.ws, "y.go")+"\n"; got != want {
		t.Errorf("streamed stderr %q, want %q", got, want)
	}

	r, err := c.Ready(ctx, e.ws, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.fs().WriteFile("/tmp/report.xml", []byte("<ok/>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, err := c.ReadFile(ctx, r, "/tmp/report.xml"); err != nil || string(data) != "<ok/>" {
		t.Errorf("ReadFile: %q, %v", data, err)
	}
	if _, err := c.ReadFile(ctx, r, "/tmp/missing"); err == nil {
		t.Errorf("ReadFile of a missing file succeeded")
	}
	if _, err := c.ReadFile(ctx, Ready{}, "/x"); err == nil {
		t.Errorf("ReadFile without an instance succeeded")
	}
	if got := r.Cwd(""); got != wd {
		t.Errorf("Cwd(\"\") = %s", got)
	}
	if got := r.Cwd(filepath.Join(e.ws, "pkg")); got != wd+"/pkg" {
		t.Errorf("Cwd(host) = %s", got)
	}

	ctx2, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := c.RunWork(ctx2, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "10"}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled RunWork: %v", err)
	}
	if _, err := c.RunWork(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"no-such"}}, nil); !errors.Is(err, backends.ErrCommandNotFound) {
		t.Errorf("RunWork of a missing command: %v", err)
	}
}

// A client hears when its workspace's configuration really changes.
func TestConfigChanged(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles("")})
	c, sink := e.client(nil, false)
	if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(e.ws, ".devcontainer", "devcontainer.json")
	// The same configuration, reformatted: no news.
	writeHostFile(t, file, "{\n  \"image\": \""+testImage+"\"\n}\n")
	time.Sleep(2 * watchDebounce)
	writeHostFile(t, file, `{"image": "img:2"}`)
	sink.wait(t, "configChanged", func() bool { return len(sink.configs) > 0 })
	if diff := cmp.Diff([][]string{{file}}, sink.configs); diff != "" {
		t.Errorf("configChanged (-want +got):\n%s", diff)
	}
	// A new Containerfile doesn't change a devcontainer.json config.
	writeHostFile(t, filepath.Join(e.ws, "Containerfile"), "FROM x\n")
	time.Sleep(2 * watchDebounce)
	if len(sink.configs) != 1 {
		t.Errorf("configChanged %q", sink.configs)
	}
}

// A Compose configuration's inputs are watched too: its compose files
// and the project's .env.
func TestConfigChangedCompose(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: composeFiles(`"service": "app"`)})
	c, sink := e.client(nil, false)
	cfg, err := e.m.Workspace(e.ws).Config("", "")
	if err != nil {
		t.Fatal(err)
	}
	c.watchConfig(e.ws, cfg)
	file := filepath.Join(e.ws, ".env")
	writeHostFile(t, file, "TAG=2\n")
	sink.wait(t, "configChanged", func() bool { return len(sink.configs) > 0 })
	if diff := cmp.Diff([][]string{{file}}, sink.configs); diff != "" {
		t.Errorf("configChanged (-want +got):\n%s", diff)
	}
}

// A synced workspace's changes reach the instance.
func TestSync(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true, Files: map[string]string{
		"a.txt": "one", "sub/b.txt": "two", ".gitignore": "secret.txt\nbuild/\n", "secret.txt": "x", "build/out": "x", ".git/HEAD": "ref",
	}})
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	if st, synced, err := c.Sync(ctx, e.ws); synced || err != nil || st != (SyncStats{}) {
		t.Errorf("Sync before Up: %+v, %v, %v", st, synced, err)
	}
	if _, err := c.Up(ctx, UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
	wd := e.workdir()
	files := map[string]string{}
	for _, p := range []string{"a.txt", "sub/b.txt", "secret.txt", "build/out", ".git/HEAD", ".gitignore"} {
		files[p] = e.file(wd + "/" + p)
	}
	want := map[string]string{"a.txt": "one", "sub/b.txt": "two", "secret.txt": "", "build/out": "", ".git/HEAD": "", ".gitignore": "secret.txt\nbuild/\n"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("copied in (-want +got):\n%s", diff)
	}

	writeHostFile(t, filepath.Join(e.ws, "a.txt"), "changed")
	writeHostFile(t, filepath.Join(e.ws, "new", "c.txt"), "three")
	if err := os.RemoveAll(filepath.Join(e.ws, "sub")); err != nil {
		t.Fatal(err)
	}
	// What the debounced flush hasn't moved yet, Sync does.
	if _, synced, err := c.Sync(ctx, e.ws); err != nil || !synced {
		t.Fatalf("Sync: %v, %v", synced, err)
	}
	got := []string{e.file(wd + "/a.txt"), e.file(wd + "/new/c.txt"), e.file(wd + "/sub/b.txt")}
	if diff := cmp.Diff([]string{"changed", "three", ""}, got); diff != "" {
		t.Errorf("after Sync (-want +got):\n%s", diff)
	}
	// A flush moves exactly what changed.
	c.mu.Lock()
	s := c.syncers[e.ws]
	c.mu.Unlock()
	s.mu.Lock()
	s.changed["a.txt"], s.changed["gone.txt"] = true, true
	s.mu.Unlock()
	if st, err := s.flush(ctx); err != nil || st != (SyncStats{Copied: 1, Deleted: 1}) {
		t.Errorf("flush: %+v, %v", st, err)
	}

	// A second Up flushes rather than starting another syncer.
	if _, err := c.Up(ctx, UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
}

// A workspace over the size limit is refused before anything is copied,
// with an error that says so; within it, a full copy reports progress.
func TestSyncLimit(t *testing.T) {
	files := dcFiles(`"customizations": {"berth": {"sync": {"maxFiles": 3}}}`)
	for i := range 3 {
		files[fmt.Sprintf("src/f%d.txt", i)] = "x"
	}
	e := newMemEnv(t, memEnvOptions{Sync: true, Files: files})
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	_, err := c.Up(ctx, UpOptions{Workspace: e.ws})
	if !errors.Is(err, ErrSyncTooLarge) || !strings.Contains(err.Error(), "more than 3 files") || !strings.Contains(err.Error(), "maxFiles") {
		t.Fatalf("Up over the limit: %v, want ErrSyncTooLarge naming the limit and how to raise it", err)
	}

	e = newMemEnv(t, memEnvOptions{Sync: true, Files: map[string]string{"a.txt": "one", "sub/b.txt": "two"}})
	c, _ = e.client(nil, false)
	var mu sync.Mutex
	var steps []string
	ctx = backends.WithProgress(testCtx(t), func(m string) {
		mu.Lock()
		defer mu.Unlock()
		steps = append(steps, m)
	})
	if _, err := c.Up(ctx, UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, s := range steps {
		if strings.HasPrefix(s, "sync: ") {
			got = append(got, s[:strings.Index(s, " (")])
		}
	}
	if diff := cmp.Diff([]string{"sync: copying 2 files", "sync: copied 2 files"}, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}
