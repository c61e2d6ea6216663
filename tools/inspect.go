package tools

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// Interpreter describes a language toolchain inside the container.
type Interpreter struct {
	Executable string
	Version    string
	Paths      []string // import search paths, container paths
}

// pythonInspect prints one JSON line. sys.path's "" (the current directory,
// which -c puts first) says nothing about the environment and is left out.
const pythonInspect = `import json, platform, sys; ` +
	`print(json.dumps({"executable": sys.executable, "version": platform.python_version(), ` +
	`"paths": [p for p in sys.path if p]}))`

// PythonInspectArgv returns the argv that prints the python3 interpreter's
// executable, version and sys.path as a JSON object.
func PythonInspectArgv() []string {
	return []string{"python3", "-c", pythonInspect}
}

// GoInspectArgv returns the argv that prints the Go toolchain's locations and
// version as a JSON object.
func GoInspectArgv() []string {
	return []string{"go", "env", "-json", "GOROOT", "GOPATH", "GOMODCACHE", "GOVERSION"}
}

// ParsePythonInspect parses the output of PythonInspectArgv. Lines before the
// JSON object (a sitecustomize that prints, say) are skipped.
func ParsePythonInspect(out []byte) (Interpreter, error) {
	var v struct {
		Executable string   `json:"executable"`
		Version    string   `json:"version"`
		Paths      []string `json:"paths"`
	}
	if !decodeObject(out, &v) || v.Executable == "" {
		return Interpreter{}, fmt.Errorf("python inspect: %w: no JSON object with an executable in %q", ErrBadReport, snippet(out))
	}
	in := Interpreter{Executable: v.Executable, Version: v.Version}
	for _, p := range v.Paths {
		if p != "" {
			in.Paths = append(in.Paths, path.Clean(p))
		}
	}
	return in, nil
}

// ParseGoInspect parses the output of GoInspectArgv: Executable is
// GOROOT/bin/go, Version is GOVERSION without its "go" prefix, and Paths are
// GOROOT, each GOPATH entry and GOMODCACHE.
func ParseGoInspect(out []byte) (Interpreter, error) {
	var v struct {
		GOROOT, GOPATH, GOMODCACHE, GOVERSION string
	}
	if !decodeObject(out, &v) || v.GOROOT == "" {
		return Interpreter{}, fmt.Errorf("go inspect: %w: no JSON object with GOROOT in %q", ErrBadReport, snippet(out))
	}
	in := Interpreter{Executable: path.Join(v.GOROOT, "bin", "go"), Version: goVersion(v.GOVERSION)}
	seen := map[string]bool{}
	add := func(p string) {
		if p == "" {
			return
		}
		p = path.Clean(p)
		if !seen[p] {
			seen[p] = true
			in.Paths = append(in.Paths, p)
		}
	}
	add(v.GOROOT)
	for _, p := range strings.Split(v.GOPATH, ":") {
		add(p)
	}
	add(v.GOMODCACHE)
	return in, nil
}

// goVersion turns "go1.26.8", "go1.26.8 X:nodwarf5" or
// "devel go1.27-abcdef Tue..." into "1.26.8" or "1.27-abcdef".
func goVersion(s string) string {
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "go"); ok && v != "" {
			return v
		}
	}
	return strings.TrimSpace(s)
}

// decodeObject decodes into v the first JSON object that starts a line of
// out and is well-formed.
func decodeObject(out []byte, v any) bool {
	for off := 0; off < len(out); {
		line := out[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		if t := bytes.TrimLeft(line, " \t"); len(t) > 0 && t[0] == '{' {
			var raw json.RawMessage
			if json.NewDecoder(bytes.NewReader(out[off:])).Decode(&raw) == nil {
				return json.Unmarshal(raw, v) == nil
			}
		}
		off += len(line)
	}
	return false
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
