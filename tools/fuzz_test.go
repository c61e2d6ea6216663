package tools

import (
	"bytes"
	"path"
	"testing"
)

// addSeeds seeds f with the testdata files, cut to whole lines of about
// 1 KiB: the fuzzer minimizes every new input in time quadratic in its size,
// and stalls for minutes on the full files.
func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(seed(readTestdata(f, name)))
	}
}

func seed(b []byte) []byte {
	const max = 1024
	if len(b) <= max {
		return b
	}
	if i := bytes.LastIndexByte(b[:max], '\n'); i > 0 {
		return b[:i+1]
	}
	return b[:max]
}

func checkCases(t *testing.T, sum Summary, cases []TestCase) {
	t.Helper()
	if n := sum.Passed + sum.Failed + sum.Skipped + sum.Errors; n != len(cases) {
		t.Errorf("summary counts %d cases, got %d", n, len(cases))
	}
	if sum.DurationMs < 0 {
		t.Errorf("summary duration %d", sum.DurationMs)
	}
	for _, c := range cases {
		switch c.Status {
		case Passed, Failed, Skipped, Errored:
		default:
			t.Errorf("case %q has status %q", c.ID, c.Status)
		}
		if c.File != "" && !path.IsAbs(c.File) {
			t.Errorf("case %q has relative file %q", c.ID, c.File)
		}
		if c.Line < 0 || c.DurationMs < 0 {
			t.Errorf("case %q has line %d, duration %d", c.ID, c.Line, c.DurationMs)
		}
	}
}

func checkDiagnostics(t *testing.T, diags []Diagnostic) {
	t.Helper()
	for _, d := range diags {
		if d.File != "" && !path.IsAbs(d.File) {
			t.Errorf("relative file %q", d.File)
		}
		if d.Severity < SeverityError || d.Severity > SeverityHint {
			t.Errorf("severity %d out of range", d.Severity)
		}
		if d.Line < 0 || d.Column < 0 || d.EndLine < 0 || d.EndColumn < 0 {
			t.Errorf("negative position in %+v", d)
		}
	}
}

func FuzzParseJUnit(f *testing.F) {
	addSeeds(f, "pytest_xunit1.xml", "pytest_xunit2.xml", "pytest_collect_error.xml")
	f.Add([]byte(`<testsuite name="x" time="1e400"><testcase classname="" name="" file=".py" line="-1"><failure/></testcase></testsuite>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, cases, err := ParseJUnit(data, "/w")
		if err == nil {
			checkCases(t, sum, cases)
		}
	})
}

func FuzzParseGoTest(f *testing.F) {
	addSeeds(f, "gotest.jsonl", "gotest_timeout.jsonl", "gotest_legacy.txt")
	f.Add([]byte("# [p.test]\nx.go:1:1: e\n{\"Action\":\"fail\",\"Package\":\"p\",\"Elapsed\":1e300}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, cases, err := ParseGoTest(data, projDirs)
		if err == nil {
			checkCases(t, sum, cases)
		}
	})
}

func FuzzParseJSONDiagnostics(f *testing.F) {
	addSeeds(f, "ruff.json")
	f.Add([]byte(`{"results":[{"path":"a","location":{"row":1e99},"severity":"4"}]}` + "\n" + `[{"line":"7"}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		diags, err := ParseJSONDiagnostics(data, "/w", "fuzz")
		if err == nil {
			checkDiagnostics(t, diags)
		}
	})
}

func FuzzParseSARIF(f *testing.F) {
	addSeeds(f, "sarif.json")
	f.Add([]byte(`{"runs":[{"originalUriBaseIds":{"A":{"uriBaseId":"A"}},"artifacts":[{"location":{"index":0}}],"results":[{"ruleIndex":-1,"locations":[{"physicalLocation":{"artifactLocation":{"index":0,"uriBaseId":"A"}}}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		diags, err := ParseSARIF(data, "/w", "fuzz")
		if err == nil {
			checkDiagnostics(t, diags)
		}
	})
}

func FuzzErrorformat(f *testing.F) {
	f.Add("%f:%l:%c: %m,%f:%l: %m", seed(readTestdata(f, "pyflakes.txt")))
	f.Add("%f:%l:%c: %m", seed(readTestdata(f, "govet.txt")))
	f.Add(`[%t] %f(%l.%c-%e.%k): %m (%s)\,%n %%`, []byte("[E] a(1.2-3.4): m (x),5 %\n"))
	f.Fuzz(func(t *testing.T, efm string, out []byte) {
		e, err := CompileErrorformat(efm)
		if err != nil {
			return
		}
		checkDiagnostics(t, e.Parse(out, "/w", "fuzz", 0))
	})
}
