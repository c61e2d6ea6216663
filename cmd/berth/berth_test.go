package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

// Binaries built once by TestMain: berth under test, and a static echo
// server to copy into containers.
var berthBin, echoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Trust decisions go to a store of the tests' own, never the user's:
	// every berth the tests start inherits this.
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	berthBin = filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-race", "-o", berthBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building berth: %v\n%s", err, out)
		os.Exit(1)
	}
	// The echo server is a static fixture copied into test containers.
	echoBin = filepath.Join(dir, "echoserver")
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", echoBin, "../../testdata/echoserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building echoserver: %v\n%s", err, out)
		os.Exit(1)
	}
	// The agent sits next to berth, where berth looks for it.
	build = exec.Command("go", "build", "-ldflags=-s -w", "-o", filepath.Join(dir, "berth-agent"), "../berth-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building berth-agent: %v\n%s", err, out)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	if b, err := docker.New(slog.New(slog.DiscardHandler), "test"); err == nil {
		backendtest.Sweep(ctx, b)
		sweepComposeProjects(ctx)
		b.Close()
	}
	if b, err := incus.New(slog.New(slog.DiscardHandler), "test"); err == nil {
		backendtest.Sweep(ctx, b)
		b.Close()
	}
	cancel()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// engine is a backend under test: its name for --backend, a client for
// direct checks, and its test image.
type engine struct {
	name  string
	b     backends.Backend
	image string
}

// eachBackend runs f once per backend, as subtests named by backend, each
// skipping or failing per backendtest.Need.
func eachBackend(t *testing.T, f func(t *testing.T, e engine)) {
	for _, name := range []string{docker.Name, incus.Name} {
		t.Run(name, func(t *testing.T) { f(t, needBackend(t, name)) })
	}
}

func needBackend(t *testing.T, name string) engine {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	switch name {
	case docker.Name:
		b, err := docker.New(log, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		backendtest.Need(t, b)
		return engine{name: name, b: b, image: backendtest.Image()}
	case incus.Name:
		b, err := incus.New(log, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		backendtest.Need(t, b)
		return engine{name: name, b: b, image: backendtest.IncusImage()}
	}
	t.Fatalf("unknown backend %s", name)
	return engine{}
}

// workspace makes a temp workspace whose instance is removed after the test.
func workspace(t *testing.T, b backends.Backend) string {
	t.Helper()
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := b.Find(ctx, ws); err == nil {
			_ = b.Remove(ctx, inst.ID)
		}
	})
	return ws
}

// berth is a running `berth --stdio` and a protocol client on its pipes.
type berth struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	client *rpc.Client
	waited chan struct{}
	err    error // from cmd.Wait, set before waited closes

	mu    sync.Mutex // guards the following
	cond  *sync.Cond
	notes []note
}

type note struct {
	method string
	params json.RawMessage
}

type pipes struct {
	io.ReadCloser
	io.WriteCloser
}

func (p pipes) Close() error {
	p.WriteCloser.Close()
	return p.ReadCloser.Close()
}

// startBerth runs berth --stdio on e's backend with BERTH_IMAGE set to
// its test image.
func startBerth(t *testing.T, e engine, args ...string) *berth {
	t.Helper()
	return startBerthBin(t, berthBin, e, args...)
}

// startBerthBin is startBerth with the berth binary at bin.
func startBerthBin(t *testing.T, bin string, e engine, args ...string) *berth {
	t.Helper()
	return startBerthLog(t, bin, e, &testWriter{t: t}, args...)
}

// startBerthLog is startBerthBin with berth's stderr going to stderr.
func startBerthLog(t *testing.T, bin string, e engine, stderr io.Writer, args ...string) *berth {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--stdio", "--backend", e.name}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &berth{t: t, cmd: cmd, stdin: stdin, stdout: stdout, waited: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	b.client = rpc.NewClient(context.Background(), pipes{stdout, stdin}, slog.New(slog.DiscardHandler), b.record)
	go func() {
		<-b.client.Done()
		b.err = cmd.Wait()
		close(b.waited)
	}()
	t.Cleanup(func() {
		b.client.Close()
		select {
		case <-b.waited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-b.waited
		}
	})
	return b
}

