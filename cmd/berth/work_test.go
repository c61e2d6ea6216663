package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-dap"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// debianImage is the realistic test image (python3, pytest, debugpy,
// pyflakes) that testdata/images/debian.sh builds for each backend.
func debianImage(e engine) string {
	if e.name == docker.Name {
		return envOr("BERTH_TEST_DEBIAN_IMAGE", "berth-test/debian:2")
	}
	return envOr("BERTH_TEST_INCUS_DEBIAN_IMAGE", "berth-test/debian-2")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// pyproj copies testdata/workspaces/pyproj to a temp workspace, so tests
// may edit it, and brings it up on the Debian image.
func pyproj(t *testing.T, e engine) (*berth, string, rpc.Instance) {
	t.Helper()
	ws := workspace(t, e.b)
	if err := os.CopyFS(ws, os.DirFS("../../testdata/workspaces/pyproj")); err != nil {
		t.Fatal(err)
	}
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: debianImage(e)})
	var inst rpc.Instance
	if err := b.call("berth/up", rpc.UpParams{}, &inst); err != nil {
		if code(err) == rpc.CodeImageNotFound && !backendtest.Required(e.name) {
			t.Skipf("Debian test image missing (run testdata/images/debian.sh %s): %v", e.name, err)
		}
		t.Fatalf("berth/up: %v", err)
	}
	return b, ws, inst
}

// lineOf returns the 1-based line of the first line of file containing s.
func lineOf(t *testing.T, file, s string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, s) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line containing %q", file, s)
	return 0
}

func fileURI(p string) string { return "file://" + p }

func TestPytest(t *testing.T) { eachBackend(t, testPytest) }

func testPytest(t *testing.T, e engine) {
	b, ws, _ := pyproj(t, e)
	var res rpc.TestResult
	b.mustCall("berth/test", rpc.TestParams{}, &res)
	if res.Framework != "pytest" {
		t.Errorf("framework = %q, want pytest (auto-detected)", res.Framework)
	}
	want := rpc.TestSummary{Passed: 3, Failed: 2, Skipped: 1, Errors: 1}
	got := res.Summary
	got.DurationMs = 0
	if got != want {
		t.Errorf("summary = %+v, want %+v", got, want)
	}
	byName := map[string]rpc.TestInfo{}
	for _, tc := range res.Tests {
		byName[tc.Name] = tc
	}
	testFile := filepath.Join(ws, "tests", "test_calc.py")
	for _, tc := range res.Tests {
		if tc.Status == "passed" || tc.Status == "skipped" {
			continue
		}
		if tc.Location == nil || tc.Location.URI != fileURI(testFile) {
			t.Errorf("%s: location %+v, want %s", tc.Name, tc.Location, fileURI(testFile))
			continue
		}
		// testdata/workspaces/pyproj/EXPECTED.md: the failing lines.
		wantLine := map[string]int{"test_add_fails": 20, "test_mean_fails": 24, "test_fixture_errors": 34}[tc.Name]
		if tc.Location.Line != wantLine || tc.Message == "" {
			t.Errorf("%s (%s): line %d message %q; want line %d", tc.Name, tc.Status, tc.Location.Line, tc.Message, wantLine)
		}
	}
	// The output streamed live under the run's pid, with host paths.
	exit, out := b.waitExit(res.PID)
	if exit.Code == 0 || !strings.Contains(out["stdout"], "failed") {
		t.Errorf("pytest run: exit %+v, output %q", exit, out["stdout"])
	}

	// Only the named file, mapped from the host.
	b.mustCall("berth/test", rpc.TestParams{Files: []string{testFile}, Args: []string{"-k", "not fixture"}}, &res)
	if res.Summary.Passed != 3 {
		t.Errorf("summary for one file with -k = %+v", res.Summary)
	}

	pytestSelect(t, b, ws)
}

const pytestClass = `class TestC:
    def test_a(self):
        assert True

    def test_b(self):
        assert 1 == 2  # CLASS FAIL
`

