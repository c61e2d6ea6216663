package rpc_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
)

func ptr[T any](v T) *T { return &v }

func TestRun(t *testing.T) {
	e := newEnv(t, envOptions{Memory: memory.Options{Users: map[string]int{"root": 0, "dev": 1000}}})
	c := e.dial()
	c.run("mkdir", "-p", e.workdir+"/sub")
	wd := e.workdir
	tests := []struct {
		name   string
		params rpc.ExecParams
		want   rpc.RunResult
	}{
		{"exit code and streams", rpc.ExecParams{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, rpc.RunResult{Code: 3, Stdout: "out\n", Stderr: "err\n"}},
		{"paths mapped by default", rpc.ExecParams{Argv: []string{"echo", wd + "/a.go:1:2: bad"}}, rpc.RunResult{Stdout: filepath.Join(e.ws, "a.go") + ":1:2: bad\n"}},
		{"mapPaths false", rpc.ExecParams{Argv: []string{"echo", wd + "/a.go"}, MapPaths: ptr(false)}, rpc.RunResult{Stdout: wd + "/a.go\n"}},
		{"relative cwd", rpc.ExecParams{Argv: []string{"pwd"}, Cwd: "sub", MapPaths: ptr(false)}, rpc.RunResult{Stdout: wd + "/sub\n"}},
		{"host cwd", rpc.ExecParams{Argv: []string{"pwd"}, Cwd: filepath.Join(e.ws, "sub"), MapPaths: ptr(false)}, rpc.RunResult{Stdout: wd + "/sub\n"}},
		{"env", rpc.ExecParams{Argv: []string{"sh", "-c", "echo $GREETING"}, Env: map[string]string{"GREETING": "hi"}}, rpc.RunResult{Stdout: "hi\n"}},
		{"user", rpc.ExecParams{Argv: []string{"id", "-un"}, User: "dev"}, rpc.RunResult{Stdout: "dev\n"}},
		{"timeout", rpc.ExecParams{Argv: []string{"sleep", "10"}, TimeoutMs: 50}, rpc.RunResult{Code: 137, Signal: "SIGKILL", TimedOut: true}},
		{"kind", rpc.ExecParams{Argv: []string{"true"}, Kind: "lint"}, rpc.RunResult{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got rpc.RunResult
			c.mustCall("berth/run", tt.params, &got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("berth/run (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecStdinSignal(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	pid := c.exec(rpc.ExecParams{Argv: []string{"cat"}, Stdin: true})
	c.mustCall("berth/stdin", rpc.StdinParams{PID: pid, Text: "hello " + e.workdir + "/x\n"}, nil)
	c.mustCall("berth/stdin", rpc.StdinParams{PID: pid, Close: true}, nil)
	if ex := c.waitExit(pid); ex != (rpc.ExitParams{PID: pid}) {
		t.Errorf("exit %+v", ex)
	}
	if got, want := c.output(pid, "stdout"), "hello "+filepath.Join(e.ws, "x")+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}

	tests := []struct {
		signal any
		want   rpc.ExitParams
	}{
		{"TERM", rpc.ExitParams{Code: 143, Signal: "SIGTERM"}},
		{"sigint", rpc.ExitParams{Code: 130, Signal: "SIGINT"}},
		{9, rpc.ExitParams{Code: 137, Signal: "SIGKILL"}},
		{"15", rpc.ExitParams{Code: 143, Signal: "SIGTERM"}},
	}
	for _, tt := range tests {
		pid := c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}})
		c.mustCall("berth/signal", map[string]any{"pid": pid, "signal": tt.signal}, nil)
		tt.want.PID = pid
		if got := c.waitExit(pid); got != tt.want {
			t.Errorf("signal %v: exit %+v, want %+v", tt.signal, got, tt.want)
		}
	}
}

func TestProcessesParams(t *testing.T) {
	e := newEnv(t, envOptions{})
	ws2, err := session.ResolveWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial()
	var pids []string
	for _, p := range []rpc.ExecParams{
		{Argv: []string{"sh", "-c", "exit 4"}, Kind: "test"},
		{Argv: []string{"sleep", "infinity"}},
		{Argv: []string{"true"}, Workspace: ws2},
		{Argv: []string{"sleep", "infinity"}, Workspace: ws2, Kind: "debug"},
	} {
		pids = append(pids, c.exec(p))
	}
	c.waitExit(pids[0])
	c.waitExit(pids[2])
	type row struct {
		PID, Workspace, Kind, State string
		Code                        *int
	}
	all := []row{
		{pids[0], e.ws, "test", "exited", ptr(4)},
		{pids[1], e.ws, "run", "running", nil},
		{pids[2], ws2, "run", "exited", ptr(0)},
		{pids[3], ws2, "debug", "running", nil},
	}
	tests := []struct {
		name   string
		params map[string]any
		want   []row
	}{
		{"all", nil, all},
		{"running", map[string]any{"state": "running"}, []row{all[1], all[3]}},
		{"exited", map[string]any{"state": "exited"}, []row{all[0], all[2]}},
		{"the newest two", map[string]any{"limit": 2}, all[2:]},
		{"limit beyond", map[string]any{"limit": 10}, all},
		{"one workspace", map[string]any{"workspace": ws2}, all[2:]},
		{"a workspace as URI, exited, newest", map[string]any{"workspace": "file://" + e.ws, "state": "exited", "limit": 1}, all[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []rpc.ProcessInfo
			c.mustCall("berth/processes", tt.params, &got)
			var rows []row
			for _, p := range got {
				rows = append(rows, row{p.PID, p.Workspace, p.Kind, p.State, p.Code})
				if p.StartedAt.IsZero() || (p.State == "exited") != (p.FinishedAt != nil) {
					t.Errorf("%s: startedAt %v finishedAt %v", p.PID, p.StartedAt, p.FinishedAt)
				}
			}
			if diff := cmp.Diff(tt.want, rows); diff != "" {
				t.Errorf("berth/processes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(e.ws, link); err != nil {
		t.Fatal(err)
	}
	wd := e.workdir
	// Before there is an instance: the mount it would get.
	var res rpc.PathsResult
	c.mustCall("berth/toContainer", rpc.PathsParams{Paths: []string{filepath.Join(e.ws, "a.go")}}, &res)
	if diff := cmp.Diff([]*string{ptr(wd + "/a.go")}, res.Paths); diff != "" {
		t.Errorf("before the instance (-want +got):\n%s", diff)
	}
	c.run("true")
	tests := []struct {
		method string
		in     []string
		want   []*string
	}{
		{"berth/toContainer",
			[]string{filepath.Join(e.ws, "src/a.go"), "file://" + filepath.Join(e.ws, "b.go"), filepath.Join(link, "c.go"), "file://" + link + "/d.go", "/etc/passwd", "rel.go"},
			[]*string{ptr(wd + "/src/a.go"), ptr("file://" + wd + "/b.go"), ptr(wd + "/c.go"), ptr("file://" + wd + "/d.go"), nil, nil}},
		{"berth/toHost",
			[]string{wd + "/src/a.go", "file://" + wd + "/b.go", wd, "/usr/lib/python3/os.py"},
			[]*string{ptr(filepath.Join(e.ws, "src/a.go")), ptr("file://" + filepath.Join(e.ws, "b.go")), ptr(e.ws), nil}},
		{"berth/toHost", []string{}, []*string{}},
	}
	for _, tt := range tests {
		var got rpc.PathsResult
		c.mustCall(tt.method, rpc.PathsParams{Paths: tt.in}, &got)
		if diff := cmp.Diff(tt.want, got.Paths); diff != "" {
			t.Errorf("%s %q (-want +got):\n%s", tt.method, tt.in, diff)
		}
	}
}

func TestStatusListUpDown(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles("")})
	c := e.dial()
	var st *rpc.Instance
	c.mustCall("berth/status", nil, &st)
	if st != nil {
		t.Errorf("status before up: %+v", st)
	}
	var up rpc.Instance
	c.mustCall("berth/up", rpc.UpParams{}, &up)
	want := rpc.Instance{
		Workspace: e.ws, Backend: "memory", Name: session.InstanceName(e.ws), Image: testImage,
		State: backends.StateRunning, Workdir: e.workdir, Mounts: []backends.Mount{{Host: e.ws, Container: e.workdir}},
		Created: true, Agent: rpc.AgentStatus{Reason: "agent not configured"},
		ConfigSource: "devcontainer.json", ConfigFile: filepath.Join(e.ws, ".devcontainer", "devcontainer.json"),
		Engine: &rpc.Engine{BindMounts: true},
	}
	ignoreID := cmpopts.IgnoreFields(rpc.Instance{}, "ID")
	if diff := cmp.Diff(want, up, ignoreID); diff != "" {
		t.Errorf("berth/up (-want +got):\n%s", diff)
	}
	c.mustCall("berth/status", rpc.WorkspaceParams{Workspace: e.ws}, &st)
	want.Created = false
	if diff := cmp.Diff(&want, st, ignoreID); diff != "" {
		t.Errorf("berth/status (-want +got):\n%s", diff)
	}
	var list []rpc.Instance
	c.mustCall("berth/list", nil, &list)
	if len(list) != 1 || list[0].ID != up.ID || list[0].ConfigSource != "" {
		t.Errorf("berth/list: %+v", list)
	}

	c.mustCall("berth/down", nil, nil)
	c.mustCall("berth/status", nil, &st)
	if st == nil || st.State != backends.StateStopped {
		t.Errorf("status after down: %+v", st)
	}
	c.mustCall("berth/down", rpc.DownParams{Remove: true}, nil)
	c.mustCall("berth/status", nil, &st)
	if st != nil {
		t.Errorf("status after down remove: %+v", st)
	}
	c.mustCall("berth/list", nil, &list)
	if len(list) != 0 {
		t.Errorf("berth/list after removal: %+v", list)
	}

	// An image given to berth/up.
	c.mustCall("berth/up", rpc.UpParams{Image: "img:9", Recreate: true}, &up)
	if up.Image != testImage {
		t.Errorf("devcontainer.json's image loses to the param: %s", up.Image)
	}
}

// Hooks run once per container; a failing create hook fails the call that
// made the container with -32027, isn't run again, and status says so.
func TestHooksOverRPC(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"waitFor": "postCreateCommand", "onCreateCommand": "echo onCreate >> /tmp/hooks.log", "postCreateCommand": "echo postCreate >> /tmp/hooks.log; echo it broke >&2; exit 3", "postStartCommand": "echo postStart >> /tmp/hooks.log"`)})
	c := e.dial()
	err := c.call("berth/exec", rpc.ExecParams{Argv: []string{"true"}}, nil)
	if code(err) != rpc.CodeHookFailed {
		t.Fatalf("the first exec: %v, want code %d", err, rpc.CodeHookFailed)
	}
	for _, w := range []string{"postCreateCommand exited with code 3", "it broke", "recreate"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	// The hooks' output streamed to the client under their pids.
	c.notes.wait(t, "the hook's output", func(list []note) bool {
		for _, o := range decode[rpc.OutputParams](t, list, "berth/output") {
			if strings.Contains(o.Text, "it broke") {
				return true
			}
		}
		return false
	})
	for range 2 {
		if res := c.run("cat", "/tmp/hooks.log"); res.Stdout != "onCreate\npostCreate\n" {
			t.Errorf("hooks ran %q", res.Stdout)
		}
	}
	var st rpc.Instance
	c.mustCall("berth/status", nil, &st)
	if !strings.HasPrefix(st.HookError, "postCreateCommand exited with code 3:\n") || !strings.Contains(st.HookError, "it broke") {
		t.Errorf("hookError %q", st.HookError)
	}
}

func TestUpReportsHooks(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"onCreateCommand": ["echo", "made"], "postAttachCommand": "exit 2", "forwardPorts": [3000]`)})
	c := e.dial()
	var up rpc.Instance
	c.mustCall("berth/up", nil, &up)
	var got []string
	for _, h := range up.Hooks {
		got = append(got, fmt.Sprintf("%s %d %v", h.Hook, h.Code, h.PID != ""))
	}
	if diff := cmp.Diff([]string{"onCreateCommand 0 true", "postAttachCommand 2 true"}, got); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}
	c.waitExit(up.Hooks[0].PID)
	if out := c.output(up.Hooks[0].PID, "stdout"); out != "made\n" {
		t.Errorf("onCreateCommand's output %q", out)
	}
	if len(up.Forwarded) != 0 {
		t.Errorf("forwarded %+v without the agent", up.Forwarded)
	}
}