// testWriter sends berth's stderr log to the test log.
type testWriter struct {
	t  *testing.T
	mu sync.Mutex
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("berth: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (b *berth) record(method string, params json.RawMessage) {
	b.mu.Lock()
	b.notes = append(b.notes, note{method, append(json.RawMessage(nil), params...)})
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *berth) call(method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return b.client.Call(ctx, method, params, result)
}

func (b *berth) mustCall(method string, params, result any) {
	b.t.Helper()
	if err := b.call(method, params, result); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
}

func (b *berth) initialize(ws string, opts *rpc.InitializationOptions) rpc.InitializeResult {
	b.t.Helper()
	var res rpc.InitializeResult
	p := rpc.InitializeParams{InitializationOptions: opts}
	if ws != "" {
		p.RootURI = "file://" + ws
	}
	b.mustCall("initialize", p, &res)
	if err := b.client.Notify(context.Background(), "initialized", struct{}{}); err != nil {
		b.t.Fatal(err)
	}
	return res
}

// waitExit waits for pid's berth/exit and returns it with the output that
// arrived before it, by stream.
func (b *berth) waitExit(pid string) (rpc.ExitParams, map[string]string) {
	b.t.Helper()
	deadline := time.Now().Add(time.Minute)
	timer := time.AfterFunc(time.Minute, b.cond.Broadcast)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		out := map[string]string{}
		for _, n := range b.notes {
			switch n.method {
			case "berth/output":
				var o rpc.OutputParams
				json.Unmarshal(n.params, &o)
				if o.PID == pid {
					out[o.Stream] += o.Text
				}
			case "berth/exit":
				var e rpc.ExitParams
				json.Unmarshal(n.params, &e)
				if e.PID == pid {
					return e, out
				}
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no berth/exit for %s; output so far %q", pid, out)
		}
		b.cond.Wait()
	}
}

// waitOutput waits until pid's stdout contains want.
func (b *berth) waitOutput(pid, want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	timer := time.AfterFunc(30*time.Second, b.cond.Broadcast)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		got := ""
		for _, n := range b.notes {
			var o rpc.OutputParams
			if n.method == "berth/output" && json.Unmarshal(n.params, &o) == nil && o.PID == pid {
				got += o.Text
			}
		}
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: output %q never contained %q", pid, got, want)
		}
		b.cond.Wait()
	}
}

// code returns the JSON-RPC code of err, or 0.
func code(err error) int64 {
	var re *jsonrpc2.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// TestExecEndToEnd runs the spine's protocol through the agent and through
// plain backend exec, the fallback.
func TestExecEndToEnd(t *testing.T) {
	for _, mode := range []struct {
		name  string
		args  []string
		agent bool
	}{
		{"agent", nil, true},
		{"plain", []string{"--no-agent"}, false},
	} {
		t.Run(mode.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e engine) { testExecEndToEnd(t, e, mode.agent, mode.args...) })
		})
	}
}