// pytestSelect discovers the tests, then runs a class and a test by id.
func pytestSelect(t *testing.T, b *berth, ws string) {
	clsFile := filepath.Join(ws, "tests", "test_cls.py")
	writeFile(t, clsFile, pytestClass)
	var d rpc.TestDiscoverResult
	b.mustCall("berth/testDiscover", rpc.TestDiscoverParams{}, &d)
	byID := map[string]rpc.DiscoveredTest{}
	for _, n := range d.Tests {
		byID[n.ID] = n
	}
	calc := filepath.Join(ws, "tests", "test_calc.py")
	loc := func(file string, line int) *rpc.Location { return &rpc.Location{URI: fileURI(file), Line: line} }
	for _, want := range []rpc.DiscoveredTest{
		{ID: "tests/test_calc.py", Name: "test_calc.py", Kind: "file", Location: loc(calc, 1)},
		{ID: "tests/test_calc.py::test_add", Name: "test_add", Kind: "test", Parent: "tests/test_calc.py", Location: loc(calc, lineOf(t, calc, "def test_add():"))},
		{ID: "tests/test_cls.py::TestC", Name: "TestC", Kind: "class", Parent: "tests/test_cls.py", Location: loc(clsFile, 1)},
		{ID: "tests/test_cls.py::TestC::test_b", Name: "test_b", Kind: "test", Parent: "tests/test_cls.py::TestC", Location: loc(clsFile, 5)},
	} {
		if diff := cmp.Diff(want, byID[want.ID]); diff != "" {
			t.Errorf("discovered %s (-want +got):\n%s", want.ID, diff)
		}
	}
	if d.Framework != "pytest" || len(d.Tests) != 12 { // 2 files, 1 class, 9 tests
		t.Errorf("discovered %s, %d nodes: %+v", d.Framework, len(d.Tests), d.Tests)
	}

	for _, tt := range []struct {
		tests []string
		want  rpc.TestSummary
	}{
		{[]string{"tests/test_cls.py::TestC"}, rpc.TestSummary{Passed: 1, Failed: 1}},
		{[]string{"tests/test_calc.py::test_add", "tests/test_cls.py::TestC::test_a"}, rpc.TestSummary{Passed: 2}},
	} {
		var res rpc.TestResult
		b.mustCall("berth/test", rpc.TestParams{Tests: tt.tests}, &res)
		got := res.Summary
		got.DurationMs = 0
		if got != tt.want {
			t.Errorf("berth/test %v: %+v, want %+v; tests %+v", tt.tests, got, tt.want, res.Tests)
		}
		for _, tc := range res.Tests {
			if !slices.Contains(tt.tests, tc.ID) && !strings.HasPrefix(tc.ID, tt.tests[0]+"::") {
				t.Errorf("berth/test %v ran %s", tt.tests, tc.ID)
			}
		}
	}
}

func TestPyflakes(t *testing.T) { eachBackend(t, testPyflakes) }

