package rpc

import (
	"context"
	"encoding/json"
	"sort"

	"go.lsp.dev/protocol"
	"go.lsp.dev/uri"

	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/tools"
	"github.com/berthdev/berth/work"
)

// Wire types of the editor's work: tests, lint, inspection, debugging.

// TestParams are berth/test's params.
type TestParams struct {
	Workspace string   `json:"workspace,omitempty"`
	Framework string   `json:"framework,omitempty"` // pytest, go, auto (default)
	Args      []string `json:"args,omitempty"`
	Files     []string `json:"files,omitempty"` // host paths or file URIs
	Tests     []string `json:"tests,omitempty"` // test ids; replace files
}

// TestDiscoverParams are berth/testDiscover's params.
type TestDiscoverParams struct {
	Workspace string   `json:"workspace,omitempty"`
	Framework string   `json:"framework,omitempty"` // pytest, go, auto (default)
	Files     []string `json:"files,omitempty"`
}

// DiscoveredTest is one node of the discovered test tree.
type DiscoveredTest struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Kind     string    `json:"kind"` // file, class, test, package
	Parent   string    `json:"parent,omitempty"`
	Location *Location `json:"location,omitempty"`
}

// TestDiscoverResult answers berth/testDiscover.
type TestDiscoverResult struct {
	Framework string           `json:"framework"`
	Tests     []DiscoveredTest `json:"tests"`
}

// TestSummary counts a run's outcomes.
type TestSummary struct {
	Passed     int   `json:"passed"`
	Failed     int   `json:"failed"`
	Skipped    int   `json:"skipped"`
	Errors     int   `json:"errors"`
	DurationMs int64 `json:"durationMs"`
}

// Location is a host file URI and a 1-based line.
type Location struct {
	URI  string `json:"uri"`
	Line int    `json:"line"`
}

// TestInfo is one test's outcome.
type TestInfo struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"` // passed, failed, skipped, error
	DurationMs int64     `json:"durationMs"`
	Message    string    `json:"message,omitempty"`
	Location   *Location `json:"location,omitempty"`
}

// TestResult answers berth/test.
type TestResult struct {
	PID       string      `json:"pid"`
	Framework string      `json:"framework"`
	Code      int         `json:"code"`
	Summary   TestSummary `json:"summary"`
	Tests     []TestInfo  `json:"tests"`
}

// LintParams are berth/lint's params.
type LintParams struct {
	Workspace string   `json:"workspace,omitempty"`
	Linter    string   `json:"linter,omitempty"`  // pyflakes (default), go vet, custom
	Command   []string `json:"command,omitempty"` // custom linter argv
	Format    string   `json:"format,omitempty"`  // errorformat pattern, json or sarif
	Files     []string `json:"files,omitempty"`
}

// LintResult answers berth/lint; the diagnostics themselves go out as
// textDocument/publishDiagnostics.
type LintResult struct {
	PID         string `json:"pid"`
	Linter      string `json:"linter"`
	Code        int    `json:"code"`
	Files       int    `json:"files"`       // files with diagnostics
	Diagnostics int    `json:"diagnostics"` // all of them
	Errors      int    `json:"errors"`
	Warnings    int    `json:"warnings"`
	Cleared     int    `json:"cleared"`  // files sent an empty list: their problems are gone
	Unmapped    int    `json:"unmapped"` // diagnostics in container-only files, not published
}

// InspectParams are berth/inspect's params.
type InspectParams struct {
	Workspace string `json:"workspace,omitempty"`
	Language  string `json:"language"`
}

// InspectPath is an interpreter search path.
type InspectPath struct {
	Path          string `json:"path"`
	ContainerOnly bool   `json:"containerOnly,omitempty"`
}

// InspectResult answers berth/inspect.
type InspectResult struct {
	Executable string        `json:"executable"` // container path
	Version    string        `json:"version"`
	Paths      []InspectPath `json:"paths"`
}

// DebugParams are berth/debug's params.
type DebugParams struct {
	Workspace   string            `json:"workspace,omitempty"`
	Adapter     string            `json:"adapter"` // debugpy, delve, custom
	Program     string            `json:"program,omitempty"`
	Module      string            `json:"module,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Cwd         string            `json:"cwd,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	StopOnEntry bool              `json:"stopOnEntry,omitempty"`
	JustMyCode  *bool             `json:"justMyCode,omitempty"` // default true
	Command     []string          `json:"command,omitempty"`
	Port        int               `json:"port,omitempty"`
	ConnectBack *ConnectBack      `json:"connectBack,omitempty"`
	Test        bool              `json:"test,omitempty"`  // debug tests: pytest or dlv test
	Tests       []string          `json:"tests,omitempty"` // test ids, as berth/test takes them
}

