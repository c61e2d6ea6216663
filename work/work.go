// Package work is the editor's work inside a workspace's container: test
// runs, lint, interpreter inspection and debug sessions. It sits above
// session and needs only what Session offers: run, exec, forward, reverse,
// reading files from the instance, and the path mapper.
package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthdev/berth/pathmap"
	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/tools"
)

// ErrNoFramework means no test framework was given and none was detected.
var ErrNoFramework = errors.New("no test framework detected")

// ErrBadRequest means the caller asked for something the work can't be:
// an unknown framework, linter or language, a custom linter without its
// command or format, a file outside every mount.
var ErrBadRequest = errors.New("invalid request")

// Session is what the editor's work needs of an editor's session: the
// instance with its mapper, processes (streamed or captured), tunnels, and
// files read from the instance. *session.Client is one.
type Session interface {
	Ready(ctx context.Context, ws, image string) (session.Ready, error)
	NeedAgent(ctx context.Context, r session.Ready) error
	RunWork(ctx context.Context, opts session.ExecOptions, transform func(string) string) (session.WorkRun, error)
	Run(ctx context.Context, opts session.ExecOptions, timeout time.Duration) (session.RunResult, error)
	Exec(ctx context.Context, opts session.ExecOptions) (*session.Process, error)
	ReadFile(ctx context.Context, r session.Ready, path string) ([]byte, error)
	Forward(ctx context.Context, ws, image, containerHost string, containerPort, hostPort int) (session.TunnelInfo, error)
	Reverse(ctx context.Context, ws, image string, hostPort, containerPort int) (session.TunnelInfo, error)
	CloseTunnel(id string) error
	CloseTunnelOnExit(p *session.Process, id string) error
}

var _ Session = (*session.Client)(nil)

// hostURI maps a container path to a host file URI, or "" if no mount
// covers it.
func hostURI(m *pathmap.Mapper, containerPath string) string {
	if containerPath == "" {
		return ""
	}
	u, ok := m.ToHost((&url.URL{Scheme: "file", Path: containerPath}).String())
	if !ok {
		return ""
	}
	return u
}

// TestOptions are the parameters of Test.
type TestOptions struct {
	Workspace string
	Image     string
	Framework string   // pytest, go, or auto/""
	Args      []string // passed to the runner
	Files     []string // host paths (or container paths) of test files
	// Tests are test ids to run, as TestResult and Discover name them;
	// they replace Files.
	Tests []string
}

// TestCase is a test's outcome with its location on the host.
type TestCase struct {
	tools.TestCase
	URI string // host file URI of the test's source, "" if unknown
}

// TestResult is the outcome of Test.
type TestResult struct {
	PID       string
	Framework string
	Summary   tools.Summary
	Tests     []TestCase
	Code      int
}

// DetectFramework picks the test framework of a host workspace: go when it
// has a go.mod, pytest when it looks like a Python project.
func DetectFramework(ws string) (string, error) {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(ws, name))
		return err == nil
	}
	if exists("go.mod") {
		return "go", nil
	}
	for _, f := range []string{"pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini", "conftest.py"} {
		if exists(f) {
			return "pytest", nil
		}
	}
	found := false
	_ = filepath.WalkDir(ws, func(p string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipDir
		}
		if d.IsDir() && p != ws && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if n := d.Name(); !d.IsDir() && strings.HasSuffix(n, ".py") && (strings.HasPrefix(n, "test_") || strings.HasSuffix(n, "_test.py")) {
			found = true
		}
		return nil
	})
	if found {
		return "pytest", nil
	}
	return "", fmt.Errorf("%w in %s: no go.mod, no Python project files or test_*.py; pass framework", ErrNoFramework, ws)
}

// mapFiles maps host paths (or container paths) into the container.
func mapFiles(m *pathmap.Mapper, files []string) ([]string, error) {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if p, ok := session.ToContainer(m, f); ok {
			if u, err := url.Parse(p); err == nil && u.Scheme == "file" {
				p = u.Path
			}
			out = append(out, p)
			continue
		}
		if path.IsAbs(f) && !strings.HasPrefix(f, "file:") {
			out = append(out, f) // already a container path
			continue
		}
		return nil, fmt.Errorf("files: %s is not under the workspace or any mount: %w", f, ErrBadRequest)
	}
	return out, nil
}

