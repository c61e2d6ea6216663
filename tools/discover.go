package tools

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// The kinds of a discovered test node.
const (
	KindPackage = "package" // a Go package
	KindFile    = "file"    // a pytest module
	KindClass   = "class"   // a pytest class
	KindTest    = "test"    // a test function, or one parametrized case
)

// DiscoveredTest is one node of a discovered test tree. IDs are those a run
// reports (TestCase.ID) and a run can be restricted to.
type DiscoveredTest struct {
	ID     string
	Name   string
	Kind   string
	Parent string // the enclosing node's ID; "" at the top
	// File is the absolute container path of the node's source ("" if
	// unknown); a Go package has none.
	File string
	Line int // 1-based; 0 if unknown
}

// collectMarker starts each line the collection plugin prints.
const collectMarker = "berth-collect\t"

// pytestCollect runs pytest with a plugin that prints, for every collected
// item, the modules, classes and the item itself on its chain: kind, node id,
// path and 0-based line (-1 if unknown). Module and Class have been in
// _pytest.python since pytest 3; item.path arrived in 7, fspath before it.
const pytestCollect = `import sys, pytest
from _pytest.python import Class, Module
class BerthCollect:
    def pytest_collection_finish(self, session):
        seen = set()
        for item in session.items:
            for node in item.listchain():
                if node.nodeid in seen:
                    continue
                if node is item:
                    kind = "test"
                elif isinstance(node, Class):
                    kind = "class"
                elif isinstance(node, Module):
                    kind = "file"
                else:
                    continue
                seen.add(node.nodeid)
                line = -1
                try:
                    line = item.location[1] if kind == "test" else (node.reportinfo()[1] if kind == "class" else 0)
                except Exception:
                    pass
                p = getattr(node, "path", None) or node.fspath
                print("berth-collect\t%s\t%s\t%s\t%s" % (kind, node.nodeid, p, -1 if line is None else line), flush=True)
sys.exit(pytest.main(sys.argv[1:], plugins=[BerthCollect()]))
`

// PytestCollectArgv returns the argv that lists pytest's tests without
// running them: "--collect-only -q" with a plugin that adds kinds and
// locations. The cache is left alone: listing writes nothing.
func PytestCollectArgv(args, files []string) []string {
	argv := []string{"python3", "-c", pytestCollect, "--collect-only", "-q", "-p", "no:cacheprovider"}
	argv = append(argv, args...)
	return append(argv, files...)
}

// ParsePytestCollect reads what PytestCollectArgv printed. Each node's
// parent is the nearest node whose id prefixes its own at a "::".
func ParsePytestCollect(data []byte) ([]DiscoveredTest, error) {
	var out []DiscoveredTest
	ids := map[string]bool{}
	for _, line := range splitLines(data) {
		rest, ok := strings.CutPrefix(line, collectMarker)
		if !ok {
			continue
		}
		f := strings.Split(rest, "\t")
		if len(f) != 4 || f[1] == "" {
			return nil, fmt.Errorf("pytest collect: %w: %q", ErrBadReport, line)
		}
		n := DiscoveredTest{Kind: f[0], ID: f[1], File: path.Clean(f[2])}
		if !path.IsAbs(f[2]) {
			n.File = ""
		}
		if l, err := strconv.Atoi(f[3]); err == nil && l >= 0 {
			n.Line = l + 1
		}
		switch n.Kind {
		case KindFile:
			n.Name = path.Base(n.ID)
		case KindClass, KindTest:
			base := n.ID
			if i := strings.IndexByte(base, '['); i >= 0 {
				base = base[:i]
			}
			n.Name = n.ID[strings.LastIndex(base, "::")+2:]
			n.Parent = pytestParent(n.ID, ids)
		default:
			return nil, fmt.Errorf("pytest collect: %w: kind %q", ErrBadReport, n.Kind)
		}
		if ids[n.ID] {
			continue
		}
		ids[n.ID] = true
		out = append(out, n)
	}
	return out, nil
}

