package tools

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGoTestArgv(t *testing.T) {
	tests := []struct {
		name       string
		args, pkgs []string
		want       []string
	}{
		{name: "defaults to ./...", want: []string{"go", "test", "-json", "./..."}},
		{
			name: "args then packages",
			args: []string{"-run", "TestAdd", "-count=1"},
			pkgs: []string{"./calc", "example.com/proj/slow"},
			want: []string{"go", "test", "-json", "-run", "TestAdd", "-count=1", "./calc", "example.com/proj/slow"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, GoTestArgv(tt.args, tt.pkgs)); diff != "" {
				t.Errorf("GoTestArgv() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var projDirs = map[string]string{
	"example.com/proj/broken": "/work/proj/broken",
	"example.com/proj/calc":   "/work/proj/calc",
	"example.com/proj/slow":   "/work/proj/slow",
	"example.com/proj/dep":    "/work/proj/internal/dep",
}

func TestParseGoTestFiles(t *testing.T) {
	const calcTest = "/work/proj/calc/calc_test.go"
	tests := []struct {
		file      string
		dirs      map[string]string
		wantSum   Summary
		wantCases []TestCase
	}{
		{
			// go1.26: build failures come as build-output events.
			file:    "gotest.jsonl",
			dirs:    projDirs,
			wantSum: Summary{Passed: 2, Failed: 4, Skipped: 1, Errors: 1, DurationMs: 11},
			wantCases: []TestCase{
				{ID: "example.com/proj/broken", Name: "example.com/proj/broken", Status: Errored,
					Message: "broken/broken.go:3:23: undefined: undefinedThing", File: "/work/proj/broken/broken.go", Line: 3},
				{ID: "example.com/proj/calc.TestAdd", Name: "TestAdd", Status: Passed},
				{ID: "example.com/proj/calc.TestAddWrong", Name: "TestAddWrong", Status: Failed,
					Message: "calc_test.go:13: got 2, want 3", File: calcTest, Line: 13},
				{ID: "example.com/proj/calc.TestTable", Name: "TestTable", Status: Failed,
					Message: "failed subtests: TestTable/neg"},
				{ID: "example.com/proj/calc.TestTable/zero", Name: "TestTable/zero", Status: Passed},
				{ID: "example.com/proj/calc.TestTable/neg", Name: "TestTable/neg", Status: Failed,
					Message: "calc_test.go:25: got -2,\n    want -3", File: calcTest, Line: 25},
				{ID: "example.com/proj/calc.TestSkip", Name: "TestSkip", Status: Skipped,
					Message: "calc_test.go:31: needs network", File: calcTest, Line: 31},
				{ID: "example.com/proj/slow.TestPanic", Name: "TestPanic", Status: Failed,
					Message: "panic: assignment to entry in nil map [recovered, repanicked]",
					File:    "/work/proj/slow/slow_test.go", Line: 7},
			},
		},
		{
			// A test still running when the binary timed out.
			file:    "gotest_timeout.jsonl",
			dirs:    projDirs,
			wantSum: Summary{Failed: 1, DurationMs: 1006},
			wantCases: []TestCase{
				{ID: "example.com/proj/slow.TestSlow", Name: "TestSlow", Status: Failed,
					Message: "panic: test timed out after 1s\n\trunning tests:\n\t\tTestSlow (1s)",
					File:    "/work/proj/slow/slow_test.go", Line: 10},
			},
		},
		{
			// Before go1.24 the compiler's output and the FAIL line were
			// plain text around the JSON.
			file:    "gotest_legacy.txt",
			dirs:    projDirs,
			wantSum: Summary{Passed: 1, Errors: 1, DurationMs: 12},
			wantCases: []TestCase{
				{ID: "example.com/proj/broken", Name: "example.com/proj/broken", Status: Errored,
					Message: "broken/broken.go:3:23: undefined: undefinedThing", File: "/work/proj/broken/broken.go", Line: 3},
				{ID: "example.com/proj/calc.TestAdd", Name: "TestAdd", Status: Passed},
			},
		},
		{
			// Without package directories there is nothing to join
			// "calc_test.go" with.
			file:    "gotest_legacy.txt",
			wantSum: Summary{Passed: 1, Errors: 1, DurationMs: 12},
			wantCases: []TestCase{
				{ID: "example.com/proj/broken", Name: "example.com/proj/broken", Status: Errored,
					Message: "broken/broken.go:3:23: undefined: undefinedThing"},
				{ID: "example.com/proj/calc.TestAdd", Name: "TestAdd", Status: Passed},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			sum, cases, err := ParseGoTest(readTestdata(t, tt.file), tt.dirs)
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

func TestParseGoTestInline(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantSum   Summary
		wantCases []TestCase
	}{
		{
			name: "a dependency failed to build",
			in: `{"ImportPath":"example.com/proj/dep","Action":"build-output","Output":"# example.com/proj/dep\n"}
{"ImportPath":"example.com/proj/dep","Action":"build-output","Output":"internal/dep/dep.go:7:2: syntax error: unexpected }\n"}
{"ImportPath":"example.com/proj/dep","Action":"build-fail"}
{"Action":"start","Package":"example.com/proj/calc"}
{"Action":"output","Package":"example.com/proj/calc","Output":"FAIL\texample.com/proj/calc [build failed]\n"}
{"Action":"fail","Package":"example.com/proj/calc","Elapsed":0,"FailedBuild":"example.com/proj/dep"}
`,
			wantSum: Summary{Errors: 1},
			wantCases: []TestCase{
				{ID: "example.com/proj/calc", Name: "example.com/proj/calc", Status: Errored,
					Message: "internal/dep/dep.go:7:2: syntax error: unexpected }", File: "/work/proj/internal/dep/dep.go", Line: 7},
			},
		},
		{
			name: "TestMain failure with no tests keeps the package output",
			in: `{"Action":"start","Package":"example.com/proj/calc"}
{"Action":"output","Package":"example.com/proj/calc","Output":"setup: database unreachable\n"}
{"Action":"output","Package":"example.com/proj/calc","Output":"FAIL\texample.com/proj/calc\t0.010s\n"}
{"Action":"fail","Package":"example.com/proj/calc","Elapsed":0.01}
`,
			wantSum: Summary{Errors: 1, DurationMs: 10},
			wantCases: []TestCase{
				{ID: "example.com/proj/calc", Name: "example.com/proj/calc", Status: Errored, DurationMs: 10,
					Message: "setup: database unreachable"},
			},
		},
		{
			name: "no test files, cut-short stream, CRLF and go noise",
			in: "go: downloading example.com/x v1.0.0\r\n" +
				`{"Action":"start","Package":"example.com/proj/empty"}` + "\r\n" +
				`{"Action":"output","Package":"example.com/proj/empty","Output":"?   \texample.com/proj/empty\t[no test files]\n"}` + "\r\n" +
				`{"Action":"skip","Package":"example.com/proj/empty","Elapsed":0}` + "\r\n" +
				`{"Action":"run","Package":"example.com/proj/calc","Test":"TestCut"}` + "\r\n" +
				`{"Action":"output","Package":"example.com/proj/calc","Test":"TestCut","Output":"=== RUN   TestCut\n"}` + "\r\n" +
				`{"Action":"pass","Package":"example.com/proj/calc","Test":"TestQuick","Elapsed":0.25}` + "\r\n",
			wantSum: Summary{Passed: 1, Errors: 1, DurationMs: 250},
			wantCases: []TestCase{
				{ID: "example.com/proj/calc.TestCut", Name: "TestCut", Status: Errored, Message: "no result reported"},
				{ID: "example.com/proj/calc.TestQuick", Name: "TestQuick", Status: Passed, DurationMs: 250},
			},
		},
		{
			name: "output split over events, helper line first, partial JSON ignored",
			in: `{"Action":"run","Package":"example.com/proj/calc","Test":"TestX"}
{"Action":"output","Package":"example.com/proj/calc","Test":"TestX","Output":"    helpers_test.go:4"}
{"Action":"output","Package":"example.com/proj/calc","Test":"TestX","Output":"0: mismatch\n"}
{"Action":"output","Package":"example.com/proj/calc","Test":"TestX","Output":"    calc_test.go:9: second\n"}
{"Action":"fail","Package":"example.com/proj/calc","Test":"TestX","Elapsed":0.001}
{"Action":"fail","Package":"example.com/pro
`,
			wantSum: Summary{Failed: 1, DurationMs: 1},
			wantCases: []TestCase{
				{ID: "example.com/proj/calc.TestX", Name: "TestX", Status: Failed, DurationMs: 1,
					Message: "helpers_test.go:40: mismatch\ncalc_test.go:9: second", File: "/work/proj/calc/helpers_test.go", Line: 40},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum, cases, err := ParseGoTest([]byte(tt.in), projDirs)
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

func TestParseGoTestNoEvents(t *testing.T) {
	for _, in := range []string{
		"",
		"go: go.mod file not found in current directory or any parent directory; see 'go help modules'\n",
		"pattern ./...: directory prefix . does not contain main module\n",
	} {
		t.Run(in, func(t *testing.T) {
			if _, _, err := ParseGoTest([]byte(in), nil); !errors.Is(err, ErrBadReport) {
				t.Errorf("ParseGoTest(%q) error = %v, want ErrBadReport", in, err)
			}
		})
	}
}
