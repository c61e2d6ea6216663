package devcontainer

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tailscale/hujson"
)

// node is a parsed JSONC value that remembers where it starts, so that type
// errors found after parsing can still name a line and column.
type node struct {
	off     int         // byte offset of the value's first byte
	kind    hujson.Kind // 'n', 't', 'f', '0', '"', '{' or '['
	str     string      // string value (substituted), or a number's literal text
	elems   []*node     // array elements
	members []member    // object members, in file order, duplicates kept
}

type member struct {
	key    string
	keyOff int // byte offset of the key's opening quote
	val    *node
}

// get returns the value of key, the last one if key is repeated (as
// encoding/json does), or nil.
func (n *node) get(key string) *node {
	var v *node
	for _, m := range n.members {
		if m.key == key {
			v = m.val
		}
	}
	return v
}

// isNull reports whether n is absent or JSON null; both mean "not set".
func (n *node) isNull() bool { return n == nil || n.kind == 'n' }

func kindName(k hujson.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '0':
		return "a number"
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "an invalid value"
}

// hujsonPos matches the position prefix of hujson's parse errors, which is
// the only place it reports one. Its column counts bytes.
var hujsonPos = lazyRegexp(`^hujson: line (\d+), column (\d+): `)

// parseJSONC parses src, which must not start with a byte order mark.
func parseJSONC(src []byte, file string) (*node, error) {
	// hujson rejects a // comment that ends the file without a newline.
	// Adding one moves no offset.
	text := src
	if !bytes.HasSuffix(text, []byte("\n")) {
		text = append(text[:len(text):len(text)], '\n')
	}
	v, err := hujson.Parse(text)
	if err != nil {
		msg := err.Error()
		e := &ConfigError{File: file, Msg: msg}
		if m := hujsonPos().FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			col, _ := strconv.Atoi(m[2])
			off := byteOffset(text, line, col)
			e.Msg = syntaxMessage(msg[len(m[0]):])
			if e.Msg == msgUnterminated {
				// hujson reports the end of the file; the opening quote
				// is where the user must look.
				off = openStringAt(src)
			}
			e.Line, e.Column = position(src, off)
		}
		return nil, e
	}
	return toNode(&v), nil
}

const msgUnterminated = "unterminated string"

// syntaxMessage rewords the hujson messages that would confuse a user.
func syntaxMessage(m string) string {
	switch {
	case strings.HasPrefix(m, `invalid literal: "`):
		// A string literal runs to the next quote, so this is nearly always
		// an unterminated string that swallowed a newline.
		return "unterminated string (or a control character such as a newline inside a string)"
	case strings.HasPrefix(m, "invalid literal: "):
		lit := strings.TrimPrefix(m, "invalid literal: ")
		if len(lit) > 40 {
			lit = lit[:40] + "…"
		}
		return "invalid value " + strconv.Quote(lit)
	case m == "parsing string: unexpected EOF":
		return msgUnterminated
	case m == "parsing comment: unexpected EOF":
		return "unterminated /* comment"
	case m == "parsing value: unexpected EOF":
		return "unexpected end of file: expected a value"
	case strings.HasSuffix(m, ": unexpected EOF"):
		return "unexpected end of file: missing '}' or ']'"
	}
	return m
}

// openStringAt returns the offset of the opening quote of the string still
// open at the end of src, lexing strings and comments as hujson does, or
// len(src) if none is.
func openStringAt(src []byte) int {
	start := -1 // opening quote of the current string, or -1 outside one
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case start >= 0:
			switch c {
			case '\\':
				i++
			case '"':
				start = -1
			}
		case c == '"':
			start = i
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			j := bytes.IndexByte(src[i:], '\n')
			if j < 0 {
				return len(src)
			}
			i += j
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			j := bytes.Index(src[i+2:], []byte("*/"))
			if j < 0 {
				return len(src)
			}
			i += j + 3
		}
	}
	if start < 0 {
		return len(src)
	}
	return start
}

func toNode(v *hujson.Value) *node {
	n := &node{off: v.StartOffset}
	switch t := v.Value.(type) {
	case hujson.Literal:
		n.kind = t.Kind()
		switch n.kind {
		case '"':
			n.str = t.String()
		case '0':
			n.str = string(t)
		}
	case *hujson.Object:
		n.kind = '{'
		for i := range t.Members {
			m := &t.Members[i]
			key, _ := m.Name.Value.(hujson.Literal)
			n.members = append(n.members, member{key: key.String(), keyOff: m.Name.StartOffset, val: toNode(&m.Value)})
		}
	case *hujson.Array:
		n.kind = '['
		for i := range t.Elements {
			n.elems = append(n.elems, toNode(&t.Elements[i]))
		}
	}
	return n
}

// byteOffset turns hujson's 1-based line and byte column back into an offset.
func byteOffset(src []byte, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(src[off:], '\n')
		if i < 0 {
			return len(src)
		}
		off += i + 1
	}
	return min(off+col-1, len(src))
}

// position returns the 1-based line and character column of offset off.
func position(src []byte, off int) (line, col int) {
	off = max(0, min(off, len(src)))
	before := src[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[start:])
}
