package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Severity is an LSP DiagnosticSeverity.
type Severity int

// The LSP severities.
const (
	SeverityError       Severity = 1
	SeverityWarning     Severity = 2
	SeverityInformation Severity = 3
	SeverityHint        Severity = 4
)

// Diagnostic is one linter finding at a container path.
type Diagnostic struct {
	File string // absolute container path
	// Line and Column are 1-based, 0 if unknown; publish an unknown line
	// as line 1.
	Line, Column       int
	EndLine, EndColumn int // 0 if unknown
	Severity           Severity
	Code               string
	Source             string // the linter's name
	Message            string
}

// Linter is how to run one linter and read its output.
type Linter struct {
	Name string
	Argv []string
	// Format is an errorformat, "json" or "sarif".
	Format   string
	Severity Severity // for findings whose output does not say
}

// Preset returns the linter named name, run on files: "pyflakes" and
// "go vet" (for which files are packages). ok is false for other names.
func Preset(name string, files []string) (Linter, bool) {
	switch name {
	case "pyflakes":
		if len(files) == 0 {
			files = []string{"."}
		}
		return Linter{
			Name:     name,
			Argv:     append([]string{"python3", "-m", "pyflakes"}, files...),
			Format:   "%f:%l:%c: %m,%f:%l: %m",
			Severity: SeverityWarning,
		}, true
	case "go vet":
		if len(files) == 0 {
			files = []string{"./..."}
		}
		return Linter{
			Name:     name,
			Argv:     append([]string{"go", "vet"}, files...),
			Format:   "%f:%l:%c: %m",
			Severity: SeverityWarning,
		}, true
	}
	return Linter{}, false
}

// pyflakesErrors mark the messages pyflakes passes on from Python's parser.
// Its own warnings never contain them ("syntax error in doctest" is lower
// case and a warning).
var pyflakesErrors = []string{
	"invalid syntax", "SyntaxError", "unexpected", "IndentationError",
	"was never closed", "unterminated", "unmatched '", "unindent does not match",
	"expected an indented block", "expected ':'", "EOF while scanning",
	"invalid character", "invalid decimal literal", "problem decoding source",
}

// ParseLint parses out in format: "json", "sarif" or an errorformat. sev is
// the severity of findings the output gives none for (0 means warning).
//
// Two presets need more than their errorformat, keyed on source: pyflakes
// syntax errors become errors, and go vet's "# pkg" and "vet: " lines are
// dropped (vet repeats type errors there that the build reports anyway).
func ParseLint(format string, out []byte, cwd, source string, sev Severity) ([]Diagnostic, error) {
	switch format {
	case "json":
		return parseJSONDiagnostics(out, cwd, source, sev)
	case "sarif":
		return parseSARIF(out, cwd, source, sev)
	}
	efm, err := CompileErrorformat(format)
	if err != nil {
		return nil, err
	}
	if source == "go vet" {
		var keep []string
		for _, l := range splitLines(out) {
			if !strings.HasPrefix(l, "# ") && !strings.HasPrefix(l, "vet: ") {
				keep = append(keep, l)
			}
		}
		out = []byte(strings.Join(keep, "\n"))
	}
	diags := efm.Parse(out, cwd, source, sev)
	if source == "pyflakes" {
		for i := range diags {
			for _, m := range pyflakesErrors {
				if strings.Contains(diags[i].Message, m) {
					diags[i].Severity = SeverityError
					break
				}
			}
		}
	}
	return diags, nil
}

// ParseJSONDiagnostics reads the common JSON shape of linter output, ruff's
// "--output-format json" among them. The input is a JSON array of finding
// objects, JSON Lines of them, or objects holding such an array under
// "diagnostics" or "results". Key names vary between tools:
//
//	file        file | filename | path
//	line        line | row | location.row | location.line
//	column      column | col | location.column | location.col
//	end         end_location.{row,line,column,col} | endLine, endColumn | end_line, end_column
//	message     message | msg | text
//	code        code | rule | ruleId
//	severity    severity | level | type: error, warning, info, note, hint in any
//	            case, or LSP numbers 1-4; default warning
//
// A finding with no severity whose message starts with "SyntaxError" is an
// error: that is how ruff reports files it cannot parse.
func ParseJSONDiagnostics(data []byte, cwd, source string) ([]Diagnostic, error) {
	return parseJSONDiagnostics(data, cwd, source, SeverityWarning)
}

