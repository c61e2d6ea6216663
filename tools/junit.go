package tools

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// PytestArgv returns the argv that runs pytest writing a JUnit XML report to
// reportPath. It asks for the xunit1 family because only that one carries the
// file and line attributes of each test case.
func PytestArgv(reportPath string, args, files []string) []string {
	argv := []string{"python3", "-m", "pytest", "-o", "junit_family=xunit1", "--junitxml=" + reportPath}
	argv = append(argv, args...)
	return append(argv, files...)
}

type junitNode struct {
	XMLName xml.Name
	Name    string      `xml:"name,attr"`
	Time    string      `xml:"time,attr"`
	Suites  []junitNode `xml:"testsuite"`
	Cases   []junitCase `xml:"testcase"`
}

type junitCase struct {
	Classname string         `xml:"classname,attr"`
	Name      string         `xml:"name,attr"`
	File      string         `xml:"file,attr"`
	Line      string         `xml:"line,attr"`
	Time      string         `xml:"time,attr"`
	Errors    []junitOutcome `xml:"error"`
	Failures  []junitOutcome `xml:"failure"`
	Skips     []junitOutcome `xml:"skipped"`
}

type junitOutcome struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// ParseJUnit parses a JUnit XML report: pytest's xunit1 and xunit2 families
// and generic <testsuites>/<testsuite> files, nested suites included. cwd is
// the directory the runner ran in, for relative paths.
//
// A case is pytest's when its suite is named "pytest" or its file ends in
// ".py". Its ID is then the node id ("tests/test_x.py::TestC::test_y"), its
// 0-based xunit1 line becomes 1-based, and a failure or error takes its line
// from the last "path:line" of the traceback that names the test's own file.
// xunit2 has no file attribute, so the file is guessed from the classname and
// kept only when the traceback confirms it. pytest reports a call failure
// followed by a teardown error as two cases with one id; they are merged.
//
// Other cases get "classname.name" as ID and their line attribute as is.
func ParseJUnit(data []byte, cwd string) (Summary, []TestCase, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	// Reports are UTF-8 in practice; one that declares another charset is
	// read as UTF-8 too rather than rejected.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var root junitNode
	if err := dec.Decode(&root); err != nil {
		return Summary{}, nil, fmt.Errorf("junit: %w: %v", ErrBadReport, err)
	}
	if root.XMLName.Local != "testsuites" && root.XMLName.Local != "testsuite" {
		return Summary{}, nil, fmt.Errorf("junit: %w: root element is <%s>, want <testsuites> or <testsuite>", ErrBadReport, root.XMLName.Local)
	}
	p := junitParser{cwd: cwd, index: map[string]int{}}
	p.walk(root, "")
	return count(Summary{DurationMs: suiteMillis(root)}, p.cases), p.cases, nil
}

type junitParser struct {
	cwd   string
	cases []TestCase
	index map[string]int // pytest case ID → position in cases
}

func (p *junitParser) walk(n junitNode, suite string) {
	if n.XMLName.Local == "testsuite" {
		suite = n.Name
	}
	for _, c := range n.Cases {
		p.add(c, suite)
	}
	for _, s := range n.Suites {
		p.walk(s, suite)
	}
}

func (p *junitParser) add(c junitCase, suite string) {
	pytest := suite == "pytest" || strings.HasSuffix(c.File, ".py")
	sec, _ := seconds(c.Time)
	tc := TestCase{Name: c.Name, DurationMs: millis(sec), Status: Passed}
	var out *junitOutcome
	switch {
	case len(c.Errors) > 0:
		tc.Status, out = Errored, &c.Errors[0]
	case len(c.Failures) > 0:
		tc.Status, out = Failed, &c.Failures[0]
	case len(c.Skips) > 0:
		tc.Status, out = Skipped, &c.Skips[0]
	}
	if out != nil {
		msg := out.Message
		if strings.TrimSpace(msg) == "" {
			msg = out.Text
		}
		tc.Message = firstLines(msg)
	}

	var guess string
	if pytest {
		tc.ID, guess = pytestID(c.File, c.Classname, c.Name)
	} else {
		tc.ID = genericID(c.File, c.Classname, c.Name)
	}
	tc.File = resolve(p.cwd, c.File)
	if n, err := strconv.Atoi(strings.TrimSpace(c.Line)); err == nil && n >= 0 && n < math.MaxInt32 {
		if pytest {
			n++
		}
		tc.Line = n
	}
	if out != nil && (tc.Status == Failed || tc.Status == Errored) {
		if f, l := failingLine(out.Text, p.cwd, tc.File, guess); l > 0 {
			tc.File, tc.Line = f, l
		}
	}

	if !pytest {
		p.cases = append(p.cases, tc)
		return
	}
	i, seen := p.index[tc.ID]
	if !seen {
		p.index[tc.ID] = len(p.cases)
		p.cases = append(p.cases, tc)
		return
	}
	old := &p.cases[i]
	old.DurationMs += tc.DurationMs
	if worse(tc.Status, old.Status) {
		old.Status = tc.Status
	}
	if tc.Message != "" {
		old.Message = firstLines(strings.TrimSpace(old.Message + "\n" + tc.Message))
	}
	if old.Line == 0 {
		old.File, old.Line = tc.File, tc.Line
	}
}