// Test runs the workspace's tests with a machine-readable reporter and
// returns each test's outcome at its host location. Output streams to the
// client as it runs.
func Test(ctx context.Context, c Session, opts TestOptions) (TestResult, error) {
	if len(opts.Tests) > 0 && len(opts.Files) > 0 {
		return TestResult{}, fmt.Errorf("tests replace files: give one of them: %w", ErrBadRequest)
	}
	inst, err := c.Ready(ctx, opts.Workspace, opts.Image)
	if err != nil {
		return TestResult{}, err
	}
	mapper := inst.Mapper
	fw, err := testDefaults(inst, &opts)
	if err != nil {
		return TestResult{}, err
	}
	files, err := mapFiles(mapper, opts.Files)
	if err != nil {
		return TestResult{}, err
	}
	cwd := inst.Workdir
	exec := session.ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Kind: "test", Cwd: cwd}

	var (
		summary tools.Summary
		cases   []tools.TestCase
		run     session.WorkRun
	)
	switch fw {
	case "pytest":
		report := fmt.Sprintf("/tmp/berth-junit-%d.xml", time.Now().UnixNano())
		exec.Argv = tools.PytestArgv(report, opts.Args, append(files, opts.Tests...))
		if run, err = c.RunWork(ctx, exec, nil); err != nil {
			return TestResult{}, err
		}
		data, err := c.ReadFile(ctx, inst, report)
		if err != nil {
			return TestResult{}, fmt.Errorf("pytest wrote no report (exit %d; is pytest installed in the container?): %w", run.Status.Code, err)
		}
		cleanup(c, opts, report)
		if summary, cases, err = tools.ParseJUnit(data, cwd); err != nil {
			return TestResult{}, err
		}
	case "go":
		dirs, err := goPackageDirs(ctx, c, exec)
		if err != nil {
			return TestResult{}, err
		}
		args := opts.Args
		if len(opts.Tests) > 0 {
			pkgs, run, err := tools.GoRunSelection(opts.Tests)
			if err != nil {
				return TestResult{}, err
			}
			files = pkgs
			if run != "" {
				args = append([]string{"-run", run}, args...)
			}
		}
		exec.Argv = tools.GoTestArgv(args, files)
		if run, err = c.RunWork(ctx, exec, goTestOutput()); err != nil {
			return TestResult{}, err
		}
		if summary, cases, err = tools.ParseGoTest(run.Stdout, dirs); err != nil {
			return TestResult{}, err
		}
	default:
		return TestResult{}, fmt.Errorf("framework: unknown %q (use pytest, go or auto): %w", fw, ErrBadRequest)
	}
	res := TestResult{PID: run.PID, Framework: fw, Summary: summary, Code: run.Status.Code}
	for _, tc := range cases {
		res.Tests = append(res.Tests, TestCase{TestCase: tc, URI: hostURI(mapper, tc.File)})
	}
	return res, nil
}

// testDefaults fills opts from customizations.berth.test ({framework,
// args}) and returns the framework, detected when it is "" or auto.
func testDefaults(inst session.Ready, opts *TestOptions) (string, error) {
	if cfg := inst.Config; cfg != nil {
		if f, ok := cfg.Berth.Test["framework"].(string); ok && opts.Framework == "" {
			opts.Framework = f
		}
		if opts.Args == nil {
			opts.Args = stringList(cfg.Berth.Test["args"])
		}
	}
	fw := opts.Framework
	if fw == "" || fw == "auto" {
		return DetectFramework(opts.Workspace)
	}
	return fw, nil
}

// DiscoveredTest is a discovered test node with its location on the host.
type DiscoveredTest struct {
	tools.DiscoveredTest
	URI string // host file URI of its source, "" if unknown
}

// Discovery is the outcome of Discover.
type Discovery struct {
	Framework string
	Tests     []DiscoveredTest
}

