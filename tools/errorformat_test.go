package tools

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestErrorformat(t *testing.T) {
	tests := []struct {
		name string
		efm  string
		sev  Severity
		out  string
		want []Diagnostic
	}{
		{
			name: "relative and absolute files",
			efm:  "%f:%l:%c: %m",
			sev:  SeverityWarning,
			out:  "./lint_me.py:1:1: 'os' imported but unused\n/abs/x.go:3:7: msg\n",
			want: []Diagnostic{
				{File: "/w/lint_me.py", Line: 1, Column: 1, Severity: SeverityWarning, Source: "lint", Message: "'os' imported but unused"},
				{File: "/abs/x.go", Line: 3, Column: 7, Severity: SeverityWarning, Source: "lint", Message: "msg"},
			},
		},
		{
			name: "the shortest absolute path wins, colons and all",
			efm:  "%f:%l:%c: %m",
			out:  "/srv/a:b/x.go:3:7: see /srv/y.go:4:5: here\n",
			want: []Diagnostic{
				{File: "/srv/a:b/x.go", Line: 3, Column: 7, Severity: SeverityWarning, Source: "lint", Message: "see /srv/y.go:4:5: here"},
			},
		},
		{
			name: "first matching pattern wins, unmatched lines skipped",
			efm:  "%f:%l:%c: %m,%f:%l: %m",
			sev:  SeverityError,
			out:  "a.py:3: no column\nnoise without a location\n  indented.py:1: not a path start\nb.py:4:2: with column\r\n\n",
			want: []Diagnostic{
				{File: "/w/a.py", Line: 3, Severity: SeverityError, Source: "lint", Message: "no column"},
				{File: "/w/b.py", Line: 4, Column: 2, Severity: SeverityError, Source: "lint", Message: "with column"},
			},
		},
		{
			name: "escaped comma is literal, %% is a percent",
			efm:  `%f\,%l\,%c 100%% %m`,
			out:  "src/a.c,12,3 100% overflow\nsrc/a.c:12:3 100% overflow\n",
			want: []Diagnostic{
				{File: "/w/src/a.c", Line: 12, Column: 3, Severity: SeverityWarning, Source: "lint", Message: "overflow"},
			},
		},
		{
			name: "%t maps to severity, unknown type keeps the default",
			efm:  "%f:%l:%c: %t%n %m",
			sev:  SeverityHint,
			out:  "x.py:1:1: E501 line too long\nx.py:2:1: w291 trailing whitespace\nx.py:3:1: I100 import order\nx.py:4:1: N802 lowercase name\nx.py:5:1: C901 too complex\n",
			want: []Diagnostic{
				{File: "/w/x.py", Line: 1, Column: 1, Severity: SeverityError, Code: "501", Source: "lint", Message: "line too long"},
				{File: "/w/x.py", Line: 2, Column: 1, Severity: SeverityWarning, Code: "291", Source: "lint", Message: "trailing whitespace"},
				{File: "/w/x.py", Line: 3, Column: 1, Severity: SeverityInformation, Code: "100", Source: "lint", Message: "import order"},
				{File: "/w/x.py", Line: 4, Column: 1, Severity: SeverityInformation, Code: "802", Source: "lint", Message: "lowercase name"},
				{File: "/w/x.py", Line: 5, Column: 1, Severity: SeverityHint, Code: "901", Source: "lint", Message: "too complex"},
			},
		},
		{
			name: "regexp metacharacters are literal, %s and ranges",
			efm:  `[%t] %f(%l.%c-%e.%k): %m (%s)`,
			out:  "[W] lib/x.rb(3.4-5.6): odd (near `foo`)\n[W] lib/x.rb(3.4-5.6) odd\n",
			want: []Diagnostic{
				{File: "/w/lib/x.rb", Line: 3, Column: 4, EndLine: 5, EndColumn: 6, Severity: SeverityWarning, Source: "lint", Message: "odd"},
			},
		},
		{
			name: "backslash escapes any character",
			efm:  `%f\:%l\\ %m`,
			out:  `a.txt:9\ trailing` + "\n",
			want: []Diagnostic{
				{File: "/w/a.txt", Line: 9, Severity: SeverityWarning, Source: "lint", Message: "trailing"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := CompileErrorformat(tt.efm)
			if err != nil {
				t.Fatal(err)
			}
			got := e.Parse([]byte(tt.out), "/w", "lint", tt.sev)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrorformatErrors(t *testing.T) {
	for _, efm := range []string{
		"",
		"%l: %m",          // no %f
		"%f:%l",           // no %m
		"%f:%l: %m,",      // empty second pattern
		"%f:%l: %m,%f:%l", // second pattern lacks %m
		"%f:%l: %m %",     // dangling %
		"%E%f:%l: %m",     // multi-line prefixes are not supported
		`%f:%l:%*\d: %m`,  // nor %*
		"%f:%l:%l: %m",    // a conversion twice
	} {
		t.Run(efm, func(t *testing.T) {
			if _, err := CompileErrorformat(efm); !errors.Is(err, ErrBadFormat) {
				t.Errorf("CompileErrorformat(%q) error = %v, want ErrBadFormat", efm, err)
			}
		})
	}
}
