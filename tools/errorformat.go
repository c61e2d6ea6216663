package tools

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Errorformat is a compiled subset of Vim's 'errorformat': one or more
// single-line patterns, tried in order.
type Errorformat struct {
	pats []efmPattern
}

type efmPattern struct {
	re     *regexp.Regexp
	fields []byte // the conversion letter of each capture group, in order
}

// CompileErrorformat compiles efm, a comma-separated list of patterns. A
// backslash makes the next character literal, so `\,` is a comma inside a
// pattern and `\\` a backslash. The conversions are %f file, %l line,
// %c column, %e end line, %k end column, %m message, %n error number (the
// code), %t type character (E, W, I or N), %s search text (matched and
// ignored) and %% a literal percent sign. Vim's multi-line prefixes (%E, %C,
// %Z, %-G...) and %*\d are not supported. Everything else matches literally
// and a pattern matches whole lines. Each pattern needs %f and %m.
//
// %f matches an absolute path (which may hold colons: the shortest one that
// lets the rest match wins) or a relative path with no colon that does not
// start with a space.
func CompileErrorformat(efm string) (*Errorformat, error) {
	e := &Errorformat{}
	var re strings.Builder
	var fields []byte
	finish := func() error {
		has := string(fields)
		if !strings.Contains(has, "f") || !strings.Contains(has, "m") {
			return fmt.Errorf("errorformat: %w: pattern %d needs %%f and %%m", ErrBadFormat, len(e.pats)+1)
		}
		r, err := regexp.Compile("^" + re.String() + "$")
		if err != nil {
			return fmt.Errorf("errorformat: %w: %v", ErrBadFormat, err)
		}
		e.pats = append(e.pats, efmPattern{re: r, fields: fields})
		re.Reset()
		fields = nil
		return nil
	}
	rs := []rune(efm)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '\\':
			if i+1 < len(rs) {
				i++
			}
			re.WriteString(regexp.QuoteMeta(string(rs[i])))
		case ',':
			if err := finish(); err != nil {
				return nil, err
			}
		case '%':
			if i+1 >= len(rs) {
				return nil, fmt.Errorf("errorformat: %w: trailing %%", ErrBadFormat)
			}
			i++
			conv := rs[i]
			var group string
			switch conv {
			case '%':
				re.WriteString("%")
				continue
			case 's':
				re.WriteString(".*?")
				continue
			case 'f':
				group = `(/.+?|[^:\s/][^:]*)`
			case 'l', 'c', 'e', 'k', 'n':
				group = `(\d+)`
			case 'm':
				group = `(.*)`
			case 't':
				group = `([A-Za-z])`
			default:
				return nil, fmt.Errorf("errorformat: %w: unsupported %%%c", ErrBadFormat, conv)
			}
			if strings.ContainsRune(string(fields), conv) {
				return nil, fmt.Errorf("errorformat: %w: %%%c twice in one pattern", ErrBadFormat, conv)
			}
			fields = append(fields, byte(conv))
			re.WriteString(group)
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return e, nil
}

// Parse runs every line of out through the patterns; the first match wins
// and lines nothing matches are skipped. Relative files resolve against cwd.
// Lines without %t, or with an unknown type, get defaultSeverity, or
// SeverityWarning when that is zero.
func (e *Errorformat) Parse(out []byte, cwd, source string, defaultSeverity Severity) []Diagnostic {
	if defaultSeverity < SeverityError || defaultSeverity > SeverityHint {
		defaultSeverity = SeverityWarning
	}
	var diags []Diagnostic
	for _, line := range splitLines(out) {
		if d, ok := e.parseLine(line, cwd, source, defaultSeverity); ok {
			diags = append(diags, d)
		}
	}
	return diags
}

func (e *Errorformat) parseLine(line, cwd, source string, sev Severity) (Diagnostic, bool) {
	for _, p := range e.pats {
		m := p.re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		d := Diagnostic{Severity: sev, Source: source}
		for i, f := range p.fields {
			v := m[i+1]
			n, _ := strconv.Atoi(v)
			if n < 0 || n > 1<<30 {
				n = 0
			}
			switch f {
			case 'f':
				d.File = resolve(cwd, v)
			case 'l':
				d.Line = n
			case 'c':
				d.Column = n
			case 'e':
				d.EndLine = n
			case 'k':
				d.EndColumn = n
			case 'n':
				d.Code = v
			case 'm':
				d.Message = strings.TrimSpace(v)
			case 't':
				if s, ok := typeSeverity(v); ok {
					d.Severity = s
				}
			}
		}
		return d, true
	}
	return Diagnostic{}, false
}

// typeSeverity maps Vim's error type characters. A note is information, as
// "note" is everywhere else in this package.
func typeSeverity(t string) (Severity, bool) {
	switch strings.ToUpper(t) {
	case "E":
		return SeverityError, true
	case "W":
		return SeverityWarning, true
	case "I", "N":
		return SeverityInformation, true
	}
	return 0, false
}
