package tools

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInspectArgv(t *testing.T) {
	py := PythonInspectArgv()
	if len(py) != 3 || py[0] != "python3" || py[1] != "-c" {
		t.Fatalf("PythonInspectArgv() = %q, want python3 -c SCRIPT", py)
	}
	for _, key := range []string{`"executable"`, `"version"`, `"paths"`} {
		if !strings.Contains(py[2], key) {
			t.Errorf("python script lacks %s: %s", key, py[2])
		}
	}
	want := []string{"go", "env", "-json", "GOROOT", "GOPATH", "GOMODCACHE", "GOVERSION"}
	if diff := cmp.Diff(want, GoInspectArgv()); diff != "" {
		t.Errorf("GoInspectArgv() mismatch (-want +got):\n%s", diff)
	}
}

func TestParsePythonInspect(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want Interpreter
	}{
		{
			name: "venv",
			out:  `{"executable": "/work/proj/.venv/bin/python3", "version": "3.12.3", "paths": ["/usr/lib/python312.zip", "/usr/lib/python3.12", "/usr/lib/python3.12/lib-dynload", "/work/proj/.venv/lib/python3.12/site-packages/"]}` + "\n",
			want: Interpreter{Executable: "/work/proj/.venv/bin/python3", Version: "3.12.3", Paths: []string{
				"/usr/lib/python312.zip", "/usr/lib/python3.12", "/usr/lib/python3.12/lib-dynload", "/work/proj/.venv/lib/python3.12/site-packages",
			}},
		},
		{
			name: "noise before the object",
			out:  "pyenv: warning: something\r\n{not json}\n" + `{"executable": "/usr/bin/python3", "version": "3.13.0rc1", "paths": []}`,
			want: Interpreter{Executable: "/usr/bin/python3", Version: "3.13.0rc1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePythonInspect([]byte(tt.out))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePythonInspect() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseGoInspect(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want Interpreter
	}{
		{
			name: "go env -json",
			out: `{
	"GOMODCACHE": "/root/go/pkg/mod",
	"GOPATH": "/root/go",
	"GOROOT": "/usr/local/go",
	"GOVERSION": "go1.26.8"
}
`,
			want: Interpreter{Executable: "/usr/local/go/bin/go", Version: "1.26.8",
				Paths: []string{"/usr/local/go", "/root/go", "/root/go/pkg/mod"}},
		},
		{
			name: "toolchain download noise, GOPATH list, experiment suffix",
			out:  "go: downloading go1.27.1 (linux/amd64)\n" + `{"GOMODCACHE": "/cache/mod", "GOPATH": "/home/u/go:/opt/go::/home/u/go", "GOROOT": "/home/u/sdk/go1.27.1/", "GOVERSION": "go1.27.1 X:nodwarf5"}`,
			want: Interpreter{Executable: "/home/u/sdk/go1.27.1/bin/go", Version: "1.27.1",
				Paths: []string{"/home/u/sdk/go1.27.1", "/home/u/go", "/opt/go", "/cache/mod"}},
		},
		{
			name: "devel toolchain",
			out:  `{"GOROOT": "/src/go", "GOVERSION": "devel go1.28-a1b2c3d Tue Jan 6 10:00:00 2026 +0000"}`,
			want: Interpreter{Executable: "/src/go/bin/go", Version: "1.28-a1b2c3d", Paths: []string{"/src/go"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGoInspect([]byte(tt.out))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseGoInspect() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInspectErrors(t *testing.T) {
	tests := []struct {
		name  string
		parse func([]byte) (Interpreter, error)
		out   string
	}{
		{name: "python: nothing", parse: ParsePythonInspect, out: ""},
		{name: "python: not found", parse: ParsePythonInspect, out: "sh: 1: python3: not found\n"},
		{name: "python: no executable", parse: ParsePythonInspect, out: `{"version": "3.12.3"}`},
		{name: "python: wrong types", parse: ParsePythonInspect, out: `{"executable": "/x", "paths": "oops"}`},
		{name: "go: nothing", parse: ParseGoInspect, out: ""},
		{name: "go: no GOROOT", parse: ParseGoInspect, out: `{"GOPATH": "/go"}`},
		{name: "go: truncated", parse: ParseGoInspect, out: `{"GOROOT": "/usr/local/go",`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.parse([]byte(tt.out)); !errors.Is(err, ErrBadReport) {
				t.Errorf("error = %v, want ErrBadReport", err)
			}
		})
	}
}