func testPyflakes(t *testing.T, e engine) {
	b, ws, _ := pyproj(t, e)
	var res rpc.LintResult
	b.mustCall("berth/lint", rpc.LintParams{Linter: "pyflakes"}, &res)
	lintFile := filepath.Join(ws, "lint_me.py")
	diags := b.diagnostics(fileURI(lintFile), 1)
	if len(diags) < 5 || res.Files != 1 || res.Diagnostics != len(diags) {
		t.Fatalf("lint = %+v; diagnostics for lint_me.py: %+v", res, diags)
	}
	unused := lineOf(t, lintFile, "import os")
	found := false
	for _, d := range diags {
		if d.Range.Start.Line == unused-1 && strings.Contains(d.Message, "'os' imported but unused") {
			found = true
		}
		if d.Source != "pyflakes" {
			t.Errorf("diagnostic source %q", d.Source)
		}
	}
	if !found {
		t.Errorf("no unused-import diagnostic at line %d in %+v", unused, diags)
	}

	// Fixed on the host: the next lint clears the file.
	if err := os.WriteFile(lintFile, []byte("print('clean')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.mustCall("berth/lint", rpc.LintParams{Linter: "pyflakes"}, &res)
	if diags := b.diagnostics(fileURI(lintFile), 2); len(diags) != 0 || res.Cleared != 1 {
		t.Errorf("after the fix: %d diagnostics, lint %+v; want an empty list and cleared 1", len(diags), res)
	}

	// A custom linter with an errorformat, and a bad format.
	b.mustCall("berth/lint", rpc.LintParams{Linter: "custom", Command: []string{"sh", "-c", "echo app.py:2:1: custom complaint"}, Format: "%f:%l:%c: %m"}, &res)
	if d := b.diagnostics(fileURI(filepath.Join(ws, "app.py")), 1); len(d) != 1 || d[0].Message != "custom complaint" || d[0].Range.Start.Line != 1 {
		t.Errorf("custom lint diagnostics = %+v", d)
	}
	if err := b.call("berth/lint", rpc.LintParams{Linter: "custom", Command: []string{"true"}, Format: "%l only"}, nil); code(err) != rpc.CodeInvalidParams {
		t.Errorf("bad format: %v, want -32602", err)
	}
}

type lspDiagnostic struct {
	Range struct {
		Start struct{ Line, Character int } `json:"start"`
	} `json:"range"`
	Severity int    `json:"severity"`
	Source   string `json:"source"`
	Message  string `json:"message"`
}

// diagnostics returns the diagnostics of the nth publishDiagnostics for uri.
func (b *berth) diagnostics(uri string, nth int) []lspDiagnostic {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	timer := time.AfterFunc(30*time.Second, b.cond.Broadcast)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		seen := 0
		for _, n := range b.notes {
			if n.method != "textDocument/publishDiagnostics" {
				continue
			}
			var p struct {
				URI         string          `json:"uri"`
				Diagnostics []lspDiagnostic `json:"diagnostics"`
			}
			json.Unmarshal(n.params, &p)
			if p.URI == uri {
				if seen++; seen == nth {
					return p.Diagnostics
				}
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("publishDiagnostics #%d for %s never came", nth, uri)
		}
		b.cond.Wait()
	}
}

func TestInspectPython(t *testing.T) { eachBackend(t, testInspectPython) }

func testInspectPython(t *testing.T, e engine) {
	b, _, _ := pyproj(t, e)
	var res rpc.InspectResult
	b.mustCall("berth/inspect", rpc.InspectParams{Language: "python"}, &res)
	if !strings.HasPrefix(res.Version, "3.") || !strings.Contains(res.Executable, "python3") {
		t.Errorf("inspect = %+v", res)
	}
	containerOnly := false
	for _, p := range res.Paths {
		if strings.HasPrefix(p.Path, "/usr/lib/python3") && p.ContainerOnly {
			containerOnly = true
		}
	}
	if !containerOnly {
		t.Errorf("no container-only /usr/lib/python3 path in %+v", res.Paths)
	}
}

// A real DAP session through berth's tunnel: breakpoints on host paths,
// a stop at the host path and line, and the debuggee runs to its end.
func TestDebugpyDAP(t *testing.T) { eachBackend(t, testDebugpyDAP) }

func testDebugpyDAP(t *testing.T, e engine) {
	b, ws, _ := pyproj(t, e)
	app := filepath.Join(ws, "app.py")
	calcTest := filepath.Join(ws, "tests", "test_calc.py")
	for _, tt := range []struct {
		name   string
		params rpc.DebugParams
		file   string
		line   int
	}{
		{"program", rpc.DebugParams{Adapter: "debugpy", Program: app}, app, lineOf(t, app, "BREAKPOINT LINE")},
		// pytest under debugpy, running one test by its node id.
		{"test", rpc.DebugParams{Adapter: "debugpy", Test: true, Tests: []string{"tests/test_calc.py::test_add"}}, calcTest, lineOf(t, calcTest, "assert add(2, 3) == 5")},
	} {
		t.Logf("debugging the %s", tt.name)
		debugpySession(t, b, ws, tt.params, tt.file, tt.line)
	}
}

// debugpySession starts berth/debug, stops at file:line through the tunnel,
// and runs the debuggee to a clean end, which closes the tunnel.
func debugpySession(t *testing.T, b *berth, ws string, params rpc.DebugParams, app string, line int) {
	t.Helper()
	var res rpc.DebugResult
	b.mustCall("berth/debug", params, &res)
	if res.Host != "127.0.0.1" || res.Port == 0 || res.Attach == nil {
		t.Fatalf("debug = %+v", res)
	}
	pm, _ := json.Marshal(res.Attach["pathMappings"])
	if !strings.Contains(string(pm), `"localRoot":"`+ws+`"`) || !strings.Contains(string(pm), `"remoteRoot":"/workspaces/`) {
		t.Errorf("pathMappings = %s", pm)
	}

	c, err := net.Dial("tcp", net.JoinHostPort(res.Host, fmt.Sprint(res.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := &dapClient{t: t, c: c, r: bufio.NewReader(c)}
	stopped, top := d.stopAt("debugpy", res.Attach, app, line)
	if top.Source == nil || top.Source.Path != app || top.Line != line {
		t.Errorf("top frame at %+v line %d, want %s line %d", top.Source, top.Line, app, line)
	}
	d.send(&dap.ContinueRequest{Request: d.req("continue"), Arguments: dap.ContinueArguments{ThreadId: stopped.Body.ThreadId}})
	d.expect(func(m dap.Message) bool { _, ok := m.(*dap.TerminatedEvent); return ok })

	exit, out := b.waitExit(res.PID)
	if exit.Code != 0 {
		t.Errorf("debuggee exit = %+v, output %q", exit, out)
	}
	// The tunnel closed with the debuggee.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var list []rpc.TunnelInfo
		b.mustCall("berth/tunnels", struct{}{}, &list)
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnels after the debuggee exited: %+v", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Wing Pro's direction: the debuggee connects back to a debug server on
// the host, through a reverse tunnel.
func TestDebugConnectBack(t *testing.T) { eachBackend(t, testDebugConnectBack) }

func testDebugConnectBack(t *testing.T, e engine) {
	b, _, _ := pyproj(t, e)
	ln, got := hostListener(t)
	script := "import os, socket; s = socket.create_connection((os.environ['BERTH_DEBUG_HOST'], int(os.environ['BERTH_DEBUG_PORT']))); s.sendall(b'hello, IDE'); s.close()"
	var res rpc.DebugResult
	b.mustCall("berth/debug", rpc.DebugParams{
		Adapter: "custom", Command: []string{"python3", "-c", script},
		ConnectBack: &rpc.ConnectBack{HostPort: ln.Addr().(*net.TCPAddr).Port},
	}, &res)
	if res.ConnectBack == nil || res.ConnectBack.ContainerPort == 0 {
		t.Fatalf("debug = %+v", res)
	}
	select {
	case s := <-got:
		if s != "hello, IDE" {
			t.Errorf("host debug server got %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the debuggee never connected back")
	}
}

// stopAt attaches with berth's attach configuration, sets a breakpoint at
// a host file and line, lets the debuggee run, and returns the stop and the
// top stack frame.
func (d *dapClient) stopAt(adapterID string, attach map[string]any, file string, line int) (*dap.StoppedEvent, dap.StackFrame) {
	d.t.Helper()
	d.send(&dap.InitializeRequest{Request: d.req("initialize"), Arguments: dap.InitializeRequestArguments{
		AdapterID: adapterID, LinesStartAt1: true, ColumnsStartAt1: true, PathFormat: "path",
	}})
	d.expect(func(m dap.Message) bool { _, ok := m.(*dap.InitializeResponse); return ok })
	args, _ := json.Marshal(attach)
	d.send(&dap.AttachRequest{Request: d.req("attach"), Arguments: args})
	d.expect(func(m dap.Message) bool { _, ok := m.(*dap.InitializedEvent); return ok })
	d.send(&dap.SetBreakpointsRequest{Request: d.req("setBreakpoints"), Arguments: dap.SetBreakpointsArguments{
		Source: dap.Source{Path: file}, Breakpoints: []dap.SourceBreakpoint{{Line: line}},
	}})
	d.expect(func(m dap.Message) bool { r, ok := m.(*dap.SetBreakpointsResponse); return ok && r.Success })
	d.send(&dap.ConfigurationDoneRequest{Request: d.req("configurationDone")})
	stopped := d.expect(func(m dap.Message) bool { _, ok := m.(*dap.StoppedEvent); return ok }).(*dap.StoppedEvent)
	d.send(&dap.StackTraceRequest{Request: d.req("stackTrace"), Arguments: dap.StackTraceArguments{ThreadId: stopped.Body.ThreadId}})
	st := d.expect(func(m dap.Message) bool { _, ok := m.(*dap.StackTraceResponse); return ok }).(*dap.StackTraceResponse)
	if len(st.Body.StackFrames) == 0 {
		d.t.Fatal("empty stack trace")
	}
	return stopped, st.Body.StackFrames[0]
}

// dapClient speaks DAP to the debug server at the tunnel's host end.
type dapClient struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	seq int
}

func (d *dapClient) req(command string) dap.Request {
	d.seq++
	return dap.Request{ProtocolMessage: dap.ProtocolMessage{Seq: d.seq, Type: "request"}, Command: command}
}

func (d *dapClient) send(m dap.Message) {
	d.t.Helper()
	if err := dap.WriteProtocolMessage(d.c, m); err != nil {
		d.t.Fatal(err)
	}
}

// expect reads messages until one satisfies ok, failing on an error
// response or after a minute.
func (d *dapClient) expect(ok func(dap.Message) bool) dap.Message {
	d.t.Helper()
	d.c.SetReadDeadline(time.Now().Add(time.Minute))
	for {
		content, err := dap.ReadBaseMessage(d.r)
		if err != nil {
			d.t.Fatalf("reading DAP: %v", err)
		}
		m, err := dap.DecodeProtocolMessage(content)
		if err != nil {
			var ev struct{ Type string }
			if json.Unmarshal(content, &ev) == nil && ev.Type == "event" {
				continue // an adapter's own event, such as debugpyWaitingForServer
			}
			d.t.Fatalf("decoding DAP %s: %v", content, err)
		}
		if r, isResp := m.(dap.ResponseMessage); isResp && !r.GetResponse().Success {
			d.t.Fatalf("DAP error response: %+v", r.GetResponse())
		}
		if ok(m) {
			return m
		}
	}
}

// goImage is the Debian test image with golang-go and delve.
func goImage() string { return envOr("BERTH_TEST_DEBIAN_GO_IMAGE", "berth-test/debian-go:2") }

const goTestFile = `package calc

import "testing"

func TestAdd(t *testing.T) {
	if Add(2, 3) != 5 {
		t.Fatal("bad")
	}
}

func TestAddWrong(t *testing.T) {
	if got := Add(2, 2); got != 5 {
		t.Errorf("Add(2, 2) = %d, want 5", got) // FAIL LINE 1
	}
}

func TestSkipped(t *testing.T) { t.Skip("on purpose") }

func TestTable(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Error("sub failed") }) // FAIL LINE 2
}
`

// go test through berth/test: outcomes at host locations.
func TestGoTest(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, "go.mod"), "module example.com/calc\n\ngo 1.19\n")
	writeFile(t, filepath.Join(ws, "calc.go"), "package calc\n\nfunc Add(a, b int) int { return a + b }\n")
	writeFile(t, filepath.Join(ws, "calc_test.go"), goTestFile)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: goImage()})
	if err := b.call("berth/up", rpc.UpParams{}, nil); err != nil {
		if code(err) == rpc.CodeImageNotFound && !backendtest.Required(e.name) {
			t.Skipf("Go test image missing (BERTH_DEBIAN_GO=1 testdata/images/debian.sh): %v", err)
		}
		t.Fatal(err)
	}
	var res rpc.TestResult
	b.mustCall("berth/test", rpc.TestParams{}, &res)
	got := res.Summary
	got.DurationMs = 0
	if want := (rpc.TestSummary{Passed: 2, Failed: 3, Skipped: 1}); res.Framework != "go" || got != want {
		t.Errorf("go test: framework %q summary %+v, want go %+v; tests %+v", res.Framework, got, want, res.Tests)
	}
	file := filepath.Join(ws, "calc_test.go")
	want := map[string]int{
		"TestAddWrong":  lineOf(t, file, "FAIL LINE 1"),
		"TestTable/bad": lineOf(t, file, "FAIL LINE 2"),
	}
	for _, tc := range res.Tests {
		line, ok := want[tc.Name]
		if !ok {
			continue
		}
		if tc.Location == nil || tc.Location.URI != fileURI(file) || tc.Location.Line != line {
			t.Errorf("%s: location %+v, want %s:%d", tc.Name, tc.Location, file, line)
		}
		delete(want, tc.Name)
	}
	if len(want) > 0 {
		t.Errorf("missing tests %v in %+v", want, res.Tests)
	}

	// Discovered before any run, each test at its func line.
	var d rpc.TestDiscoverResult
	b.mustCall("berth/testDiscover", rpc.TestDiscoverParams{}, &d)
	wantNodes := []rpc.DiscoveredTest{{ID: "example.com/calc", Name: "example.com/calc", Kind: "package"}}
	for _, name := range []string{"TestAdd", "TestAddWrong", "TestSkipped", "TestTable"} {
		wantNodes = append(wantNodes, rpc.DiscoveredTest{
			ID: "example.com/calc." + name, Name: name, Kind: "test", Parent: "example.com/calc",
			Location: &rpc.Location{URI: fileURI(file), Line: lineOf(t, file, "func "+name+"(")},
		})
	}
	if diff := cmp.Diff(wantNodes, d.Tests); d.Framework != "go" || diff != "" {
		t.Errorf("discovered %s (-want +got):\n%s", d.Framework, diff)
	}

	// Run by id: one test, and one subtest (with its parent).
	for _, tt := range []struct {
		tests []string
		want  rpc.TestSummary
	}{
		{[]string{"example.com/calc.TestAddWrong"}, rpc.TestSummary{Failed: 1}},
		{[]string{"example.com/calc.TestTable/ok", "example.com/calc.TestAdd"}, rpc.TestSummary{Passed: 3}},
	} {
		b.mustCall("berth/test", rpc.TestParams{Tests: tt.tests}, &res)
		got := res.Summary
		got.DurationMs = 0
		if got != tt.want {
			t.Errorf("berth/test %v: %+v, want %+v; tests %+v", tt.tests, got, tt.want, res.Tests)
		}
	}
}

const goMain = `package main

import "fmt"

func add(a, b int) int { return a + b }

func main() {
	total := add(2, 3) // BREAKPOINT LINE
	fmt.Println("total", total)
}
`

const goCalcTest = `package calc

import "testing"

func TestAdd(t *testing.T) {
	if got := 2 + 3; got != 5 { // TEST BREAKPOINT
		t.Fatal(got)
	}
}

func TestOther(t *testing.T) { t.Fatal("not selected, never runs") }
`

// A real DAP session with delve through berth's tunnel, attaching in
// remote mode to a headless server, with host paths both ways: a program
// (dlv debug), and one test of a package (dlv test).
func TestDelveDAP(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, "go.mod"), "module example.com/hello\n\ngo 1.19\n")
	writeFile(t, filepath.Join(ws, "main.go"), goMain)
	writeFile(t, filepath.Join(ws, "calc", "calc_test.go"), goCalcTest)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: goImage()})
	if err := b.call("berth/up", rpc.UpParams{}, nil); err != nil {
		if code(err) == rpc.CodeImageNotFound && !backendtest.Required(e.name) {
			t.Skipf("Go test image missing: %v", err)
		}
		t.Fatal(err)
	}
	mainGo := filepath.Join(ws, "main.go")
	calcTest := filepath.Join(ws, "calc", "calc_test.go")
	for _, tt := range []struct {
		name   string
		params rpc.DebugParams
		file   string
		line   int
	}{
		{"program", rpc.DebugParams{Adapter: "delve", Program: ws}, mainGo, lineOf(t, mainGo, "BREAKPOINT LINE")},
		{"test", rpc.DebugParams{Adapter: "delve", Test: true, Tests: []string{"example.com/hello/calc.TestAdd"}}, calcTest, lineOf(t, calcTest, "TEST BREAKPOINT")},
	} {
		t.Logf("debugging the %s", tt.name)
		var res rpc.DebugResult
		b.mustCall("berth/debug", tt.params, &res)
		if res.Attach["mode"] != "remote" {
			t.Fatalf("attach = %+v", res.Attach)
		}
		c, err := net.Dial("tcp", net.JoinHostPort(res.Host, fmt.Sprint(res.Port)))
		if err != nil {
			t.Fatal(err)
		}
		d := &dapClient{t: t, c: c, r: bufio.NewReader(c)}
		stopped, top := d.stopAt("go", res.Attach, tt.file, tt.line)
		if top.Source == nil || top.Source.Path != tt.file || top.Line != tt.line {
			t.Errorf("%s: top frame at %+v line %d, want %s line %d", tt.name, top.Source, top.Line, tt.file, tt.line)
		}
		if tt.name == "test" {
			// Only the chosen test runs: the other one would fail the binary.
			d.send(&dap.ContinueRequest{Request: d.req("continue"), Arguments: dap.ContinueArguments{ThreadId: stopped.Body.ThreadId}})
			d.expect(func(m dap.Message) bool { _, ok := m.(*dap.TerminatedEvent); return ok })
			b.waitOutput(res.PID, "PASS")
		}
		d.send(&dap.DisconnectRequest{Request: d.req("disconnect"), Arguments: &dap.DisconnectArguments{TerminateDebuggee: true}})
		d.expect(func(m dap.Message) bool { _, ok := m.(*dap.DisconnectResponse); return ok })
		c.Close()
		b.waitExit(res.PID)
	}
}
