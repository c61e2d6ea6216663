package tools

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSARIFFile(t *testing.T) {
	want := []Diagnostic{
		// Level from the rule's defaultConfiguration, via ruleIndex.
		{File: "/work/my proj/app/main.py", Line: 4, Column: 5, EndLine: 4, EndColumn: 21, Severity: SeverityError,
			Code: "python.lang.security.audit.eval-detected", Source: "semgrep",
			Message: "Detected the use of eval(). eval() can be dangerous if used to evaluate dynamic content."},
		// Chained uriBaseIds, a percent-encoded relative URI, arguments,
		// level from the rule found by id.
		{File: "/work/my proj/tests/test data.py", Line: 10, Column: 1, Severity: SeverityInformation,
			Code: "python.lang.best-practice.open-never-closed", Source: "semgrep",
			Message: "file object opened without a corresponding close: fh"},
		// A file:// URI; endLine defaults to startLine.
		{File: "/work/my proj/lint_me.py", Line: 2, Column: 3, EndLine: 2, EndColumn: 9, Severity: SeverityWarning,
			Code: "custom.todo", Source: "semgrep", Message: "TODO left in code"},
		// The "pass" result is dropped; this one points into artifacts.
		{File: "/work/my proj/app/util.py", Line: 1, Severity: SeverityHint, Code: "custom.style", Source: "semgrep",
			Message: "consider a shorter name"},
		// Second run: no driver name, no base: relative to cwd.
		{File: "/work/proj/src/x.py", Line: 3, Column: 2, Severity: SeverityError, Code: "X1", Source: "fallback",
			Message: "relative to where the tool ran"},
	}
	got, err := ParseSARIF(readTestdata(t, "sarif.json"), "/work/proj", "fallback")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseSARIF() mismatch (-want +got):\n%s", diff)
	}
}

func TestParseSARIFInline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Diagnostic
	}{
		{name: "no runs yet", in: `{"version":"2.1.0","runs":[]}`},
		{
			name: "unknown base, no location, other schemes, markdown message",
			in: `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t"}},"results":[
{"ruleId":"A","message":{"text":"base unknown"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"a.py","uriBaseId":"%SRCROOT%"}}}]},
{"ruleId":"B","message":{"markdown":"**no** location"}},
{"ruleId":"C","message":{},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"https://example.com/x.py"}}}]},
{"ruleId":"D","level":"bogus","message":{"text":"localhost file"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"file://localhost/abs/d.py"},"region":{"startLine":-3}}}]}
]}]}`,
			want: []Diagnostic{
				{File: "/w/a.py", Severity: SeverityWarning, Code: "A", Source: "t", Message: "base unknown"},
				{Severity: SeverityWarning, Code: "B", Source: "t", Message: "**no** location"},
				{Severity: SeverityWarning, Code: "C", Source: "t", Message: "C"},
				{File: "/abs/d.py", Severity: SeverityWarning, Code: "D", Source: "t", Message: "localhost file"},
			},
		},
		{
			name: "cyclic uriBaseIds fall back to cwd",
			in: `{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"t"}},
"originalUriBaseIds":{"A":{"uri":"a/","uriBaseId":"B"},"B":{"uri":"b/","uriBaseId":"A"}},
"results":[{"ruleId":"R","message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"x.py","uriBaseId":"A"}}}]}]}]}`,
			want: []Diagnostic{
				{File: "/w/b/a/x.py", Severity: SeverityWarning, Code: "R", Source: "t", Message: "m"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSARIF([]byte(tt.in), "/w", "fallback")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSARIF() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSARIFMalformed(t *testing.T) {
	for _, in := range []string{
		"",
		"<xml/>",
		`{}`,
		`{"version":"2.1.0","runs":{}}`,
		`{"version":"2.1.0","runs":[{"results":[{"locations":[{"physicalLocation":{"region":{"startLine":"1"}}}]}]}]}`,
	} {
		t.Run(in, func(t *testing.T) {
			if _, err := ParseSARIF([]byte(in), "/w", "x"); !errors.Is(err, ErrBadReport) {
				t.Errorf("ParseSARIF(%q) error = %v, want ErrBadReport", in, err)
			}
		})
	}
}