func TestInstanceChangedOverRPC(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	c.run("true")
	if err := e.mem.WaitWatchers(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if err := e.mem.KillExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	c.waitInstance("stopped/killed")
	got := decode[rpc.InstanceChangedParams](t, c.notes.all(), "berth/instanceChanged")
	if diff := cmp.Diff([]rpc.InstanceChangedParams{{Workspace: e.ws, State: "stopped", Reason: "killed"}}, got); diff != "" {
		t.Errorf("berth/instanceChanged (-want +got):\n%s", diff)
	}
	e.mem.SetDown(true)
	c.waitInstance("stopped/daemon lost")
	e.mem.SetDown(false)
	c.waitInstance("stopped/daemon back")
	if res := c.run("echo", "again"); res.Stdout != "again\n" {
		t.Errorf("after the kill: %q", res.Stdout)
	}
}

func TestSyncMethod(t *testing.T) {
	for _, synced := range []bool{false, true} {
		e := newEnv(t, envOptions{Sync: synced, Files: map[string]string{"a.txt": "one"}})
		c := e.dial()
		c.mustCall("berth/up", nil, nil)
		writeFile(t, filepath.Join(e.ws, "a.txt"), "two")
		var res rpc.SyncResult
		c.mustCall("berth/sync", nil, &res)
		if res.Synced != synced {
			t.Errorf("synced %v, want %v", res.Synced, synced)
		}
		if synced {
			if got := c.run("cat", "a.txt"); got.Stdout != "two" {
				t.Errorf("after berth/sync the instance has %q", got.Stdout)
			}
		}
	}
}

// A custom linter's diagnostics go out as publishDiagnostics at host
// URIs; files whose problems are gone are cleared.
func TestLint(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	wd := e.workdir
	lint := func(script string, files ...string) rpc.LintResult {
		t.Helper()
		var res rpc.LintResult
		c.mustCall("berth/lint", rpc.LintParams{Linter: "custom", Command: []string{"sh", "-c", script, "lint"}, Format: "%f:%l:%c: %t%n %m", Files: files}, &res)
		return res
	}
	published := func() map[string]int {
		out := map[string]int{}
		for _, p := range decode[struct {
			URI         string
			Diagnostics []struct {
				Range    struct{ Start struct{ Line, Character int } }
				Severity int
				Source   string
				Code     string
				Message  string
			}
		}](t, c.notes.all(), "textDocument/publishDiagnostics") {
			out[strings.TrimPrefix(p.URI, "file://"+e.ws+"/")] = len(p.Diagnostics)
		}
		return out
	}
	res := lint(fmt.Sprintf("echo '%[1]s/a.py:3:5: E1 bad'; echo '%[1]s/b.py:1:1: W2 meh'; echo '/usr/lib/x.py:1:1: E3 not ours'; exit 1", wd))
	want := rpc.LintResult{PID: res.PID, Linter: "sh", Code: 1, Files: 2, Diagnostics: 2, Errors: 1, Warnings: 1, Unmapped: 1}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("first lint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"a.py": 1, "b.py": 1}, published()); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	// a.py is fixed: it gets an empty list.
	res = lint(fmt.Sprintf("echo '%s/b.py:1:1: W2 meh'", wd))
	if res.Cleared != 1 || res.Files != 1 {
		t.Errorf("second lint: %+v", res)
	}
	if diff := cmp.Diff(map[string]int{"a.py": 0, "b.py": 1}, published()); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	// Naming files: a named file that lints clean is cleared; others stand.
	res = lint("true", filepath.Join(e.ws, "c.py"))
	if res.Cleared != 1 {
		t.Errorf("lint of a named clean file: %+v", res)
	}
}

// berth/test with go: a fake go in the instance answers go list and go
// test -json.
func TestGoTest(t *testing.T) {
	events := []string{
		`{"Action":"run","Package":"example.com/m","Test":"TestA"}`,
		`{"Action":"output","Package":"example.com/m","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"example.com/m","Test":"TestA","Output":"    a_test.go:7: boom\n"}`,
		`{"Action":"fail","Package":"example.com/m","Test":"TestA","Elapsed":0.01}`,
		`{"Action":"run","Package":"example.com/m","Test":"TestB"}`,
		`{"Action":"pass","Package":"example.com/m","Test":"TestB","Elapsed":0}`,
		`{"Action":"fail","Package":"example.com/m","Elapsed":0.02}`,
	}
	var wd string
	goCmd := func(_ context.Context, p *memory.Proc) int {
		switch {
		case len(p.Argv) > 1 && p.Argv[1] == "list":
			fmt.Fprintf(p.Stdout, "example.com/m\t%s\n", wd)
		case len(p.Argv) > 1 && p.Argv[1] == "test":
			fmt.Fprintln(p.Stdout, strings.Join(events, "\n"))
			return 1
		}
		return 0
	}
	e := newEnv(t, envOptions{Files: map[string]string{"go.mod": "module example.com/m\n"}, Memory: memory.Options{Commands: map[string]memory.Command{"go": goCmd}}})
	wd = e.workdir
	c := e.dial()
	var res rpc.TestResult
	c.mustCall("berth/test", rpc.TestParams{}, &res)
	if res.Framework != "go" || res.Code != 1 || res.Summary.Passed != 1 || res.Summary.Failed != 1 {
		t.Errorf("berth/test: %+v", res)
	}
	var failed *rpc.TestInfo
	for i := range res.Tests {
		if res.Tests[i].Status == "failed" {
			failed = &res.Tests[i]
		}
	}
	if failed == nil || failed.Location == nil || *failed.Location != (rpc.Location{URI: "file://" + filepath.Join(e.ws, "a_test.go"), Line: 7}) {
		t.Errorf("the failure: %+v", failed)
	}
	c.waitExit(res.PID)
	if out := c.output(res.PID, "stdout"); !strings.Contains(out, "=== RUN   TestA\n") || strings.Contains(out, `"Action"`) {
		t.Errorf("streamed output %q, want go test's text", out)
	}
}

// berth/inspect: a fake python3 in the instance.
func TestInspect(t *testing.T) {
	var wd string
	python := func(_ context.Context, p *memory.Proc) int {
		fmt.Fprintf(p.Stdout, `{"executable": "/usr/bin/python3", "version": "3.12.1", "paths": ["%s", "/usr/lib/python3.12", ""]}`, wd)
		return 0
	}
	broken := func(_ context.Context, p *memory.Proc) int {
		fmt.Fprintln(p.Stderr, "go: cannot find GOROOT directory")
		return 2
	}
	e := newEnv(t, envOptions{Memory: memory.Options{Commands: map[string]memory.Command{"python3": python, "go": broken}}})
	wd = e.workdir
	c := e.dial()
	var res rpc.InspectResult
	c.mustCall("berth/inspect", rpc.InspectParams{Language: "python"}, &res)
	want := rpc.InspectResult{Executable: "/usr/bin/python3", Version: "3.12.1", Paths: []rpc.InspectPath{{Path: e.ws}, {Path: "/usr/lib/python3.12", ContainerOnly: true}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("berth/inspect (-want +got):\n%s", diff)
	}
	if err := c.call("berth/inspect", rpc.InspectParams{Language: "go"}, nil); code(err) != rpc.CodeInternalError || !strings.Contains(err.Error(), "go: exit 2: go: cannot find GOROOT directory") {
		t.Errorf("inspect go with a broken go: %v", err)
	}
}

func TestTunnelsWithoutAgent(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	var list []rpc.TunnelInfo
	c.mustCall("berth/tunnels", nil, &list)
	if len(list) != 0 {
		t.Errorf("tunnels %+v", list)
	}
	c.mustCall("berth/tunnels", rpc.WorkspaceParams{Workspace: e.ws}, &list)
	for _, call := range []struct {
		method string
		params any
	}{
		{"berth/forward", rpc.ForwardParams{ContainerPort: 8080}},
		{"berth/forward", rpc.ForwardParams{ContainerPort: 8080, HostSocket: "/tmp/berth-test.sock"}},
		{"berth/reverse", rpc.ReverseParams{HostPort: 8080}},
		{"berth/debug", rpc.DebugParams{Adapter: "debugpy", Program: "app.py"}},
		{"berth/exec", rpc.ExecParams{Argv: []string{"sh"}, TTY: true, Cols: 80, Rows: 24}},
	} {
		err := c.call(call.method, call.params, nil)
		if code(err) != rpc.CodeNeedsAgent || !strings.Contains(err.Error(), "agent not configured") {
			t.Errorf("%s: %v, want code %d saying why", call.method, err, rpc.CodeNeedsAgent)
		}
	}
}

// Every code of errors.go that berth can give without an agent, through
// the wire, from what a client can do.
func TestErrorCodes(t *testing.T) {
	tests := []struct {
		name   string
		opts   envOptions
		noRoot bool
		setup  func(e *env, c *conn) any // returns the params
		method string
		want   int64
	}{
		{name: "method not found", method: "berth/frobnicate", want: rpc.CodeMethodNotFound},
		{name: "invalid params", method: "berth/exec", setup: func(*env, *conn) any { return map[string]any{"argv": "ls"} }, want: rpc.CodeInvalidParams},
		{name: "internal error", method: "berth/list", setup: func(e *env, _ *conn) any {
			e.mem.SetError("List", fmt.Errorf("memory: injected failure"))
			return nil
		}, want: rpc.CodeInternalError},
		{name: "backend unavailable", method: "berth/list", setup: func(e *env, _ *conn) any { e.mem.SetDown(true); return nil }, want: rpc.CodeBackendUnavailable},
		{name: "image not found", opts: envOptions{Memory: memory.Options{Images: map[string]string{testImage: ""}}}, method: "berth/up",
			setup: func(*env, *conn) any { return rpc.UpParams{Image: "nope:1"} }, want: rpc.CodeImageNotFound},
		{name: "no image configured", opts: envOptions{Image: "-"}, method: "berth/up", want: rpc.CodeImageNotFound},
		{name: "no such process", method: "berth/stdin", setup: func(*env, *conn) any { return rpc.StdinParams{PID: "p99"} }, want: rpc.CodeNoSuchProcess},
		{name: "no workspace", noRoot: true, method: "berth/status", want: rpc.CodeNoWorkspace},
		{name: "instance not found", method: "berth/exec", setup: func(e *env, c *conn) any {
			c.run("true")
			e.mem.SetError("Exec", fmt.Errorf("memory: injected: %w", backends.ErrNotFound))
			return rpc.ExecParams{Argv: []string{"true"}}
		}, want: rpc.CodeInstanceNotFound},
		{name: "command not found", method: "berth/run", setup: func(*env, *conn) any { return rpc.ExecParams{Argv: []string{"no-such-tool"}} }, want: rpc.CodeCommandNotFound},
		{name: "process exited", method: "berth/signal", setup: func(e *env, c *conn) any {
			pid := c.exec(rpc.ExecParams{Argv: []string{"true"}})
			c.waitExit(pid)
			return map[string]any{"pid": pid, "signal": "TERM"}
		}, want: rpc.CodeProcessExited},
		{name: "stdin not open", method: "berth/stdin", setup: func(e *env, c *conn) any {
			return rpc.StdinParams{PID: c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}}), Text: "x"}
		}, want: rpc.CodeProcessExited},
		{name: "foreign instance", method: "berth/up", setup: func(e *env, _ *conn) any {
			if _, err := e.mem.AddForeign(session.InstanceName(e.ws)); err != nil {
				t.Fatal(err)
			}
			return nil
		}, want: rpc.CodeForeignInstance},
		{name: "not supported", method: "berth/resize", setup: func(e *env, c *conn) any {
			return rpc.ResizeParams{PID: c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}}), Cols: 80, Rows: 24}
		}, want: rpc.CodeNotSupported},
		{name: "shutting down", method: "berth/list", setup: func(e *env, c *conn) any { c.mustCall("shutdown", nil, nil); return nil }, want: rpc.CodeShuttingDown},
		{name: "instance not running", method: "berth/run", setup: func(e *env, c *conn) any {
			c.run("true")
			e.mem.SetError("Exec", fmt.Errorf("memory: injected: %w", backends.ErrNotRunning))
			return rpc.ExecParams{Argv: []string{"true"}}
		}, want: rpc.CodeInstanceNotRunning},
		{name: "needs agent", method: "berth/forward", setup: func(*env, *conn) any { return rpc.ForwardParams{ContainerPort: 80} }, want: rpc.CodeNeedsAgent},
		{name: "no such tunnel", method: "berth/closeTunnel", setup: func(*env, *conn) any { return rpc.CloseTunnelParams{TunnelID: "t9"} }, want: rpc.CodeNoSuchTunnel},
		{name: "bad config", opts: envOptions{Files: map[string]string{".devcontainer.json": `{"image": 7}`}}, method: "berth/up", want: rpc.CodeBadConfig},
		{name: "unsupported config", opts: envOptions{Files: dcFiles(`"workspaceMount": "type=tmpfs,target=/w", "workspaceFolder": "/w"`)}, method: "berth/up", want: rpc.CodeBadConfig},
		{name: "build failed", opts: envOptions{Files: map[string]string{"Containerfile": "FROM x\n"}}, method: "berth/up", want: rpc.CodeBuildFailed},
		{name: "hook failed", opts: envOptions{Files: dcFiles(`"onCreateCommand": "exit 1"`)}, method: "berth/up", want: rpc.CodeHookFailed},
		{name: "bad user", method: "berth/run", setup: func(*env, *conn) any { return rpc.ExecParams{Argv: []string{"true"}, User: "nobody"} }, want: rpc.CodeInvalidParams},
		{name: "bad cwd", method: "berth/run", setup: func(*env, *conn) any { return rpc.ExecParams{Argv: []string{"true"}, Cwd: "/no/such"} }, want: rpc.CodeInvalidParams},
		{name: "no test framework", method: "berth/test", want: rpc.CodeInvalidParams},
		{name: "bad lint format", method: "berth/lint", setup: func(*env, *conn) any {
			return rpc.LintParams{Command: []string{"true"}, Format: "%q"}
		}, want: rpc.CodeInvalidParams},
		{name: "bad workspace", method: "berth/status", setup: func(*env, *conn) any { return rpc.WorkspaceParams{Workspace: "/no/such/dir"} }, want: rpc.CodeInvalidParams},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			c := e.connect(false)
			init := rpc.InitializeParams{RootPath: e.ws, InitializationOptions: &rpc.InitializationOptions{Trust: true}}
			if tt.noRoot {
				init = rpc.InitializeParams{}
			}
			c.mustCall("initialize", init, nil)
			var params any
			if tt.setup != nil {
				params = tt.setup(e, c)
			}
			err := c.call(tt.method, params, nil)
			if code(err) != tt.want {
				t.Errorf("%s: %v, want code %d", tt.method, err, tt.want)
			}
		})
	}
}