// ConnectBack asks for the debuggee to connect out to a host debug server.
type ConnectBack struct {
	HostPort int `json:"hostPort"`
}

// DebugResult answers berth/debug.
type DebugResult struct {
	PID         string         `json:"pid"`
	Host        string         `json:"host,omitempty"`
	Port        int            `json:"port,omitempty"`
	TunnelID    string         `json:"tunnelId"`
	Attach      map[string]any `json:"attach,omitempty"`
	ConnectBack *ConnectedBack `json:"connectBack,omitempty"`
}

// ConnectedBack says where, inside the container, the debuggee reaches the
// host's debug server.
type ConnectedBack struct {
	ContainerHost string `json:"containerHost"`
	ContainerPort int    `json:"containerPort"`
}

// checkFramework validates berth/test's and berth/testDiscover's framework.
func checkFramework(f string) error {
	switch f {
	case "", "auto", "pytest", "go":
		return nil
	}
	return badParam("framework", "must be pytest, go or auto; got %q", f)
}

func test(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p TestParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if err := checkFramework(p.Framework); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	if len(p.Tests) > 0 && len(p.Files) > 0 {
		return nil, badParam("tests", "replaces files: give one of them")
	}
	_, client, image := c.session()
	res, err := work.Test(c.progressCtx(ctx), client, work.TestOptions{Workspace: ws, Image: image, Framework: p.Framework, Args: p.Args, Files: p.Files, Tests: p.Tests})
	if err != nil {
		return nil, err
	}
	out := TestResult{
		PID: res.PID, Framework: res.Framework, Code: res.Code,
		Summary: TestSummary{Passed: res.Summary.Passed, Failed: res.Summary.Failed, Skipped: res.Summary.Skipped, Errors: res.Summary.Errors, DurationMs: res.Summary.DurationMs},
		Tests:   []TestInfo{},
	}
	for _, t := range res.Tests {
		ti := TestInfo{ID: t.ID, Name: t.Name, Status: string(t.Status), DurationMs: t.DurationMs, Message: t.Message}
		if t.URI != "" {
			ti.Location = &Location{URI: t.URI, Line: max(t.Line, 1)}
		}
		out.Tests = append(out.Tests, ti)
	}
	return out, nil
}

func testDiscover(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p TestDiscoverParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if err := checkFramework(p.Framework); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	d, err := work.Discover(c.progressCtx(ctx), client, work.TestOptions{Workspace: ws, Image: image, Framework: p.Framework, Files: p.Files})
	if err != nil {
		return nil, err
	}
	out := TestDiscoverResult{Framework: d.Framework, Tests: []DiscoveredTest{}}
	for _, t := range d.Tests {
		dt := DiscoveredTest{ID: t.ID, Name: t.Name, Kind: t.Kind, Parent: t.Parent}
		if t.URI != "" {
			dt.Location = &Location{URI: t.URI, Line: max(t.Line, 1)}
		}
		out.Tests = append(out.Tests, dt)
	}
	return out, nil
}