// pytestID rebuilds a node id from a case's attributes. With no file
// (xunit2) it also returns the file guessed from the classname: the leading
// lowercase components are the module path, the capitalised tail the classes.
func pytestID(file, classname, name string) (id, guess string) {
	var classes []string
	if file != "" {
		mod := strings.ReplaceAll(strings.TrimSuffix(file, ".py"), "/", ".")
		if classname == "" && name == mod {
			return file, "" // a collection error names the module itself
		}
		if rest, ok := afterModule(classname, mod); ok {
			if rest != "" {
				classes = strings.Split(rest, ".")
			}
		} else {
			_, classes = splitClassname(classname)
		}
	} else {
		if classname == "" {
			// A collection error: the name is the dotted module.
			f := strings.ReplaceAll(name, ".", "/") + ".py"
			return f, f
		}
		var module []string
		module, classes = splitClassname(classname)
		if len(module) > 0 {
			file = strings.Join(module, "/") + ".py"
			guess = file
		}
	}
	parts := make([]string, 0, len(classes)+2)
	if file != "" {
		parts = append(parts, file)
	}
	parts = append(parts, classes...)
	parts = append(parts, name)
	return strings.Join(parts, "::"), guess
}

// afterModule returns what follows the dotted module mod in classname, which
// may carry a --junitprefix in front.
func afterModule(classname, mod string) (string, bool) {
	c := "." + classname + "."
	i := strings.Index(c, "."+mod+".")
	if i < 0 {
		return "", false
	}
	return strings.TrimSuffix(c[i+len(mod)+2:], "."), true
}

func splitClassname(classname string) (module, classes []string) {
	if classname == "" {
		return nil, nil
	}
	parts := strings.Split(classname, ".")
	i := len(parts)
	for i > 0 {
		r, _ := utf8.DecodeRuneInString(parts[i-1])
		if !unicode.IsUpper(r) {
			break
		}
		i--
	}
	return parts[:i], parts[i:]
}

func genericID(file, classname, name string) string {
	switch {
	case classname != "":
		return classname + "." + name
	case file != "":
		return file + "::" + name
	}
	return name
}

var (
	// pytest's long, short and line tracebacks: "tests/t.py:12: AssertionError".
	rePyLoc = lazyRegexp(`^(\S.*?):(\d+)(?::|$)`)
	// Python's own (--tb=native): `  File "/w/tests/t.py", line 12, in test_x`.
	rePyFrame = lazyRegexp(`^\s*File "(.+)", line (\d+)`)
)

// failingLine finds the last traceback location in text that is in the
// test's file, or when that is unknown in a file whose path ends with guess.
func failingLine(text, cwd, file, guess string) (string, int) {
	if file == "" && guess == "" {
		return "", 0
	}
	var gotFile string
	var gotLine int
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSuffix(l, "\r")
		m := rePyLoc().FindStringSubmatch(l)
		if m == nil {
			m = rePyFrame().FindStringSubmatch(l)
		}
		if m == nil {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil || n <= 0 || n >= math.MaxInt32 {
			continue
		}
		f := resolve(cwd, m[1])
		if file != "" && f != file {
			continue
		}
		if file == "" && f != resolve(cwd, guess) && !strings.HasSuffix(f, "/"+guess) {
			continue
		}
		gotFile, gotLine = f, n
	}
	return gotFile, gotLine
}

// suiteMillis is the suite's own time when it has one, else its parts' sum.
func suiteMillis(n junitNode) int64 {
	if sec, ok := seconds(n.Time); ok {
		return millis(sec)
	}
	var ms int64
	for _, c := range n.Cases {
		sec, _ := seconds(c.Time)
		ms += millis(sec)
	}
	for _, s := range n.Suites {
		ms += suiteMillis(s)
	}
	return ms
}

func seconds(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}
