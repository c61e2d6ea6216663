package tools

import (
	"encoding/json"
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// GoTestArgv returns the argv of "go test -json", testing ./... when pkgs is
// empty.
func GoTestArgv(args, pkgs []string) []string {
	argv := append([]string{"go", "test", "-json"}, args...)
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	return append(argv, pkgs...)
}

// goEvent is one line of test2json output; ImportPath and FailedBuild come
// from Go 1.24 on, which reports build failures as events too.
type goEvent struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

type goPkg struct {
	path        string
	result      string // the package's own pass, fail or skip; "" if none came
	elapsed     float64
	output      strings.Builder // package-level output, not any test's
	build       []string        // plain-text lines under a "# pkg" header
	failedBuild string
	tests       map[string]*goTest
	order       []string
}

type goTest struct {
	result  string
	elapsed float64
	output  strings.Builder
}

type goParser struct {
	pkgs     map[string]*goPkg
	order    []string
	buildOut map[string][]string // build-output events, by pkgKey
	events   int
}

var (
	// Before Go 1.24 a build failure was only this plain line on stdout.
	reGoBuildFailed = lazyRegexp(`^FAIL\s+(\S+)\s+\[(?:build|setup) failed\]`)
	// t.Error and t.Log prefix: "    calc_test.go:12: got 3, want 4".
	reGoTestLoc = lazyRegexp(`^\s*([^\s:]+\.go):(\d+): `)
	// A stack frame of a panic or timeout: "\t/w/calc/calc_test.go:7 +0x28".
	reGoFrame = lazyRegexp(`^\t(/\S+\.go):(\d+)(?: \+0x[0-9a-f]+)?$`)
	// The header of each goroutine in a dump: "goroutine 7 [running]:".
	reGoroutine = lazyRegexp(`^goroutine \d+ \[`)
	// A compiler or vet error: "calc/calc.go:3:23: undefined: x".
	reGoBuildLoc = lazyRegexp(`^(?:vet: )?([^\s:]+\.go):(\d+)(?::\d+)?: `)
)

// ParseGoTest parses "go test -json" output. pkgDirs maps import paths to
// the packages' absolute container directories (from "go list"); test output
// names files relative to them.
//
// Subtests are cases of their own, and a test that failed only through them
// says which. A failed or skipped test takes its line from the first
// "file.go:N:" it logged, else from the first stack frame in its package's
// directory (panics, timeouts); a panic's message stops before the goroutine
// dump. A test left running when its package failed (a timeout) is Failed.
// A package that failed with no failing test, such as one that did not
// build, is one Errored case named after the package, carrying the compiler
// output: the build-output events of Go 1.24 on, or the plain-text lines
// under a "# pkg" header of earlier versions. Other plain-text lines are
// ignored.
//
// Output with no test2json event at all returns an error wrapping
// ErrBadReport, since go test then failed before testing anything.
func ParseGoTest(data []byte, pkgDirs map[string]string) (Summary, []TestCase, error) {
	p := goParser{pkgs: map[string]*goPkg{}, buildOut: map[string][]string{}}
	header := "" // package named by the last plain-text "# pkg" line
	firstPlain := ""
	for _, line := range splitLines(data) {
		if ev, ok := parseGoEvent(line); ok {
			p.event(ev)
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if firstPlain == "" {
			firstPlain = line
		}
		if h, ok := strings.CutPrefix(line, "# "); ok {
			if header = pkgKey(h); header != "" {
				p.pkg(header)
			}
			continue
		}
		if m := reGoBuildFailed().FindStringSubmatch(line); m != nil {
			pk := p.pkg(m[1])
			if pk.result == "" {
				pk.result = "fail"
			}
			pk.output.WriteString(line + "\n")
			continue
		}
		if header != "" {
			pk := p.pkg(header)
			pk.build = append(pk.build, line)
		}
	}

	var cases []TestCase
	var pkgMs, topMs int64
	for _, key := range p.order {
		pk := p.pkgs[key]
		dir := pkgDirs[pk.path]
		failing := false
		start := len(cases)
		for _, name := range pk.order {
			tc := goCase(pk, name, dir)
			if tc.Status == Failed || tc.Status == Errored {
				failing = true
			}
			if !strings.Contains(name, "/") {
				topMs += tc.DurationMs
			}
			cases = append(cases, tc)
		}
		noteSubtests(cases[start:])
		if pk.result != "" {
			pkgMs += millis(pk.elapsed)
		}
		if !failing && (pk.result == "fail" || pk.result == "" && len(pk.build) > 0) {
			cases = append(cases, p.packageCase(pk, pkgDirs))
		}
	}
	if p.events == 0 && len(cases) == 0 {
		if len(firstPlain) > 200 {
			firstPlain = firstPlain[:200]
		}
		return Summary{}, nil, fmt.Errorf("go test: %w: no test events in output: %q", ErrBadReport, firstPlain)
	}
	s := Summary{DurationMs: pkgMs}
	if pkgMs == 0 {
		s.DurationMs = topMs
	}
	return count(s, cases), cases, nil
}

func parseGoEvent(line string) (goEvent, bool) {
	var ev goEvent
	if !strings.HasPrefix(strings.TrimSpace(line), "{") {
		return ev, false
	}
	if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Action == "" {
		return ev, false
	}
	return ev, true
}

func (p *goParser) pkg(importPath string) *goPkg {
	if pk, ok := p.pkgs[importPath]; ok {
		return pk
	}
	pk := &goPkg{path: importPath, tests: map[string]*goTest{}}
	p.pkgs[importPath] = pk
	p.order = append(p.order, importPath)
	return pk
}

func (p *goParser) event(ev goEvent) {
	p.events++
	if ev.Action == "build-output" {
		k := pkgKey(ev.ImportPath)
		for _, l := range strings.Split(strings.TrimRight(ev.Output, "\n"), "\n") {
			if l != "" && !strings.HasPrefix(l, "# ") {
				p.buildOut[k] = append(p.buildOut[k], l)
			}
		}
		return
	}
	if ev.Package == "" {
		return
	}
	pk := p.pkg(ev.Package)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			pk.output.WriteString(ev.Output)
		case "pass", "fail", "skip":
			pk.result, pk.elapsed = ev.Action, ev.Elapsed
			if ev.FailedBuild != "" {
				pk.failedBuild = ev.FailedBuild
			}
		}
		return
	}
	t, ok := pk.tests[ev.Test]
	if !ok {
		t = &goTest{}
		pk.tests[ev.Test] = t
		pk.order = append(pk.order, ev.Test)
	}
	switch ev.Action {
	case "output":
		t.output.WriteString(ev.Output)
	case "pass", "fail", "skip":
		t.result, t.elapsed = ev.Action, ev.Elapsed
	}
}