// Discover lists the workspace's tests without running them: pytest's
// collection, or go test -list with each test's line found by grep. Args
// (customizations.berth.test's by default) go to pytest only: go test's
// are run flags. Files narrow it as for Test.
func Discover(ctx context.Context, c Session, opts TestOptions) (Discovery, error) {
	inst, err := c.Ready(ctx, opts.Workspace, opts.Image)
	if err != nil {
		return Discovery{}, err
	}
	fw, err := testDefaults(inst, &opts)
	if err != nil {
		return Discovery{}, err
	}
	files, err := mapFiles(inst.Mapper, opts.Files)
	if err != nil {
		return Discovery{}, err
	}
	exec := session.ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Kind: "test", Cwd: inst.Workdir, Internal: true}
	var nodes []tools.DiscoveredTest
	switch fw {
	case "pytest":
		exec.Argv = tools.PytestCollectArgv(opts.Args, files)
		res, err := c.Run(ctx, exec, 0)
		if err != nil {
			return Discovery{}, err
		}
		if nodes, err = tools.ParsePytestCollect([]byte(res.Stdout)); err != nil {
			return Discovery{}, err
		}
		// 5 is pytest's "no tests collected".
		if len(nodes) == 0 && res.Status.Code != 0 && res.Status.Code != 5 {
			return Discovery{}, fmt.Errorf("pytest --collect-only exited %d (is pytest installed in the container?): %s", res.Status.Code, lastLines(res.Stdout+res.Stderr))
		}
	case "go":
		dirs, err := goPackageDirs(ctx, c, exec)
		if err != nil {
			return Discovery{}, err
		}
		exec.Argv = tools.GoListArgv(files)
		res, err := c.Run(ctx, exec, 0)
		if err != nil {
			return Discovery{}, err
		}
		var funcs map[string]tools.FuncLoc
		if len(dirs) > 0 {
			list := make([]string, 0, len(dirs))
			for _, d := range dirs {
				list = append(list, d)
			}
			exec.Argv = tools.GoFuncsArgv(list)
			if g, err := c.Run(ctx, exec, 30*time.Second); err == nil {
				funcs = tools.ParseGoFuncs([]byte(g.Stdout), dirs)
			}
		}
		if nodes, err = tools.ParseGoList([]byte(res.Stdout+res.Stderr), funcs); err != nil {
			return Discovery{}, err
		}
	default:
		return Discovery{}, fmt.Errorf("framework: unknown %q (use pytest, go or auto): %w", fw, ErrBadRequest)
	}
	out := Discovery{Framework: fw, Tests: []DiscoveredTest{}}
	for _, n := range nodes {
		out.Tests = append(out.Tests, DiscoveredTest{DiscoveredTest: n, URI: hostURI(inst.Mapper, n.File)})
	}
	return out, nil
}

// lastLines keeps the end of a tool's output for an error message.
func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// cleanup removes a report file; failing to is harmless.
func cleanup(c Session, opts TestOptions, p string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.Run(ctx, session.ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Argv: []string{"rm", "-f", p}, Kind: "test", Internal: true}, 0)
}

// goPackageDirs asks go list where each package lives, for test locations.
func goPackageDirs(ctx context.Context, c Session, exec session.ExecOptions) (map[string]string, error) {
	exec.Argv = []string{"go", "list", "-f", "{{.ImportPath}}\t{{.Dir}}", "./..."}
	exec.Internal = true
	res, err := c.Run(ctx, exec, 0)
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if ip, dir, ok := strings.Cut(line, "\t"); ok {
			dirs[ip] = dir
		}
	}
	return dirs, nil
}

// goTestOutput turns go test -json's stream into the text a person would
// have seen, line by line.
func goTestOutput() func(string) string {
	var pending string
	return func(chunk string) string {
		pending += chunk
		var b strings.Builder
		for {
			i := strings.IndexByte(pending, '\n')
			if i < 0 {
				break
			}
			line := pending[:i]
			pending = pending[i+1:]
			if out, ok := goOutputField(line); ok {
				b.WriteString(out)
			} else if !strings.HasPrefix(line, "{") {
				b.WriteString(line + "\n")
			}
		}
		return b.String()
	}
}

// goOutputField extracts the Output field of a go test -json event.
func goOutputField(line string) (string, bool) {
	var ev struct {
		Output *string
	}
	if json.Unmarshal([]byte(line), &ev) != nil || ev.Output == nil {
		return "", false
	}
	return *ev.Output, true
}

