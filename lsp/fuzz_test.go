package lsp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/berthdev/berth/pathmap"
)

// FuzzRewrite feeds both directions arbitrary messages: nothing panics;
// valid JSON in
// gives valid JSON out, of the same shape, with no error; a message
// without "file:" or a glob comes back as the same bytes; document text
// is never changed.
func FuzzRewrite(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///home/me/proj/a.py","text":"file:///home/me/proj/b"}}}`,
		`{"jsonrpc":"2.0","id":5,"result":{"changes":{"file:///workspaces/proj/a.py":[{"range":{},"newText":"x"}]}}}`,
		`{"id":1,"method":"client/registerCapability","params":{"registrations":[{"registerOptions":{"watchers":[{"globPattern":"/workspaces/proj/**"},{"globPattern":{"baseUri":"file:///workspaces/proj","pattern":"*"}}]}}]}}`,
		`{"a":["file:\/\/\/home\/me\/proj\/x","FILE:///workspaces/proj/%41?q#f",1.5e3,-0,true,null,{}],"b":"\u00e9\"\\"}`,
		`[{"uri":"file:///home/me/proj/d%20e.py#L3"},"file:///etc/passwd",[[]]]`,
		`{"insertText":"file:///home/me/proj/a","x":{"text":"file:///workspaces/proj/a"}}`,
	} {
		f.Add([]byte(s))
	}
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/me/proj", Container: "/workspaces/proj"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewRewriter(m, nil, nil, nil)
		valid := json.Valid(in)
		for dir, rewrite := range map[string]func([]byte) ([]byte, error){
			"ToServer": r.ToServer,
			"ToEditor": func(b []byte) ([]byte, error) { return r.ToEditor(context.Background(), b) },
		} {
			out, err := rewrite(in)
			if !valid {
				// Relayed as it is, or with its URIs mapped where the
				// scanner, lenient about control bytes in strings, saw them.
				continue
			}
			if err != nil {
				t.Fatalf("%s(%s): %v", dir, in, err)
			}
			if !json.Valid(out) {
				t.Fatalf("%s(%s) = invalid %s", dir, in, out)
			}
			if !mayHaveURI(in) && !hasGlob(in) && !bytes.Equal(out, in) {
				t.Fatalf("%s changed %s to %s", dir, in, out)
			}
			var a, b any
			_ = json.Unmarshal(in, &a)
			_ = json.Unmarshal(out, &b)
			if sa, sb := shape(a), shape(b); sa != sb {
				t.Fatalf("%s changed the shape of %s: %s to %s (%s)", dir, in, sa, sb, out)
			}
			if ta, tb := texts(a, ""), texts(b, ""); ta != tb {
				t.Fatalf("%s changed document text: %q to %q", dir, ta, tb)
			}
		}
	})
}

// shape describes a JSON value with strings and keys blanked out; an
// object's members are a set, as a rewritten key may collide with another.
func shape(v any) string {
	switch v := v.(type) {
	case map[string]any:
		set := map[string]bool{}
		for _, e := range v {
			set[shape(e)] = true
		}
		var parts []string
		for s := range set {
			parts = append(parts, s)
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = shape(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return "s"
	default:
		return fmt.Sprint(v)
	}
}

// texts lists the document text in v, in a stable order.
func texts(v any, key string) string {
	switch v := v.(type) {
	case map[string]any:
		var parts []string
		for k, e := range v {
			if !isFileURI([]byte(k)) {
				parts = append(parts, k+"="+texts(e, k))
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, ";")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = texts(e, key)
		}
		return strings.Join(parts, ",")
	case string:
		if noRewrite[key] {
			return v
		}
	}
	return ""
}