func goCase(pk *goPkg, name, dir string) TestCase {
	t := pk.tests[name]
	tc := TestCase{ID: pk.path + "." + name, Name: name, DurationMs: millis(t.elapsed)}
	switch t.result {
	case "pass":
		tc.Status = Passed
		return tc
	case "fail":
		tc.Status = Failed
	case "skip":
		tc.Status = Skipped
	case "":
		// Still running when the stream ended: a timeout if the package
		// failed, else the output was cut short.
		tc.Status = Errored
		if pk.result == "fail" {
			tc.Status = Failed
		}
	}
	lines := testOutput(t.output.String())
	msg := dedent(lines)
	for i, l := range msg {
		// A panic's goroutine dump is for the log, not the message.
		if reGoroutine().MatchString(l) {
			msg = msg[:i]
			break
		}
	}
	tc.Message = firstLines(strings.Join(msg, "\n"))
	if tc.Message == "" && t.result == "" {
		tc.Message = "no result reported"
	}
	tc.File, tc.Line = goFailLine(lines, dir)
	return tc
}

// noteSubtests gives a test that failed only through its subtests a message
// naming them.
func noteSubtests(cases []TestCase) {
	for i := range cases {
		c := &cases[i]
		if c.Status != Failed || c.Message != "" {
			continue
		}
		var failed []string
		for _, sub := range cases[i+1:] {
			if strings.HasPrefix(sub.Name, c.Name+"/") && (sub.Status == Failed || sub.Status == Errored) {
				failed = append(failed, sub.Name)
			}
		}
		if len(failed) > 0 {
			c.Message = firstLines("failed subtests: " + strings.Join(failed, ", "))
		}
	}
}

// testOutput drops the lines the testing package adds around a test's own.
func testOutput(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- FAIL:") ||
			strings.HasPrefix(t, "--- PASS:") || strings.HasPrefix(t, "--- SKIP:") {
			continue
		}
		lines = append(lines, strings.TrimRight(l, "\r"))
	}
	return lines
}