// LintOptions are the parameters of Lint.
type LintOptions struct {
	Workspace string
	Image     string
	Linter    string   // pyflakes, go vet, custom
	Command   []string // custom linter argv
	Format    string   // errorformat pattern, json or sarif; presets have their own
	Files     []string // host paths to lint; empty means the linter's default
}

// LintResult is the outcome of Lint: diagnostics by host file URI.
type LintResult struct {
	PID         string
	Code        int
	Source      string
	Diagnostics map[string][]tools.Diagnostic // by host file URI
	Unmapped    int                           // diagnostics in files no mount covers
	Files       []string                      // host URIs of the files linted, when named
}

// Lint runs a linter in the instance and returns its diagnostics at host
// locations.
func Lint(ctx context.Context, c Session, opts LintOptions) (LintResult, error) {
	inst, err := c.Ready(ctx, opts.Workspace, opts.Image)
	if err != nil {
		return LintResult{}, err
	}
	mapper := inst.Mapper
	files, err := mapFiles(mapper, opts.Files)
	if err != nil {
		return LintResult{}, err
	}
	if cfg := inst.Config; cfg != nil && opts.Linter == "" && opts.Command == nil {
		// customizations.berth.lint gives defaults: {linter, command, format}.
		if l, ok := cfg.Berth.Lint["linter"].(string); ok {
			opts.Linter = l
		}
		if cmd := stringList(cfg.Berth.Lint["command"]); cmd != nil {
			opts.Command = cmd
		}
		if f, ok := cfg.Berth.Lint["format"].(string); ok && opts.Format == "" {
			opts.Format = f
		}
	}
	linter := opts.Linter
	if linter == "" {
		linter = "pyflakes"
	}
	var lt tools.Linter
	switch {
	case linter == "custom" || len(opts.Command) > 0:
		if len(opts.Command) == 0 {
			return LintResult{}, fmt.Errorf("command: a custom linter needs a command: %w", ErrBadRequest)
		}
		if opts.Format == "" {
			return LintResult{}, fmt.Errorf("format: a custom linter needs a format (an errorformat pattern, json or sarif): %w", ErrBadRequest)
		}
		name := path.Base(opts.Command[0])
		lt = tools.Linter{Name: name, Argv: append(append([]string(nil), opts.Command...), files...), Format: opts.Format, Severity: tools.SeverityWarning}
	default:
		var ok bool
		if lt, ok = tools.Preset(linter, files); !ok {
			return LintResult{}, fmt.Errorf("linter: unknown %q (use pyflakes, go vet or custom): %w", linter, ErrBadRequest)
		}
		if opts.Format != "" {
			lt.Format = opts.Format
		}
	}
	if lt.Format != "json" && lt.Format != "sarif" {
		if _, err := tools.CompileErrorformat(lt.Format); err != nil {
			return LintResult{}, fmt.Errorf("format: %w", err)
		}
	}
	run, err := c.RunWork(ctx, session.ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Argv: lt.Argv, Kind: "lint", Cwd: inst.Workdir}, nil)
	if err != nil {
		return LintResult{}, err
	}
	out := run.Stdout
	if lt.Format != "json" && lt.Format != "sarif" {
		out = append(append(out, '\n'), run.Stderr...)
	}
	diags, err := tools.ParseLint(lt.Format, out, inst.Workdir, lt.Name, lt.Severity)
	if err != nil {
		return LintResult{}, err
	}
	res := LintResult{PID: run.PID, Code: run.Status.Code, Source: lt.Name, Diagnostics: map[string][]tools.Diagnostic{}}
	for _, d := range diags {
		uri := hostURI(mapper, d.File)
		if uri == "" {
			res.Unmapped++
			continue
		}
		res.Diagnostics[uri] = append(res.Diagnostics[uri], d)
	}
	for _, f := range files {
		if uri := hostURI(mapper, f); uri != "" {
			res.Files = append(res.Files, uri)
		}
	}
	return res, nil
}

// InspectPath is an interpreter path as an editor needs it.
type InspectPath struct {
	Path          string // host path when a mount covers it, else container path
	ContainerOnly bool
}

// Inspection describes a language's interpreter in the instance.
type Inspection struct {
	Executable string // container path
	Version    string
	Paths      []InspectPath
}

