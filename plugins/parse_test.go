package plugins

import (
	"bufio"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []Plugin
		errs []string
	}{
		{
			name: "coreX example",
			src:  "[plugin.hello]\npath = \"/usr/lib/hello-plugin\"\nexports = [\"version\", \"greet\"]\n",
			want: []Plugin{{Name: "hello", Path: "/usr/lib/hello-plugin", Exports: []string{"version", "greet"}, Mode: ModeExec, Source: "/f.toml"}},
		},
		{
			name: "rpc mode and a description, sorted by name",
			src: `[plugin.zeta]
path = "/z"
exports = ["a"]
mode = "rpc"
description = "ignored"

[plugin.alpha]
path = "/a"
exports = ["b.c"]
mode = "exec"
`,
			want: []Plugin{
				{Name: "alpha", Path: "/a", Exports: []string{"b.c"}, Mode: ModeExec, Source: "/f.toml"},
				{Name: "zeta", Path: "/z", Exports: []string{"a"}, Mode: ModeRPC, Source: "/f.toml"},
			},
		},
		{
			name: "empty file",
			src:  "",
		},
		{
			name: "syntax error has its position",
			src:  "[plugin.hello]\npath = \"/x\"\nexports = [\"a\",\n",
			errs: []string{"/f.toml:3:"},
		},
		{
			name: "wrong type has its position",
			src:  "[plugin.hello]\npath = \"/x\"\nexports = \"a\"\n",
			errs: []string{"/f.toml:3:"},
		},
		{
			name: "unknown key has its position",
			src:  "[plugin.hello]\npath = \"/x\"\nexports = [\"a\"]\ncommand = \"/y\"\n",
			errs: []string{`/f.toml:4:1: unknown key "plugin.hello.command"`},
		},
		{
			name: "a bad plugin leaves the good one",
			src:  "[plugin.good]\npath = \"/g\"\nexports = [\"a\"]\n\n[plugin.bad]\npath = \"relative\"\nexports = [\"a\"]\n",
			want: []Plugin{{Name: "good", Path: "/g", Exports: []string{"a"}, Mode: ModeExec, Source: "/f.toml"}},
			errs: []string{`/f.toml:5:1: plugin "bad": path: must be absolute, got "relative"`},
		},
		{
			name: "missing path",
			src:  "[plugin.p]\nexports = [\"a\"]\n",
			errs: []string{`/f.toml:1:1: plugin "p": path: required`},
		},
		{
			name: "no exports",
			src:  "[plugin.p]\npath = \"/p\"\nexports = []\n",
			errs: []string{`/f.toml:1:1: plugin "p": exports: list at least one method`},
		},
		{
			name: "bad mode",
			src:  "[plugin.p]\npath = \"/p\"\nexports = [\"a\"]\nmode = \"daemon\"\n",
			errs: []string{`/f.toml:1:1: plugin "p": mode: must be exec or rpc, got "daemon"`},
		},
		{
			name: "an export that would read as a flag",
			src:  "[plugin.p]\npath = \"/p\"\nexports = [\"--help\"]\n",
			errs: []string{`/f.toml:1:1: plugin "p": exports[0]: "--help" is not a method name`},
		},
		{
			name: "an export twice",
			src:  "[plugin.p]\npath = \"/p\"\nexports = [\"a\", \"a\"]\n",
			errs: []string{`/f.toml:1:1: plugin "p": exports[1]: "a" listed twice`},
		},
		{
			name: "a dotted name",
			src:  "[plugin.\"a.b\"]\npath = \"/p\"\nexports = [\"a\"]\n",
			errs: []string{`/f.toml:1:1: plugin "a.b": a name has letters`},
		},
		{
			name: "inline table: no header line to point at",
			src:  "plugin = { p = { path = \"rel\", exports = [\"a\"] } }\n",
			errs: []string{`/f.toml: plugin "p": path: must be absolute`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := Parse("/f.toml", []byte(tt.src))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plugins (-want +got):\n%s", diff)
			}
			if len(errs) != len(tt.errs) {
				t.Fatalf("errors: got %v, want %d like %q", errs, len(tt.errs), tt.errs)
			}
			for i, err := range errs {
				if !errors.Is(err, ErrBadFile) {
					t.Errorf("error %v is not ErrBadFile", err)
				}
				if msg := err.Error(); len(msg) < len(tt.errs[i]) || msg[:len(tt.errs[i])] != tt.errs[i] {
					t.Errorf("error %d: got %q, want it to start with %q", i, msg, tt.errs[i])
				}
			}
		})
	}
}