// dedent removes the indentation every non-blank line shares.
func dedent(lines []string) []string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out[i] = l
	}
	return out
}

func goFailLine(lines []string, dir string) (string, int) {
	for _, l := range lines {
		m := reGoTestLoc().FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, ok := lineNumber(m[2])
		if !ok {
			continue
		}
		if path.IsAbs(m[1]) {
			return path.Clean(m[1]), n
		}
		if dir != "" {
			return path.Join(dir, m[1]), n
		}
	}
	if dir == "" {
		return "", 0
	}
	for _, l := range lines {
		m := reGoFrame().FindStringSubmatch(l)
		if m == nil || path.Dir(path.Clean(m[1])) != path.Clean(dir) {
			continue
		}
		if n, ok := lineNumber(m[2]); ok {
			return path.Clean(m[1]), n
		}
	}
	return "", 0
}

// packageCase is the Errored case standing for a package that failed with
// no failing test.
func (p *goParser) packageCase(pk *goPkg, pkgDirs map[string]string) TestCase {
	tc := TestCase{ID: pk.path, Name: pk.path, Status: Errored, DurationMs: millis(pk.elapsed)}
	lines := append([]string(nil), pk.build...)
	lines = append(lines, p.buildOut[pk.path]...)
	if fb := pkgKey(pk.failedBuild); fb != "" && fb != pk.path {
		lines = append(lines, p.buildOut[fb]...)
	}
	var fails []string
	if len(lines) == 0 {
		for _, l := range strings.Split(pk.output.String(), "\n") {
			t := strings.TrimSpace(l)
			switch {
			case t == "" || t == "PASS" || t == "FAIL" || strings.HasPrefix(t, "ok "):
			case strings.HasPrefix(t, "FAIL\t") || strings.HasPrefix(t, "FAIL "):
				fails = append(fails, t)
			default:
				lines = append(lines, strings.TrimRight(l, "\r"))
			}
		}
	}
	if len(lines) == 0 {
		lines = fails
	}
	tc.Message = firstLines(strings.Join(lines, "\n"))
	if tc.Message == "" {
		tc.Message = "package failed"
	}
	for _, l := range lines {
		m := reGoBuildLoc().FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, ok := lineNumber(m[2])
		if !ok {
			continue
		}
		if f := buildFile(m[1], pkgDirs[pk.path], pkgDirs); f != "" {
			tc.File, tc.Line = f, n
			break
		}
	}
	return tc
}

// buildFile resolves a compiler error's path, which is relative to where go
// ran, not to the package: it picks the package directory ending in the
// path's directory, trying the failing package's own first.
func buildFile(rel, own string, pkgDirs map[string]string) string {
	if path.IsAbs(rel) {
		return path.Clean(rel)
	}
	rel = path.Clean(rel)
	d, base := path.Dir(rel), path.Base(rel)
	if d == "." {
		if own == "" {
			return ""
		}
		return path.Join(own, base)
	}
	dirs := make([]string, 0, len(pkgDirs)+1)
	if own != "" {
		dirs = append(dirs, own)
	}
	rest := make([]string, 0, len(pkgDirs))
	for _, dir := range pkgDirs {
		rest = append(rest, dir)
	}
	sort.Strings(rest)
	for _, dir := range append(dirs, rest...) {
		dir = path.Clean(dir)
		if dir == d || strings.HasSuffix(dir, "/"+d) {
			return path.Join(dir, base)
		}
	}
	return ""
}

// pkgKey names the package a build line is about: "p [p.test]" and
// "p_test [p.test]" are both p's test build, and vet writes "[p]".
func pkgKey(s string) string {
	s = strings.TrimSpace(s)
	name, inner, ok := strings.Cut(s, "[")
	if !ok {
		return s
	}
	name = strings.TrimSpace(name)
	inner = strings.TrimSuffix(strings.TrimSpace(inner), "]")
	if t, ok := strings.CutSuffix(inner, ".test"); ok {
		return t
	}
	if name == "" {
		return inner
	}
	return name
}

func lineNumber(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 || n >= math.MaxInt32 {
		return 0, false
	}
	return n, true
}

// lazyRegexp compiles expr on first use: a regexp compiled at start-up
// costs every berth process, `berth exec` from a shell included.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