// Inspect reports a language's interpreter: its executable, version and
// search paths, with container-only paths marked.
func Inspect(ctx context.Context, c Session, ws, image, language string) (Inspection, error) {
	var argv []string
	var parse func([]byte) (tools.Interpreter, error)
	switch language {
	case "python":
		argv, parse = tools.PythonInspectArgv(), tools.ParsePythonInspect
	case "go":
		argv, parse = tools.GoInspectArgv(), tools.ParseGoInspect
	default:
		return Inspection{}, fmt.Errorf("language: unknown %q (use python or go): %w", language, ErrBadRequest)
	}
	inst, err := c.Ready(ctx, ws, image)
	if err != nil {
		return Inspection{}, err
	}
	mapper := inst.Mapper
	res, err := c.Run(ctx, session.ExecOptions{Workspace: ws, Image: image, Argv: argv, Kind: "run", Internal: true}, 30*time.Second)
	if err != nil {
		return Inspection{}, err
	}
	if res.Status.Code != 0 {
		return Inspection{}, fmt.Errorf("%s: exit %d: %s", argv[0], res.Status.Code, strings.TrimSpace(res.Stderr))
	}
	in, err := parse([]byte(res.Stdout))
	if err != nil {
		return Inspection{}, err
	}
	out := Inspection{Executable: in.Executable, Version: in.Version}
	for _, p := range in.Paths {
		if p == "" {
			continue
		}
		if h, ok := mapper.ToHost(p); ok {
			out.Paths = append(out.Paths, InspectPath{Path: h})
		} else {
			out.Paths = append(out.Paths, InspectPath{Path: p, ContainerOnly: true})
		}
	}
	return out, nil
}

// DebugOptions are the parameters of Debug.
type DebugOptions struct {
	Workspace   string
	Image       string
	Adapter     string
	Program     string // host or container path
	Module      string
	Args        []string
	Cwd         string
	Env         map[string]string
	JustMyCode  bool
	Command     []string
	Port        int      // container port; 0 picks one
	ConnectBack int      // host port of a debug server the debuggee connects to; 0 for none
	Test        bool     // debug tests: pytest under debugpy, dlv test
	Tests       []string // test ids, as Test takes them
}

// DebugSession is a running debug server (or connect-back debuggee).
type DebugSession struct {
	Process       *session.Process
	Host          string // host side of the forward tunnel
	Port          int
	TunnelID      string
	Attach        map[string]any
	ContainerHost string // connect-back: where the debuggee connects in the container
	ContainerPort int
}

// debugReady bounds the wait for a debug server to listen. dlv debug and
// dlv test compile first, which on a cold build cache and a busy machine
// takes well over 30 s; a server that exits ends the wait sooner.
const debugReady = 2 * time.Minute

