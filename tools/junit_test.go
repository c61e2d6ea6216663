package tools

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPytestArgv(t *testing.T) {
	tests := []struct {
		name        string
		report      string
		args, files []string
		want        []string
	}{
		{
			name:   "bare",
			report: "/tmp/r.xml",
			want:   []string{"python3", "-m", "pytest", "-o", "junit_family=xunit1", "--junitxml=/tmp/r.xml"},
		},
		{
			name:   "args then files",
			report: "/tmp/berth report.xml",
			args:   []string{"-x", "-k", "calc"},
			files:  []string{"tests/test_calc.py", "tests/test_io.py::test_read"},
			want: []string{"python3", "-m", "pytest", "-o", "junit_family=xunit1", "--junitxml=/tmp/berth report.xml",
				"-x", "-k", "calc", "tests/test_calc.py", "tests/test_io.py::test_read"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, PytestArgv(tt.report, tt.args, tt.files)); diff != "" {
				t.Errorf("PytestArgv() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJUnitFiles(t *testing.T) {
	const calc = "/work/proj/tests/test_calc.py"
	tests := []struct {
		file      string
		cwd       string
		wantSum   Summary
		wantCases []TestCase
	}{
		{
			file:    "pytest_xunit1.xml",
			cwd:     "/work/proj",
			wantSum: Summary{Passed: 2, Failed: 2, Skipped: 1, Errors: 2, DurationMs: 87},
			wantCases: []TestCase{
				{ID: "tests/test_calc.py::test_add", Name: "test_add", Status: Passed, DurationMs: 1, File: calc, Line: 6},
				{ID: "tests/test_calc.py::test_add_wrong", Name: "test_add_wrong", Status: Failed, DurationMs: 2,
					Message: "assert 5 == 6\n +  where 5 = add(2, 3)", File: calc, Line: 13},
				{ID: "tests/test_calc.py::test_later", Name: "test_later", Status: Skipped,
					Message: "not ready", File: calc, Line: 16},
				// The fixture that raised is in the test's own file, so
				// its line is the last one there.
				{ID: "tests/test_calc.py::test_uses_broken", Name: "test_uses_broken", Status: Errored, DurationMs: 1,
					Message: `failed on setup with "RuntimeError: boom"`, File: calc, Line: 23},
				{ID: "tests/test_calc.py::TestCalc::test_param[1-2]", Name: "test_param[1-2]", Status: Passed, DurationMs: 1,
					File: calc, Line: 31},
				// The assertion fired in calc.py; the line is the call in
				// the test.
				{ID: "tests/test_calc.py::TestCalc::test_param[2-2]", Name: "test_param[2-2]", Status: Failed, DurationMs: 3,
					Message: "AssertionError: equal inputs\nassert 2 != 2", File: calc, Line: 33},
				// Call failure and teardown error, reported as two cases.
				{ID: "tests/test_calc.py::TestCalc::test_teardown", Name: "test_teardown", Status: Errored, DurationMs: 3,
					Message: "assert False\nfailed on teardown with \"OSError: still open\"", File: calc, Line: 36},
			},
		},
		{
			file:    "pytest_xunit2.xml",
			cwd:     "/work/proj",
			wantSum: Summary{Passed: 1, Failed: 2, Skipped: 1, DurationMs: 51},
			wantCases: []TestCase{
				{ID: "tests/test_calc.py::test_add", Name: "test_add", Status: Passed, DurationMs: 1},
				{ID: "tests/test_calc.py::test_add_wrong", Name: "test_add_wrong", Status: Failed, DurationMs: 2,
					Message: "assert 5 == 6\n +  where 5 = add(2, 3)", File: calc, Line: 13},
				{ID: "tests/test_calc.py::test_later", Name: "test_later", Status: Skipped, Message: "not ready"},
				{ID: "tests/test_calc.py::TestCalc::test_param[2-2]", Name: "test_param[2-2]", Status: Failed, DurationMs: 3,
					Message: "AssertionError: equal inputs\nassert 2 != 2", File: calc, Line: 33},
			},
		},
		{
			file:    "pytest_collect_error.xml",
			cwd:     "/work/proj/",
			wantSum: Summary{Errors: 1, DurationMs: 142},
			wantCases: []TestCase{
				{ID: "tests/test_bad.py", Name: "tests.test_bad", Status: Errored, Message: "collection failure",
					File: "/work/proj/tests/test_bad.py", Line: 3},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sum, cases, err := ParseJUnit(readTestdata(t, tt.file), tt.cwd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSum, sum); diff != "" {
				t.Errorf("summary mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCases, cases); diff != "" {
				t.Errorf("cases mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJUnitInline(t *testing.T) {
	tests := []struct {
		name      string
		xml       string
		cwd       string
		wantSum   Summary
		wantCases []TestCase
	}{
		{
			name: "generic nested suites without times sum the cases",
			xml: `<testsuites>
  <testsuite name="com.example.CalcTest">
    <testcase classname="com.example.CalcTest" name="adds" time="0.25"/>
    <testsuite name="inner">
      <testcase classname="com.example.Inner" name="fails" time="1.5"><failure message="expected:&lt;1&gt; but was:&lt;2&gt;" type="AssertionError">at com.example.Inner.fails(Inner.java:12)</failure></testcase>
    </testsuite>
  </testsuite>
</testsuites>`,
			cwd:     "/src",
			wantSum: Summary{Passed: 1, Failed: 1, DurationMs: 1750},
			wantCases: []TestCase{
				{ID: "com.example.CalcTest.adds", Name: "adds", Status: Passed, DurationMs: 250},
				{ID: "com.example.Inner.fails", Name: "fails", Status: Failed, DurationMs: 1500, Message: "expected:<1> but was:<2>"},
			},
		},
		{
			name: "bare testsuite root, generic line is 1-based, message falls back to text",
			// Any producer's "path:line" in its own file gives the
			// failing line, not just pytest's.
			xml: `<?xml version="1.0" encoding="ISO-8859-1"?>
<testsuite name="phpunit" time="2">
  <testcase name="testX" class="CalcTest" classname="CalcTest" file="/app/tests/CalcTest.php" line="12" time="0.5">
    <error type="Error"><![CDATA[Error: boom
/app/tests/CalcTest.php:14]]></error>
  </testcase>
  <testcase name="testY" classname="CalcTest" time="0.1"><skipped/></testcase>
  <testcase name="testZ" classname="CalcTest" file="/app/tests/CalcTest.php" line="20" time="0.1"/>
</testsuite>`,
			wantSum: Summary{Passed: 1, Errors: 1, Skipped: 1, DurationMs: 2000},
			wantCases: []TestCase{
				{ID: "CalcTest.testX", Name: "testX", Status: Errored, DurationMs: 500, Message: "Error: boom\n/app/tests/CalcTest.php:14",
					File: "/app/tests/CalcTest.php", Line: 14},
				{ID: "CalcTest.testY", Name: "testY", Status: Skipped, DurationMs: 100},
				{ID: "CalcTest.testZ", Name: "testZ", Status: Passed, DurationMs: 100, File: "/app/tests/CalcTest.php", Line: 20},
			},
		},
		{
			name: "pytest native traceback, error outranks failure",
			xml: `<testsuites time="0.5"><testsuite name="pytest" time="0.4">
<testcase classname="test_top" file="test_top.py" line="0" name="test_native" time="0.01"><failure message="ValueError: x">Traceback (most recent call last):
  File "/w/test_top.py", line 3, in test_native
    helper()
  File "/w/lib.py", line 9, in helper
    raise ValueError("x")
ValueError: x</failure><error message="failed on teardown">oops</error></testcase>
</testsuite></testsuites>`,
			cwd:     "/w",
			wantSum: Summary{Errors: 1, DurationMs: 500},
			wantCases: []TestCase{
				{ID: "test_top.py::test_native", Name: "test_native", Status: Errored, DurationMs: 10,
					Message: "failed on teardown", File: "/w/test_top.py", Line: 1},
			},
		},
		{
			name: "junitprefix before the module, no traceback line",
			xml: `<testsuites><testsuite name="pytest" time="0.001">
<testcase classname="ci.tests.test_a.TestA.TestNested" file="tests/test_a.py" line="9" name="test_z" time="0"><failure message="boom">no locations here</failure></testcase>
</testsuite></testsuites>`,
			cwd:     "/w",
			wantSum: Summary{Failed: 1, DurationMs: 1},
			wantCases: []TestCase{
				{ID: "tests/test_a.py::TestA::TestNested::test_z", Name: "test_z", Status: Failed, Message: "boom",
					File: "/w/tests/test_a.py", Line: 10},
			},
		},
		{
			name:      "empty suite",
			xml:       `<testsuites/>`,
			wantCases: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum, cases, err := ParseJUnit([]byte(tt.xml), tt.cwd)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantSum, sum); diff != "" {
				t.Errorf("summary mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCases, cases); diff != "" {
				t.Errorf("cases mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJUnitMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"not xml at all",
		"<testsuites><testsuite>",
		"<html><body>502 Bad Gateway</body></html>",
		`<testsuites><testcase name="a" time="1"></testsuites>`,
	} {
		t.Run(in, func(t *testing.T) {
			_, _, err := ParseJUnit([]byte(in), "/w")
			if !errors.Is(err, ErrBadReport) {
				t.Errorf("ParseJUnit(%q) error = %v, want ErrBadReport", in, err)
			}
		})
	}
}