// Parameters of the wrong type or value are -32602 naming the field,
// before anything starts.
func TestInvalidParams(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	pid := c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}})
	tests := []struct {
		method string
		params any
		msg    string
	}{
		{"berth/exec", map[string]any{"argv": "ls"}, "invalid params: argv: expected an array of string, got string"},
		{"berth/exec", map[string]any{"argv": []any{"ls", 1}}, "argv"},
		{"berth/exec", map[string]any{"argv": []string{}}, "argv: must be a non-empty array of strings"},
		{"berth/exec", map[string]any{"argv": []string{""}}, "argv: argv[0] must name a command"},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "kind": "build"}, `kind: must be one of run, test, lint, debug, os; got "build"`},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "env": map[string]string{"A=B": "1"}}, `env: invalid variable name "A=B"`},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "env": map[string]any{"A": 1}}, "env"},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "timeoutMs": 10}, "timeoutMs: only berth/run takes a timeout"},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "cols": 80}, "cols: cols and rows need tty: true"},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "stdin": "yes"}, "stdin: expected a boolean"},
		{"berth/exec", map[string]any{"argv": []string{"ls"}, "workspace": "relative/dir"}, "workspace"},
		{"berth/run", map[string]any{"argv": []string{"ls"}, "timeoutMs": -1}, "timeoutMs: must not be negative"},
		{"berth/run", map[string]any{"argv": []string{"ls"}, "stdin": true}, "stdin: berth/run takes no stdin"},
		{"berth/run", map[string]any{"argv": []string{"ls"}, "tty": true}, "tty: berth/run takes no tty"},
		{"berth/run", map[string]any{"argv": []string{"ls"}, "timeoutMs": "1s"}, "timeoutMs: expected an integer"},
		{"berth/stdin", map[string]any{"text": "x"}, "pid: required"},
		{"berth/stdin", map[string]any{"pid": 1}, "pid: expected a string"},
		{"berth/signal", map[string]any{"signal": "TERM"}, "pid: required"},
		{"berth/signal", map[string]any{"pid": pid}, "signal: required"},
		{"berth/signal", map[string]any{"pid": pid, "signal": "SIGRTMIN"}, "signal: unknown signal"},
		{"berth/signal", map[string]any{"pid": pid, "signal": 0}, "signal"},
		{"berth/signal", map[string]any{"pid": pid, "signal": true}, `signal: must be a name like "TERM" or a number`},
		{"berth/resize", map[string]any{"pid": pid}, "cols: cols and rows must be positive"},
		{"berth/resize", map[string]any{"cols": 80, "rows": 24}, "pid: required"},
		{"berth/resize", map[string]any{"pid": pid, "cols": -1, "rows": 24}, "cols: expected a non-negative integer"},
		{"berth/processes", map[string]any{"state": "zombie"}, `state: "zombie": use "running" or "exited"`},
		{"berth/processes", map[string]any{"limit": -1}, "limit: must not be negative"},
		{"berth/processes", map[string]any{"limit": "all"}, "limit: expected an integer"},
		{"berth/toContainer", map[string]any{}, "paths: required"},
		{"berth/toHost", map[string]any{"paths": "/x"}, "paths: expected an array of string"},
		{"berth/forward", map[string]any{}, "containerPort: must be a port number 1-65535, got 0"},
		{"berth/forward", map[string]any{"containerPort": 80, "hostPort": 70000}, "hostPort: must be a port number 0-65535, got 70000"},
		{"berth/forward", map[string]any{"containerPort": 80, "hostPort": 7000, "hostSocket": "/tmp/s"}, "hostSocket: give hostSocket or hostPort, not both"},
		{"berth/forward", map[string]any{"containerPort": 80, "hostSocket": "debug.sock"}, `hostSocket: must be an absolute host path, got "debug.sock"`},
		{"berth/forward", map[string]any{"containerPort": 80, "hostSocket": 1}, "hostSocket: expected a string"},
		{"berth/reverse", map[string]any{"containerPort": 80}, "hostPort: must be a port number 1-65535, got 0"},
		{"berth/reverse", map[string]any{"hostPort": 80, "containerPort": -2}, "containerPort: must be a port number 0-65535"},
		{"berth/closeTunnel", map[string]any{}, "tunnelId: required"},
		{"berth/tunnels", map[string]any{"workspace": "relative"}, "workspace"},
		{"berth/up", map[string]any{"recreate": "yes"}, "recreate: expected a boolean"},
		{"berth/down", map[string]any{"remove": 1}, "remove: expected a boolean"},
		{"berth/status", map[string]any{"workspace": 7}, "workspace: expected a string"},
		{"berth/sync", map[string]any{"workspace": "relative"}, "workspace"},
		{"berth/test", map[string]any{"framework": "jest"}, `framework: must be pytest, go or auto; got "jest"`},
		{"berth/test", map[string]any{"args": "-v"}, "args"},
		{"berth/lint", map[string]any{"linter": "eslint"}, `linter: must be pyflakes, go vet or custom; got "eslint"`},
		{"berth/inspect", map[string]any{"language": "ruby"}, `language: must be python or go; got "ruby"`},
		{"berth/debug", map[string]any{}, "adapter: required"},
		{"berth/debug", map[string]any{"adapter": "gdb"}, `adapter: must be debugpy, delve or custom; got "gdb"`},
		{"berth/debug", map[string]any{"adapter": "delve", "port": 70000}, "port: must be a port number 0-65535"},
		{"berth/debug", map[string]any{"adapter": "delve", "connectBack": map[string]any{}}, "connectBack.hostPort: must be a port number 1-65535"},
		{"berth/exec", []string{"ls"}, "params"},
		{"berth/exec", "ls", "params"},
	}
	for _, tt := range tests {
		err := c.call(tt.method, tt.params, nil)
		if code(err) != rpc.CodeInvalidParams || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s %v: %v, want code %d saying %q", tt.method, tt.params, err, rpc.CodeInvalidParams, tt.msg)
		}
	}
	// None of these started anything.
	var procs []rpc.ProcessInfo
	c.mustCall("berth/processes", nil, &procs)
	if len(procs) != 1 {
		t.Errorf("%d processes after invalid calls", len(procs))
	}
}

// Parameter errors the editor's work finds are the client's fault, not
// berth's.
func TestWorkParamErrorsAreInvalidParams(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	for _, call := range []struct {
		method string
		params any
	}{
		{"berth/lint", rpc.LintParams{Linter: "custom", Format: "%f:%l: %m"}},
		{"berth/lint", rpc.LintParams{Linter: "custom", Command: []string{"true"}}},
		{"berth/test", rpc.TestParams{Framework: "go", Files: []string{"relative/x_test.go"}}},
	} {
		if err := c.call(call.method, call.params, nil); code(err) != rpc.CodeInvalidParams {
			t.Errorf("%s %+v: %v, want code %d", call.method, call.params, err, rpc.CodeInvalidParams)
		}
	}
}

// A run that exceeds its timeout while the engine is slow still reports.
func TestRunTimeoutReports(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	start := time.Now()
	var res rpc.RunResult
	c.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "echo started; sleep 10"}, TimeoutMs: 100}, &res)
	if !res.TimedOut || res.Stdout != "started\n" || time.Since(start) > 5*time.Second {
		t.Errorf("berth/run: %+v after %v", res, time.Since(start))
	}
}