func testExecEndToEnd(t *testing.T, e engine, withAgent bool, args ...string) {
	d := e.b
	ws := workspace(t, d)
	if err := os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("hi from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBerth(t, e, args...)
	init := b.initialize(ws, nil)
	if init.ServerInfo.Name != "berth" || init.Capabilities.Berth.DefaultWorkspace != ws || init.Capabilities.Berth.Agent != withAgent {
		t.Fatalf("initialize = %+v", init)
	}

	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	workdir := "/workspaces/" + filepath.Base(ws)
	if !inst.Created || inst.State != "running" || inst.Workdir != workdir || inst.Workspace != ws || inst.Backend != e.name || inst.Agent.Enabled != withAgent {
		t.Fatalf("up = %+v", inst)
	}
	var again rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &again)
	if again.Created || again.ID != inst.ID {
		t.Fatalf("second up = %+v, want the same instance, not created", again)
	}

	t.Run("output maps container paths to host paths", func(t *testing.T) {
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "cat hello.txt; echo $PWD/hello.txt; echo $PWD/err.py:3: oops >&2"}}, &res)
		exit, out := b.waitExit(res.PID)
		if exit.Code != 0 {
			t.Fatalf("exit = %+v, stderr %q", exit, out["stderr"])
		}
		if want := "hi from the host\n" + ws + "/hello.txt\n"; out["stdout"] != want {
			t.Errorf("stdout = %q, want %q", out["stdout"], want)
		}
		if want := ws + "/err.py:3: oops\n"; out["stderr"] != want {
			t.Errorf("stderr = %q, want %q", out["stderr"], want)
		}
	})

	t.Run("mapPaths false keeps container paths", func(t *testing.T) {
		no := false
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"pwd"}, MapPaths: &no}, &res)
		if _, out := b.waitExit(res.PID); out["stdout"] != workdir+"\n" {
			t.Errorf("stdout = %q, want %q", out["stdout"], workdir+"\n")
		}
	})

	t.Run("cwd given as a host path", func(t *testing.T) {
		if err := os.Mkdir(filepath.Join(ws, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		no := false
		var res rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"pwd"}, Cwd: filepath.Join(ws, "sub"), MapPaths: &no}, &res)
		if res.Stdout != workdir+"/sub\n" {
			t.Errorf("pwd = %q, want %q", res.Stdout, workdir+"/sub\n")
		}
	})

	t.Run("stdin", func(t *testing.T) {
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"cat"}, Stdin: true}, &res)
		b.mustCall("berth/stdin", rpc.StdinParams{PID: res.PID, Text: "first line\n"}, nil)
		b.waitOutput(res.PID, "first line\n")
		b.mustCall("berth/stdin", rpc.StdinParams{PID: res.PID, Text: "second ", Close: true}, nil)
		exit, out := b.waitExit(res.PID)
		if exit.Code != 0 || out["stdout"] != "first line\nsecond " {
			t.Errorf("exit %+v stdout %q", exit, out["stdout"])
		}
		err := b.call("berth/stdin", rpc.StdinParams{PID: res.PID, Text: "late"}, nil)
		if code(err) != rpc.CodeProcessExited {
			t.Errorf("stdin after exit: %v, want code %d", err, rpc.CodeProcessExited)
		}
	})

	t.Run("signal ends a sleep", func(t *testing.T) {
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &res)
		var procs []rpc.ProcessInfo
		b.mustCall("berth/processes", struct{}{}, &procs)
		if last := procs[len(procs)-1]; last.PID != res.PID || last.State != "running" {
			t.Errorf("processes: last = %+v, want %s running", last, res.PID)
		}
		b.mustCall("berth/signal", map[string]any{"pid": res.PID, "signal": "TERM"}, nil)
		exit, _ := b.waitExit(res.PID)
		if exit.Signal != "SIGTERM" || exit.Code != 128+15 {
			t.Errorf("exit = %+v, want SIGTERM (143)", exit)
		}
		b.mustCall("berth/processes", struct{}{}, &procs)
		if last := procs[len(procs)-1]; last.State != "exited" || last.Code == nil || *last.Code != 143 {
			t.Errorf("processes after exit: %+v", last)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, want := range []int{0, 7} {
			var res rpc.RunResult
			b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", fmt.Sprintf("echo out; exit %d", want)}}, &res)
			if res.Code != want || res.Stdout != "out\n" {
				t.Errorf("run exit %d: got %+v", want, res)
			}
			var ex rpc.ExecResult
			b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", fmt.Sprintf("exit %d", want)}}, &ex)
			if exit, _ := b.waitExit(ex.PID); exit.Code != want {
				t.Errorf("exec exit %d: got %+v", want, exit)
			}
		}
	})

	t.Run("run timeout and truncation", func(t *testing.T) {
		var res rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sleep", "30"}, TimeoutMs: 300}, &res)
		if !res.TimedOut {
			t.Errorf("run with timeout: %+v, want timedOut", res)
		}
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "yes berth | head -c 3000000"}}, &res)
		if !res.Truncated || len(res.Stdout) != 1<<20 {
			t.Errorf("run of 3 MB: truncated=%v len=%d, want true and %d", res.Truncated, len(res.Stdout), 1<<20)
		}
	})

	t.Run("paths", func(t *testing.T) {
		var res rpc.PathsResult
		b.mustCall("berth/toContainer", rpc.PathsParams{Paths: []string{ws + "/a b.py", "file://" + ws + "/a%20b.py", "/elsewhere"}}, &res)
		want := []string{workdir + "/a b.py", "file://" + workdir + "/a%20b.py"}
		if len(res.Paths) != 3 || res.Paths[0] == nil || *res.Paths[0] != want[0] || res.Paths[1] == nil || *res.Paths[1] != want[1] || res.Paths[2] != nil {
			t.Errorf("toContainer = %v, want %v and null", derefAll(res.Paths), want)
		}
		b.mustCall("berth/toHost", rpc.PathsParams{Paths: []string{workdir + "/x.go", "/usr/lib"}}, &res)
		if res.Paths[0] == nil || *res.Paths[0] != ws+"/x.go" || res.Paths[1] != nil {
			t.Errorf("toHost = %v", derefAll(res.Paths))
		}
	})

	t.Run("list and status", func(t *testing.T) {
		var list []rpc.Instance
		b.mustCall("berth/list", struct{}{}, &list)
		found := false
		for _, in := range list {
			found = found || in.ID == inst.ID
		}
		if !found {
			t.Errorf("list does not contain %s", inst.Name)
		}
		var st *rpc.Instance
		b.mustCall("berth/status", struct{}{}, &st)
		if st == nil || st.ID != inst.ID {
			t.Errorf("status = %+v", st)
		}
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			method string
			params any
			code   int64
			substr string
		}{
			{"berth/nope", struct{}{}, rpc.CodeMethodNotFound, "berth/nope"},
			{"berth/exec", map[string]any{"argv": "ls"}, rpc.CodeInvalidParams, "argv"},
			{"berth/exec", map[string]any{"argv": []string{}}, rpc.CodeInvalidParams, "argv"},
			{"berth/exec", map[string]any{"argv": []string{"ls"}, "workspace": "relative/dir"}, rpc.CodeInvalidParams, "workspace"},
			{"berth/exec", map[string]any{"argv": []string{"no-such-binary"}}, rpc.CodeCommandNotFound, "no-such-binary"},
			{"berth/signal", map[string]any{"pid": "p9999", "signal": "TERM"}, rpc.CodeNoSuchProcess, "p9999"},
			{"berth/run", map[string]any{"argv": []string{"true"}, "cwd": "/no/such/dir"}, rpc.CodeInvalidParams, "/no/such/dir"},
			{"berth/run", map[string]any{"argv": []string{"true"}, "user": "nosuchuser"}, rpc.CodeInvalidParams, "nosuchuser"},
			{"berth/exec", map[string]any{"argv": []string{"true"}, "timeoutMs": 5}, rpc.CodeInvalidParams, "timeoutMs"},
			{"berth/signal", map[string]any{"pid": "p1", "signal": "SIGNOPE"}, rpc.CodeInvalidParams, "signal"},
			{"berth/up", map[string]any{"workspace": t.TempDir(), "image": "berth-test/missing:404"}, rpc.CodeImageNotFound, "berth-test/missing:404"},
			{"initialize", struct{}{}, rpc.CodeInvalidRequest, "already initialized"},
		}
		for _, tt := range tests {
			err := b.call(tt.method, tt.params, nil)
			if code(err) != tt.code || err == nil || !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("%s %v: err = %v; want code %d mentioning %q", tt.method, tt.params, err, tt.code, tt.substr)
			}
		}
	})

	t.Run("down", func(t *testing.T) {
		b.mustCall("berth/down", rpc.DownParams{}, nil)
		var st *rpc.Instance
		b.mustCall("berth/status", struct{}{}, &st)
		if st == nil || st.State != "stopped" {
			t.Fatalf("status after down = %+v, want stopped", st)
		}
		b.mustCall("berth/up", rpc.UpParams{}, &again)
		if again.ID != inst.ID || again.Created || again.State != "running" {
			t.Errorf("up after down = %+v, want the same instance started again", again)
		}
		b.mustCall("berth/down", rpc.DownParams{Remove: true}, nil)
		b.mustCall("berth/down", rpc.DownParams{Remove: true}, nil) // idempotent
		st = &rpc.Instance{}
		b.mustCall("berth/status", struct{}{}, &st)
		if st != nil {
			t.Errorf("status after down --rm = %+v, want null", st)
		}
		// Nothing of the instance stays on the host: no run directory, door
		// record, lock, profile or user environment.
		if left, _ := filepath.Glob(filepath.Join(hostRunBase(), inst.Name+"*")); len(left) > 0 {
			t.Errorf("after down --rm, the host still holds %v", left)
		}
	})

	b.mustCall("shutdown", nil, nil)
	b.client.Notify(context.Background(), "exit", nil)
	<-b.waited
	if b.err != nil {
		t.Errorf("berth exited with %v after shutdown and exit, want 0", b.err)
	}
}

// hostRunBase is where this test's berth keeps each instance's files on
// the host (see agent.HostRunDir, which would make it).
func hostRunBase() string {
	if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
		return filepath.Join(rt, "berth")
	}
	if os.Geteuid() == 0 {
		return "/run/berth"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
}

func derefAll(ps []*string) []any {
	out := make([]any, len(ps))
	for i, p := range ps {
		if p != nil {
			out[i] = *p
		}
	}
	return out
}
