package lsp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// maxDepth bounds nesting: a deeper message is relayed as it is.
const maxDepth = 512

// errSyntax says a message is not JSON; it is relayed as it is.
var errSyntax = errors.New("lsp: message is not valid JSON")

// A candidate is one JSON string, key or value, that may need rewriting:
// a file URI anywhere, or any string under a key the rewriter knows.
type candidate struct {
	start, end int    // the string's quotes: src[start] and src[end-1]
	s          string // decoded
	key        string // the key it is the value of, or the array's key
	isKey      bool
}

// noRewrite names the keys whose string values are document text, which
// is never rewritten: a URI typed into a file stays as typed.
var noRewrite = map[string]bool{"text": true, "newText": true, "insertText": true}

// pathKeys name the string values that are paths or globs, not URIs.
var pathKeys = map[string]bool{"globPattern": true}

// scan finds the candidates in one JSON message without decoding the rest
// of it: strings are skipped by their bytes, so a 5 MB didOpen costs one
// pass and no copy.
func scan(src []byte) ([]candidate, error) {
	w := walker{src: src}
	i, err := w.value(0, "", 0)
	if err != nil {
		return nil, err
	}
	if skipWS(src, i) != len(src) {
		return nil, errSyntax
	}
	return w.found, nil
}

type walker struct {
	src   []byte
	found []candidate
}

func skipWS(src []byte, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}

func (w *walker) value(i int, key string, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errSyntax
	}
	src := w.src
	i = skipWS(src, i)
	if i >= len(src) {
		return 0, errSyntax
	}
	switch c := src[i]; c {
	case '{':
		return w.object(i+1, depth+1)
	case '[':
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = w.value(i, key, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(src, i)
			if i >= len(src) {
				return 0, errSyntax
			}
			if src[i] == ']' {
				return i + 1, nil
			}
			if src[i] != ',' {
				return 0, errSyntax
			}
			i++
		}
	case '"':
		end, err := stringEnd(src, i)
		if err != nil {
			return 0, err
		}
		if !noRewrite[key] && (isFileURI(src[i+1:end-1]) || pathKeys[key]) {
			s, err := decode(src[i:end])
			if err != nil {
				return 0, err
			}
			w.found = append(w.found, candidate{start: i, end: end, s: s, key: key})
		}
		return end, nil
	default:
		j := i
		for j < len(src) && (src[j] >= 'a' && src[j] <= 'z' || src[j] >= '0' && src[j] <= '9' ||
			src[j] == '-' || src[j] == '+' || src[j] == '.' || src[j] == 'E') {
			j++
		}
		if j == i || !validLiteral(src[i:j]) {
			return 0, errSyntax
		}
		return j, nil
	}
}

// validLiteral accepts true, false, null and numbers, loosely: the
// message is relayed as the peer wrote it, so only its shape matters.
func validLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	return b[0] == '-' || b[0] >= '0' && b[0] <= '9'
}

func (w *walker) object(i, depth int) (int, error) {
	src := w.src
	i = skipWS(src, i)
	if i < len(src) && src[i] == '}' {
		return i + 1, nil
	}
	for {
		i = skipWS(src, i)
		if i >= len(src) || src[i] != '"' {
			return 0, errSyntax
		}
		end, err := stringEnd(src, i)
		if err != nil {
			return 0, err
		}
		key, err := decode(src[i:end])
		if err != nil {
			return 0, err
		}
		if isFileURI(src[i+1 : end-1]) {
			// WorkspaceEdit.changes is keyed by URIs.
			w.found = append(w.found, candidate{start: i, end: end, s: key, isKey: true})
		}
		i = skipWS(src, end)
		if i >= len(src) || src[i] != ':' {
			return 0, errSyntax
		}
		if i, err = w.value(i+1, key, depth); err != nil {
			return 0, err
		}
		i = skipWS(src, i)
		if i >= len(src) {
			return 0, errSyntax
		}
		if src[i] == '}' {
			return i + 1, nil
		}
		if src[i] != ',' {
			return 0, errSyntax
		}
		i++
	}
}

// stringEnd returns the index just past the string starting at src[i].
// It looks for quotes and backslashes with bytes.IndexByte, each byte
// once, so a long string costs little.
func stringEnd(src []byte, i int) (int, error) {
	j, q := i+1, -1 // q: the next quote at or after j, once found
	for {
		if q < j {
			k := bytes.IndexByte(src[j:], '"')
			if k < 0 {
				return 0, errSyntax
			}
			q = j + k
		}
		b := bytes.IndexByte(src[j:q], '\\')
		if b < 0 {
			return q + 1, nil
		}
		j += b + 2 // the backslash and the character it escapes
		if j > len(src) {
			return 0, errSyntax
		}
	}
}

// decode decodes one JSON string, quotes included.
func decode(raw []byte) (string, error) {
	if !strings.ContainsRune(string(raw), '\\') {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// isFileURI says a string's raw bytes start like a file URI. Escaped
// spellings of "file:" are not recognised: no peer writes them.
func isFileURI(raw []byte) bool {
	return len(raw) >= 5 && strings.EqualFold(string(raw[:5]), "file:")
}

// splice replaces the candidates' strings in src by repl (same length and
// order as found; "" keeps one), returning src itself when nothing changes.
func splice(src []byte, found []candidate, repl []string) []byte {
	var out []byte
	last := 0
	for k, c := range found {
		if repl[k] == "" {
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(src)+64)
		}
		out = append(out, src[last:c.start]...)
		out = appendString(out, repl[k])
		last = c.end
	}
	if out == nil {
		return src
	}
	return append(out, src[last:]...)
}

// appendString appends s as a JSON string, escaping only what JSON
// requires, as peers write URIs.
func appendString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		return append(dst, `""`...)
	}
	if !strings.Contains(string(b), `\u00`) {
		return append(dst, b...)
	}
	// json.Marshal escapes <, > and & for HTML; undo that.
	r := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")
	return append(dst, r.Replace(string(b))...)
}
