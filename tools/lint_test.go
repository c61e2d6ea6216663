package tools

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPreset(t *testing.T) {
	tests := []struct {
		name   string
		files  []string
		want   Linter
		wantOK bool
	}{
		{
			name:   "pyflakes",
			want:   Linter{Name: "pyflakes", Argv: []string{"python3", "-m", "pyflakes", "."}, Format: "%f:%l:%c: %m,%f:%l: %m", Severity: SeverityWarning},
			wantOK: true,
		},
		{
			name:   "pyflakes",
			files:  []string{"a.py", "pkg"},
			want:   Linter{Name: "pyflakes", Argv: []string{"python3", "-m", "pyflakes", "a.py", "pkg"}, Format: "%f:%l:%c: %m,%f:%l: %m", Severity: SeverityWarning},
			wantOK: true,
		},
		{
			name:   "go vet",
			want:   Linter{Name: "go vet", Argv: []string{"go", "vet", "./..."}, Format: "%f:%l:%c: %m", Severity: SeverityWarning},
			wantOK: true,
		},
		{
			name:   "go vet",
			files:  []string{"./calc"},
			want:   Linter{Name: "go vet", Argv: []string{"go", "vet", "./calc"}, Format: "%f:%l:%c: %m", Severity: SeverityWarning},
			wantOK: true,
		},
		{name: "eslint"},
		{name: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Preset(tt.name, tt.files)
			if ok != tt.wantOK {
				t.Fatalf("Preset(%q) ok = %v, want %v", tt.name, ok, tt.wantOK)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Preset(%q) mismatch (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

func TestParseLintFiles(t *testing.T) {
	pyflakes, _ := Preset("pyflakes", nil)
	vet, _ := Preset("go vet", nil)
	tests := []struct {
		name   string
		file   string
		format string
		source string
		sev    Severity
		want   []Diagnostic
	}{
		{
			name: "pyflakes", file: "pyflakes.txt", format: pyflakes.Format, source: "pyflakes", sev: pyflakes.Severity,
			want: []Diagnostic{
				{File: "/work/proj/lint_me.py", Line: 1, Column: 1, Severity: SeverityWarning, Source: "pyflakes", Message: "'os' imported but unused"},
				{File: "/work/proj/lint_me.py", Line: 7, Column: 5, Severity: SeverityWarning, Source: "pyflakes", Message: "local variable 'unused' is assigned to but never used"},
				{File: "/work/proj/lint_me.py", Line: 12, Column: 11, Severity: SeverityWarning, Source: "pyflakes", Message: "undefined name 'undefined_name'"},
				{File: "/work/proj/lint_me.py", Line: 15, Column: 1, Severity: SeverityWarning, Source: "pyflakes", Message: "'...' % ... expected mapping but got sequence"},
				{File: "/work/proj/pkg/old_style.py", Line: 4, Severity: SeverityWarning, Source: "pyflakes", Message: "redefinition of unused 'json' from line 1"},
				{File: "/work/proj/pkg/bad_syntax.py", Line: 3, Column: 16, Severity: SeverityError, Source: "pyflakes", Message: "invalid syntax"},
				{File: "/work/proj/pkg/unclosed.py", Line: 2, Column: 5, Severity: SeverityError, Source: "pyflakes", Message: "'(' was never closed"},
			},
		},
		{
			name: "go vet", file: "govet.txt", format: vet.Format, source: "go vet", sev: vet.Severity,
			want: []Diagnostic{
				{File: "/work/proj/calc/vet.go", Line: 6, Column: 14, Severity: SeverityWarning, Source: "go vet", Message: `fmt.Printf format %d has arg "x" of wrong type string`},
				{File: "/work/proj/calc/vet.go", Line: 8, Column: 2, Severity: SeverityWarning, Source: "go vet", Message: "self-assignment of x"},
			},
		},
		{
			name: "ruff json", file: "ruff.json", format: "json", source: "ruff",
			want: []Diagnostic{
				{File: "/work/proj/lint_me.py", Line: 1, Column: 8, EndLine: 1, EndColumn: 10, Severity: SeverityWarning, Code: "F401", Source: "ruff", Message: "`os` imported but unused"},
				{File: "/work/proj/lint_me.py", Line: 7, Column: 5, EndLine: 7, EndColumn: 11, Severity: SeverityWarning, Code: "F841", Source: "ruff", Message: "Local variable `unused` is assigned to but never used"},
				{File: "/work/proj/pkg/bad_syntax.py", Line: 3, Column: 16, EndLine: 3, EndColumn: 17, Severity: SeverityError, Source: "ruff", Message: "SyntaxError: Expected a parameter name"},
			},
		},
		{
			name: "ruff json with a preset severity", file: "ruff.json", format: "json", source: "ruff", sev: SeverityInformation,
			want: []Diagnostic{
				{File: "/work/proj/lint_me.py", Line: 1, Column: 8, EndLine: 1, EndColumn: 10, Severity: SeverityInformation, Code: "F401", Source: "ruff", Message: "`os` imported but unused"},
				{File: "/work/proj/lint_me.py", Line: 7, Column: 5, EndLine: 7, EndColumn: 11, Severity: SeverityInformation, Code: "F841", Source: "ruff", Message: "Local variable `unused` is assigned to but never used"},
				{File: "/work/proj/pkg/bad_syntax.py", Line: 3, Column: 16, EndLine: 3, EndColumn: 17, Severity: SeverityError, Source: "ruff", Message: "SyntaxError: Expected a parameter name"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLint(tt.format, readTestdata(t, tt.file), "/work/proj", tt.source, tt.sev)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseLint() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseLintErrors(t *testing.T) {
	tests := []struct {
		format, out string
		want        error
	}{
		{format: "%l: %m", out: "1: x", want: ErrBadFormat},
		{format: "json", out: "oops", want: ErrBadReport},
		{format: "sarif", out: "{}", want: ErrBadReport},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			if _, err := ParseLint(tt.format, []byte(tt.out), "/w", "x", 0); !errors.Is(err, tt.want) {
				t.Errorf("ParseLint(%q) error = %v, want %v", tt.format, err, tt.want)
			}
		})
	}
}

func TestParseJSONDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Diagnostic
	}{
		{name: "empty array", in: "[]"},
		{name: "nothing at all", in: " \n"},
		{
			name: "JSON Lines with flat keys and words for severity",
			in: `{"file":"a.py","line":3,"col":2,"msg":"m1","rule":"R1","level":"ERROR"}
{"path":"/abs/b.py","row":"4","column":1,"text":"m2","ruleId":"R2","severity":"note","endLine":4,"endColumn":9}
{"filename":"c.py","line":1,"message":"m3","type":"hint"}
`,
			want: []Diagnostic{
				{File: "/w/a.py", Line: 3, Column: 2, Severity: SeverityError, Code: "R1", Source: "tool", Message: "m1"},
				{File: "/abs/b.py", Line: 4, Column: 1, EndLine: 4, EndColumn: 9, Severity: SeverityInformation, Code: "R2", Source: "tool", Message: "m2"},
				{File: "/w/c.py", Line: 1, Severity: SeverityHint, Source: "tool", Message: "m3"},
			},
		},
		{
			name: "diagnostics wrapper, LSP numbers, numeric code",
			in:   `{"version":1,"diagnostics":[{"file":"x.go","line":1,"severity":1,"code":1234,"message":"e"},{"file":"x.go","line":2,"severity":"3","message":"i"},{"file":"x.go","line":3,"severity":9,"message":"bad number keeps default"}]}`,
			want: []Diagnostic{
				{File: "/w/x.go", Line: 1, Severity: SeverityError, Code: "1234", Source: "tool", Message: "e"},
				{File: "/w/x.go", Line: 2, Severity: SeverityInformation, Source: "tool", Message: "i"},
				{File: "/w/x.go", Line: 3, Severity: SeverityWarning, Source: "tool", Message: "bad number keeps default"},
			},
		},
		{
			name: "results wrapper, nested location, non-objects skipped",
			in:   `{"results":[{"path":"sub/../y.py","location":{"line":5,"col":3},"end_location":{"line":6,"col":1},"message":"w","severity":"Warning"}, 42, "x"]}`,
			want: []Diagnostic{
				{File: "/w/y.py", Line: 5, Column: 3, EndLine: 6, EndColumn: 1, Severity: SeverityWarning, Source: "tool", Message: "w"},
			},
		},
		{
			name: "pylint's type words",
			in:   `[{"type":"convention","path":"m.py","line":1,"column":0,"message":"c"},{"type":"fatal","path":"m.py","line":2,"column":0,"message":"f"}]`,
			want: []Diagnostic{
				{File: "/w/m.py", Line: 1, Severity: SeverityInformation, Source: "tool", Message: "c"},
				{File: "/w/m.py", Line: 2, Severity: SeverityError, Source: "tool", Message: "f"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJSONDiagnostics([]byte(tt.in), "/w", "tool")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseJSONDiagnostics() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseJSONDiagnosticsMalformed(t *testing.T) {
	for _, in := range []string{
		"not json",
		`[{"file":"a"}`,
		`{"file":"a"} trailing`,
		`"just a string"`,
		`123`,
	} {
		t.Run(in, func(t *testing.T) {
			if _, err := ParseJSONDiagnostics([]byte(in), "/w", "x"); !errors.Is(err, ErrBadReport) {
				t.Errorf("ParseJSONDiagnostics(%q) error = %v, want ErrBadReport", in, err)
			}
		})
	}
}