// pytestParent returns the longest known id that id extends at a "::",
// ignoring "::" inside a parametrization's brackets.
func pytestParent(id string, known map[string]bool) string {
	base := id
	if i := strings.IndexByte(id, '['); i >= 0 {
		base = id[:i]
	}
	for i := strings.LastIndex(base, "::"); i > 0; i = strings.LastIndex(base[:i], "::") {
		if known[id[:i]] {
			return id[:i]
		}
	}
	return ""
}

// GoListArgv returns the argv listing the tests, fuzz targets and examples
// of pkgs (./... when empty) without running them.
func GoListArgv(pkgs []string) []string {
	if len(pkgs) == 0 {
		pkgs = []string{"./..."}
	}
	return append([]string{"go", "test", "-json", "-list", "."}, pkgs...)
}

// reGoTestName matches what "go test -list" prints for a runnable test;
// benchmarks are left out, since -run does not run them.
var reGoTestName = lazyRegexp(`^(Test|Fuzz|Example)[^\s]*$`)

// ParseGoList reads "go test -json -list ." output: a package node for each
// package with tests, and a test node under it for each test. funcs gives
// each test's file and line, by "importpath.Name" (see ParseGoFuncs); a test
// not in it has no location. A package that failed to build has no tests
// listed: its error is returned when no package listed any, wrapping
// ErrBadReport.
func ParseGoList(data []byte, funcs map[string]FuncLoc) ([]DiscoveredTest, error) {
	var (
		out    []DiscoveredTest
		seen   = map[string]bool{}
		failed strings.Builder
		events int
	)
	outputs := map[string]*strings.Builder{}
	for _, line := range splitLines(data) {
		ev, ok := parseGoEvent(line)
		if !ok {
			if strings.TrimSpace(line) != "" && failed.Len() < 2000 {
				failed.WriteString(line + "\n")
			}
			continue
		}
		events++
		if ev.Action == "build-output" {
			failed.WriteString(ev.Output)
			continue
		}
		if ev.Package == "" {
			continue
		}
		if ev.Action == "output" {
			b := outputs[ev.Package]
			if b == nil {
				b = &strings.Builder{}
				outputs[ev.Package] = b
			}
			b.WriteString(ev.Output)
		}
		if ev.Action != "output" || ev.Test != "" {
			continue
		}
		name := strings.TrimSpace(ev.Output)
		if !reGoTestName().MatchString(name) {
			continue
		}
		if !seen[ev.Package] {
			seen[ev.Package] = true
			out = append(out, DiscoveredTest{ID: ev.Package, Name: ev.Package, Kind: KindPackage})
		}
		id := ev.Package + "." + name
		if seen[id] {
			continue
		}
		seen[id] = true
		n := DiscoveredTest{ID: id, Name: name, Kind: KindTest, Parent: ev.Package}
		if fl, ok := funcs[id]; ok {
			n.File, n.Line = fl.File, fl.Line
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		if events == 0 && failed.Len() == 0 {
			return nil, nil
		}
		for p, b := range outputs {
			if strings.Contains(b.String(), "FAIL") || strings.Contains(b.String(), "build failed") {
				failed.WriteString(p + ": " + b.String())
			}
		}
		if msg := firstLines(failed.String()); msg != "" && !strings.Contains(msg, "no test files") {
			return nil, fmt.Errorf("go test -list: %w: %s", ErrBadReport, msg)
		}
	}
	return out, nil
}

// FuncLoc is where a test function is declared.
type FuncLoc struct {
	File string
	Line int
}

// GoFuncsArgv returns the argv that finds the test functions of the
// package directories dirs: grep, since the files are Go source and a test
// function starts a line.
func GoFuncsArgv(dirs []string) []string {
	sorted := append([]string(nil), dirs...)
	sort.Strings(sorted)
	argv := []string{"grep", "-rHnE", "--include=*_test.go", `^func (Test|Fuzz|Example)`}
	return append(argv, sorted...)
}

var reGoFunc = lazyRegexp(`^(/[^:]+\.go):(\d+):func ((?:Test|Fuzz|Example)[^\s(\[]*)[\[(]`)

// ParseGoFuncs reads GoFuncsArgv's output into locations by
// "importpath.Name". pkgDirs maps import paths to their directories; a file
// is in the package whose directory is its own directory, not a parent.
func ParseGoFuncs(data []byte, pkgDirs map[string]string) map[string]FuncLoc {
	byDir := map[string]string{}
	for ip, dir := range pkgDirs {
		byDir[path.Clean(dir)] = ip
	}
	out := map[string]FuncLoc{}
	for _, line := range splitLines(data) {
		m := reGoFunc().FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ip, ok := byDir[path.Dir(path.Clean(m[1]))]
		if !ok {
			continue
		}
		n, ok := lineNumber(m[2])
		if !ok {
			continue
		}
		if _, dup := out[ip+"."+m[3]]; !dup {
			out[ip+"."+m[3]] = FuncLoc{File: path.Clean(m[1]), Line: n}
		}
	}
	return out
}

// SplitGoTestID splits "importpath.TestName" (or "importpath.TestName/sub")
// into its package and test. An id naming a whole package has no test: a
// test name starts with Test, Fuzz or Example, which no import path's last
// element after a dot does in practice ("gopkg.in/yaml.v3" is a package).
func SplitGoTestID(id string) (pkg, test string) {
	// The leftmost such dot: a subtest's name may hold dots and slashes.
	for i := 0; i < len(id); i++ {
		if id[i] != '.' {
			continue
		}
		rest := id[i+1:]
		if strings.HasPrefix(rest, "Test") || strings.HasPrefix(rest, "Fuzz") || strings.HasPrefix(rest, "Example") {
			return id[:i], rest
		}
	}
	return id, ""
}

// GoRunSelection turns test ids into the packages to test and the -run
// pattern that selects them: "^(TestA|TestB)$" for top-level tests, with
// one "/"-separated level per subtest level ("^(TestT)$/^(bad)$"). Every
// level is an alternation over all ids, so tests named alike in two of the
// packages both run. An id naming a whole package needs the package to run
// unfiltered: mixing one with tests of other packages is ErrBadRequest,
// since one go test has one -run. Returns run "" when no filter applies.
func GoRunSelection(ids []string) (pkgs []string, run string, err error) {
	var (
		levels    [][]string
		whole     = map[string]bool{}
		filtered  = map[string]bool{}
		seenPkg   = map[string]bool{}
		seenLevel = []map[string]bool{}
	)
	for _, id := range ids {
		if id == "" {
			return nil, "", fmt.Errorf("%w: empty test id", ErrBadRequest)
		}
		pkg, test := SplitGoTestID(id)
		if !seenPkg[pkg] {
			seenPkg[pkg] = true
			pkgs = append(pkgs, pkg)
		}
		if test == "" {
			whole[pkg] = true
			continue
		}
		filtered[pkg] = true
		for i, part := range strings.Split(test, "/") {
			if i == len(levels) {
				levels = append(levels, nil)
				seenLevel = append(seenLevel, map[string]bool{})
			}
			if !seenLevel[i][part] {
				seenLevel[i][part] = true
				levels[i] = append(levels[i], regexp.QuoteMeta(part))
			}
		}
	}
	if len(filtered) == 0 {
		return pkgs, "", nil
	}
	if len(whole) > 0 {
		for _, p := range pkgs {
			if filtered[p] && !whole[p] {
				return nil, "", fmt.Errorf("%w: tests: a whole package beside single tests of %s; run them separately", ErrBadRequest, p)
			}
		}
		return pkgs, "", nil // every test named is in a package run whole
	}
	parts := make([]string, len(levels))
	for i, l := range levels {
		parts[i] = "^(" + strings.Join(l, "|") + ")$"
	}
	return pkgs, strings.Join(parts, "/"), nil
}