func TestSplitMethod(t *testing.T) {
	tests := []struct {
		in, name, method string
		ok               bool
	}{
		{"hello.greet", "hello", "greet", true},
		{"hello.a.b", "hello", "a.b", true},
		{"hello", "hello", "", false},
		{".greet", "", "greet", false},
		{"hello.", "hello", "", false},
	}
	for _, tt := range tests {
		name, method, ok := SplitMethod(tt.in)
		if name != tt.name || method != tt.method || ok != tt.ok {
			t.Errorf("SplitMethod(%q) = %q, %q, %v; want %q, %q, %v", tt.in, name, method, ok, tt.name, tt.method, tt.ok)
		}
	}
}

func TestMapStrings(t *testing.T) {
	f := func(s string) string {
		if s == "/host/ws/a.go" {
			return "/workspaces/ws/a.go"
		}
		return s
	}
	tests := []struct{ in, want string }{
		{`null`, `null`},
		{`"/host/ws/a.go"`, `"/workspaces/ws/a.go"`},
		{`{"file":"/host/ws/a.go","n":12345678901234567890,"list":["/host/ws/a.go",1.50,true,null],"/host/ws/a.go":"k<&>"}`,
			`{"/host/ws/a.go":"k<&>","file":"/workspaces/ws/a.go","list":["/workspaces/ws/a.go",1.50,true,null],"n":12345678901234567890}`},
		{`{"untouched" : 1}`, `{"untouched" : 1}`},
	}
	for _, tt := range tests {
		got, err := MapStrings(json.RawMessage(tt.in), f)
		if err != nil || string(got) != tt.want {
			t.Errorf("MapStrings(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	if _, err := MapStrings(json.RawMessage(`{"a":`), f); err == nil {
		t.Error("MapStrings of broken JSON: no error")
	}
}

// A plugin's output is read with bounds: garbage, an endless header line or
// a huge message is an error, never an allocation to match.
func TestBoundedCodec(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // the decoded value, or "" for an error
	}{
		{"a message", "Content-Length: 7\r\n\r\n{\"a\":1}", `{"a":1}`},
		{"other headers, any case", "content-type: x\r\ncontent-length: 2\r\n\r\n[]", `[]`},
		{"garbage", "this is not a framed message\n", ""},
		{"no length", "X: 1\r\n\r\n{}", ""},
		{"huge", "Content-Length: 99999999999\r\n\r\n", ""},
		{"endless line", "Content-Length: 1" + strings.Repeat("0", 5000), ""},
		{"short body", "Content-Length: 10\r\n\r\n{}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v json.RawMessage
			err := boundedCodec{}.ReadObject(bufio.NewReader(strings.NewReader(tt.in)), &v)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %s, want an error", v)
				}
				return
			}
			if err != nil || string(v) != tt.want {
				t.Errorf("got %s, %v; want %s", v, err, tt.want)
			}
		})
	}
}

func TestValidNames(t *testing.T) {
	for _, tc := range []struct {
		s            string
		name, method bool
	}{
		{"hello", true, true},
		{"_x-1", true, true},
		{"9lives", true, true},
		{"a.b/c:d", false, true},
		{"", false, false},
		{"-x", false, false},
		{".x", false, false},
		{"a b", false, false},
		{"é", false, false},
		{"a\n", false, false},
	} {
		if got := validName(tc.s); got != tc.name {
			t.Errorf("validName(%q) = %v, want %v", tc.s, got, tc.name)
		}
		if got := validMethod(tc.s); got != tc.method {
			t.Errorf("validMethod(%q) = %v, want %v", tc.s, got, tc.method)
		}
	}
}