func parseJSONDiagnostics(data []byte, cwd, source string, def Severity) ([]Diagnostic, error) {
	if def < SeverityError || def > SeverityHint {
		def = SeverityWarning
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var diags []Diagnostic
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return diags, nil
		}
		if err != nil {
			return nil, fmt.Errorf("json diagnostics: %w: %v", ErrBadReport, err)
		}
		var items []any
		switch v := v.(type) {
		case []any:
			items = v
		case map[string]any:
			if a, ok := v["diagnostics"].([]any); ok {
				items = a
			} else if a, ok := v["results"].([]any); ok {
				items = a
			} else {
				items = []any{v}
			}
		default:
			return nil, fmt.Errorf("json diagnostics: %w: want objects or arrays, got %T", ErrBadReport, v)
		}
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				diags = append(diags, jsonDiagnostic(m, cwd, source, def))
			}
		}
	}
}

func jsonDiagnostic(m map[string]any, cwd, source string, def Severity) Diagnostic {
	loc, _ := m["location"].(map[string]any)
	end, _ := m["end_location"].(map[string]any)
	d := Diagnostic{
		File:      resolve(cwd, jsonString(m, "file", "filename", "path")),
		Line:      jsonInt(m, "line", "row"),
		Column:    jsonInt(m, "column", "col"),
		EndLine:   jsonInt(m, "endLine", "end_line"),
		EndColumn: jsonInt(m, "endColumn", "end_column"),
		Message:   jsonString(m, "message", "msg", "text"),
		Code:      jsonString(m, "code", "rule", "ruleId"),
		Source:    source,
		Severity:  def,
	}
	if d.Line == 0 {
		d.Line = jsonInt(loc, "row", "line")
	}
	if d.Column == 0 {
		d.Column = jsonInt(loc, "column", "col")
	}
	if d.EndLine == 0 {
		d.EndLine = jsonInt(end, "row", "line")
	}
	if d.EndColumn == 0 {
		d.EndColumn = jsonInt(end, "column", "col")
	}
	if d.Source == "" {
		d.Source = jsonString(m, "source")
	}
	sev, found := Severity(0), false
	for _, k := range []string{"severity", "level", "type"} {
		if v, ok := m[k]; ok && v != nil {
			sev, found = jsonSeverity(v)
			break
		}
	}
	switch {
	case found:
		d.Severity = sev
	case strings.HasPrefix(d.Message, "SyntaxError"):
		d.Severity = SeverityError
	}
	return d
}

// jsonString returns the first of keys holding a string or number.
func jsonString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
	}
	return ""
}

// jsonInt returns the first of keys holding a positive number, or a string
// of one.
func jsonInt(m map[string]any, keys ...string) int {
	for _, k := range keys {
		var f float64
		var err error
		switch v := m[k].(type) {
		case json.Number:
			f, err = v.Float64()
		case string:
			f, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		default:
			continue
		}
		if err == nil && f >= 1 && f < math.MaxInt32 {
			return int(f)
		}
	}
	return 0
}

func jsonSeverity(v any) (Severity, bool) {
	switch v := v.(type) {
	case json.Number:
		return numberSeverity(v.String())
	case string:
		if s, ok := numberSeverity(v); ok {
			return s, true
		}
		return levelSeverity(v)
	}
	return 0, false
}

func numberSeverity(s string) (Severity, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < int(SeverityError) || n > int(SeverityHint) {
		return 0, false
	}
	return Severity(n), true
}

// levelSeverity maps the level words linters use, pylint's among them.
func levelSeverity(s string) (Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "error", "err", "fatal", "critical":
		return SeverityError, true
	case "warning", "warn":
		return SeverityWarning, true
	case "info", "information", "note", "convention":
		return SeverityInformation, true
	case "hint", "refactor", "none":
		return SeverityHint, true
	}
	return 0, false
}