// Debug starts a debug server in the instance listening on its loopback,
// waits until it really listens, and opens a host tunnel to it. The tunnel
// closes when the debuggee exits. With ConnectBack, the debuggee instead
// connects out through a reverse tunnel to a debug server on the host.
func Debug(ctx context.Context, c Session, opts DebugOptions) (*DebugSession, error) {
	inst, err := c.Ready(ctx, opts.Workspace, opts.Image)
	if err != nil {
		return nil, err
	}
	if err := c.NeedAgent(ctx, inst); err != nil {
		return nil, fmt.Errorf("debug: %w", err)
	}
	mapper := inst.Mapper
	req := tools.DebugRequest{Adapter: opts.Adapter, Module: opts.Module, Args: opts.Args, Command: opts.Command, Port: opts.Port, Test: opts.Test, Tests: opts.Tests}
	if opts.Program != "" {
		progs, err := mapFiles(mapper, []string{opts.Program})
		if err != nil {
			return nil, fmt.Errorf("program: %w", err)
		}
		req.Program = progs[0]
	}
	cwd := inst.Cwd(opts.Cwd)
	sess := &DebugSession{}
	var reverseID string
	if opts.ConnectBack > 0 {
		rev, err := c.Reverse(ctx, opts.Workspace, opts.Image, opts.ConnectBack, 0)
		if err != nil {
			return nil, err
		}
		reverseID = rev.ID
		sess.ContainerHost, sess.ContainerPort, sess.TunnelID = rev.ContainerHost, rev.ContainerPort, rev.ID
		req.ConnectBack = net.JoinHostPort(rev.ContainerHost, strconv.Itoa(rev.ContainerPort))
	} else if req.Port == 0 {
		if req.Port, err = freePort(ctx, c, opts); err != nil {
			return nil, err
		}
	}
	argv, err := tools.DebugServerArgv(req)
	if err != nil {
		if reverseID != "" {
			_ = c.CloseTunnel(reverseID)
		}
		return nil, err
	}
	env := map[string]string{}
	for k, v := range opts.Env {
		env[k] = v
	}
	if sess.ContainerPort > 0 {
		env["BERTH_DEBUG_HOST"], env["BERTH_DEBUG_PORT"] = sess.ContainerHost, strconv.Itoa(sess.ContainerPort)
	}
	p, err := c.Exec(ctx, session.ExecOptions{
		Workspace: opts.Workspace, Image: opts.Image, Argv: argv, Cwd: cwd, Env: env, Kind: "debug", MapPaths: true,
	})
	if err != nil {
		if reverseID != "" {
			_ = c.CloseTunnel(reverseID)
		}
		return nil, err
	}
	sess.Process = p
	fail := func(err error) (*DebugSession, error) {
		_ = p.Kill(context.WithoutCancel(ctx))
		p.Release()
		if sess.TunnelID != "" {
			_ = c.CloseTunnel(sess.TunnelID)
		}
		return nil, err
	}
	if req.ConnectBack == "" {
		if err := waitListening(ctx, c, opts, p, req.Port); err != nil {
			return fail(err)
		}
		fwd, err := c.Forward(ctx, opts.Workspace, opts.Image, "127.0.0.1", req.Port, 0)
		if err != nil {
			return fail(err)
		}
		sess.Host, sess.Port, sess.TunnelID = "127.0.0.1", fwd.HostPort, fwd.ID
		mappings := []tools.PathMapping{}
		for _, m := range session.UserMounts(session.MountsOf(inst.Instance.Instance)) {
			mappings = append(mappings, tools.PathMapping{Host: m.Host, Container: m.Container})
		}
		sess.Attach = tools.AttachConfig(req, sess.Host, sess.Port, mappings, cwd, opts.JustMyCode)
	}
	if sess.TunnelID != "" {
		if err := c.CloseTunnelOnExit(p, sess.TunnelID); err != nil {
			return fail(err)
		}
	}
	return sess, nil
}

// freePort picks a container loopback port nothing listens on.
func freePort(ctx context.Context, c Session, opts DebugOptions) (int, error) {
	used, err := listening(ctx, c, opts)
	if err != nil {
		return 0, err
	}
	for port := 5678; port < 5778; port++ {
		if !used[port] {
			return port, nil
		}
	}
	return 0, fmt.Errorf("port: no free port in 5678-5777 in the container; pass port: %w", ErrBadRequest)
}

// waitListening polls the container's TCP table until port listens, the
// process exits, or debugReady passes. Reading /proc/net/tcp* doesn't touch
// the server, unlike a probe connection, which a debug server waiting for
// its one client would take as that client.
func waitListening(ctx context.Context, c Session, opts DebugOptions, p *session.Process, port int) error {
	deadline := time.Now().Add(debugReady)
	for {
		used, err := listening(ctx, c, opts)
		if err != nil {
			return err
		}
		if used[port] {
			return nil
		}
		select {
		case <-p.Done():
			info := p.Info()
			return fmt.Errorf("debug server exited with code %d before listening on port %d; its output went to berth/output for %s", info.Status.Code, port, p.ID())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("debug server did not listen on 127.0.0.1:%d within %s", port, debugReady)
		}
	}
}

// listening returns the TCP ports listening in the instance.
func listening(ctx context.Context, c Session, opts DebugOptions) (map[int]bool, error) {
	res, err := c.Run(ctx, session.ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Argv: []string{"cat", "/proc/net/tcp", "/proc/net/tcp6"}, Kind: "debug", Internal: true}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return parseListening(res.Stdout), nil
}

// parseListening reads /proc/net/tcp{,6}: state 0A is LISTEN.
func parseListening(table string) map[int]bool {
	ports := map[int]bool{}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			ports[int(n)] = true
		}
	}
	return ports
}

// stringList reads a JSON array of strings from a config value, or nil.
func stringList(v any) []string {
	arr, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