func lint(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p LintParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	switch p.Linter {
	case "", "pyflakes", "go vet", "custom":
	default:
		return nil, badParam("linter", "must be pyflakes, go vet or custom; got %q", p.Linter)
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	res, err := work.Lint(c.progressCtx(ctx), client, work.LintOptions{
		Workspace: ws, Image: image, Linter: p.Linter, Command: p.Command, Format: p.Format, Files: p.Files,
	})
	if err != nil {
		return nil, err
	}
	out := LintResult{PID: res.PID, Linter: res.Source, Code: res.Code, Files: len(res.Diagnostics), Unmapped: res.Unmapped}
	for _, ds := range res.Diagnostics {
		for _, d := range ds {
			out.Diagnostics++
			switch d.Severity {
			case tools.SeverityError:
				out.Errors++
			case tools.SeverityWarning:
				out.Warnings++
			}
		}
	}
	out.Cleared = c.publish(ws, res)
	return out, nil
}

// publish sends textDocument/publishDiagnostics for every file with
// problems, and an empty list for each file whose problems from this linter
// are gone. It returns how many files it cleared.
func (c *conn) publish(ws string, res work.LintResult) int {
	key := ws + "\x00" + res.Source
	c.mu.Lock()
	if c.published == nil {
		c.published = map[string]map[string]bool{}
	}
	before := c.published[key]
	now := map[string]bool{}
	for u := range res.Diagnostics {
		now[u] = true
	}
	var clear []string
	named := map[string]bool{}
	for _, f := range res.Files {
		named[f] = true
	}
	for u := range before {
		if now[u] {
			continue
		}
		if len(res.Files) > 0 && !named[u] {
			now[u] = true // not linted this time: its problems stand
			continue
		}
		clear = append(clear, u)
	}
	for u := range named {
		if !now[u] && !before[u] {
			clear = append(clear, u) // linted clean: say so
		}
	}
	c.published[key] = now
	c.mu.Unlock()

	uris := make([]string, 0, len(res.Diagnostics))
	for u := range res.Diagnostics {
		uris = append(uris, u)
	}
	sort.Strings(uris)
	sort.Strings(clear)
	for _, u := range uris {
		c.notify("textDocument/publishDiagnostics", protocol.PublishDiagnosticsParams{URI: uri.URI(u), Diagnostics: toLSP(res.Diagnostics[u])})
	}
	for _, u := range clear {
		c.notify("textDocument/publishDiagnostics", protocol.PublishDiagnosticsParams{URI: uri.URI(u), Diagnostics: []protocol.Diagnostic{}})
	}
	return len(clear)
}

func toLSP(ds []tools.Diagnostic) []protocol.Diagnostic {
	out := make([]protocol.Diagnostic, 0, len(ds))
	for _, d := range ds {
		start := protocol.Position{Line: zeroBased(d.Line), Character: zeroBased(d.Column)}
		end := start
		if d.EndLine > 0 {
			end = protocol.Position{Line: zeroBased(d.EndLine), Character: zeroBased(d.EndColumn)}
		}
		ld := protocol.Diagnostic{
			Range:    protocol.Range{Start: start, End: end},
			Severity: protocol.DiagnosticSeverity(d.Severity),
			Source:   d.Source,
			Message:  d.Message,
		}
		if d.Code != "" {
			ld.Code = d.Code
		}
		out = append(out, ld)
	}
	return out
}

func zeroBased(n int) uint32 {
	if n <= 1 {
		return 0
	}
	return uint32(n - 1)
}

func inspect(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p InspectParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.Language != "python" && p.Language != "go" {
		return nil, badParam("language", "must be python or go; got %q", p.Language)
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	in, err := work.Inspect(c.progressCtx(ctx), client, ws, image, p.Language)
	if err != nil {
		return nil, err
	}
	out := InspectResult{Executable: in.Executable, Version: in.Version, Paths: []InspectPath{}}
	for _, ip := range in.Paths {
		out.Paths = append(out.Paths, InspectPath{Path: ip.Path, ContainerOnly: ip.ContainerOnly})
	}
	return out, nil
}

// debugReply releases the debug server's output once the client has the
// reply that names its pid.
type debugReply struct {
	res  DebugResult
	proc *session.Process
}

func (r debugReply) result() any { return r.res }
func (r debugReply) afterReply() { r.proc.Release() }

func debug(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p DebugParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	switch p.Adapter {
	case "debugpy", "delve", "custom":
	case "":
		return nil, badParam("adapter", "required: debugpy, delve or custom")
	default:
		return nil, badParam("adapter", "must be debugpy, delve or custom; got %q", p.Adapter)
	}
	if err := validPort("port", p.Port, true); err != nil {
		return nil, err
	}
	opts := work.DebugOptions{
		Adapter: p.Adapter, Program: p.Program, Module: p.Module, Args: p.Args, Cwd: p.Cwd, Env: p.Env,
		JustMyCode: p.JustMyCode == nil || *p.JustMyCode, Command: p.Command, Port: p.Port,
		Test: p.Test, Tests: p.Tests,
	}
	if len(p.Tests) > 0 && !p.Test {
		return nil, badParam("tests", "needs test: true")
	}
	if p.Test && p.Adapter == "custom" {
		return nil, badParam("adapter", "test: true needs debugpy or delve")
	}
	if p.ConnectBack != nil {
		if err := validPort("connectBack.hostPort", p.ConnectBack.HostPort, false); err != nil {
			return nil, err
		}
		opts.ConnectBack = p.ConnectBack.HostPort
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	opts.Workspace, opts.Image = ws, image
	s, err := work.Debug(c.progressCtx(ctx), client, opts)
	if err != nil {
		return nil, err
	}
	res := DebugResult{PID: s.Process.ID(), Host: s.Host, Port: s.Port, TunnelID: s.TunnelID, Attach: s.Attach}
	if s.ContainerPort > 0 {
		res.ConnectBack = &ConnectedBack{ContainerHost: s.ContainerHost, ContainerPort: s.ContainerPort}
	}
	if p.StopOnEntry && res.Attach != nil {
		res.Attach["stopOnEntry"] = true
	}
	return debugReply{res: res, proc: s.Process}, nil
}
