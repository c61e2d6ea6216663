// Package plugins discovers the plugins an image exports and calls them.
//
// An image declares plugins in /.plugin.toml (coreX's format) and in
// /etc/berth/plugins.d/*.toml:
//
//	[plugin.hello]
//	path = "/usr/lib/hello-plugin"
//	exports = ["version", "greet"]
//	mode = "exec" # or "rpc"; exec is the default
//
// In exec mode each call runs `path METHOD` with the params as JSON on
// stdin and takes the JSON its stdout holds when it exits 0. In rpc mode
// the plugin is started once, as `path` alone, and answers JSON-RPC 2.0
// requests with LSP framing on its stdio until its Host closes.
package plugins

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Files berth reads plugins from, in this order: a name declared twice keeps
// its first declaration.
const (
	CoreXFile = "/.plugin.toml"
	Dir       = "/etc/berth/plugins.d"
)

// Modes of a plugin.
const (
	ModeExec = "exec"
	ModeRPC  = "rpc"
)

// Plugin is one plugin an image declares.
type Plugin struct {
	Name    string
	Path    string // container path of the executable
	Exports []string
	Mode    string // ModeExec or ModeRPC
	Source  string // container path of the file that declares it
}

// Exported reports whether p exports method.
func (p Plugin) Exported(method string) bool { return slices.Contains(p.Exports, method) }

var (
	// ErrBadFile is a plugin file that doesn't parse or declares nonsense;
	// every such error is a *FileError.
	ErrBadFile = errors.New("bad plugin file")
	// ErrNoSuchPlugin is a call to a plugin the image doesn't declare.
	ErrNoSuchPlugin = errors.New("no such plugin")
	// ErrNotExported is a call to a method its plugin doesn't export.
	ErrNotExported = errors.New("method not exported")
	// ErrFailed is a plugin that exited non-zero, printed something other
	// than JSON, crashed, or answered with an error; see *CallError.
	ErrFailed = errors.New("plugin failed")
	// ErrTimeout is a plugin that didn't answer in time; it was killed.
	ErrTimeout = errors.New("plugin timed out")
)

// FileError is a bad plugin file, with the position of the problem when
// one is known (Line and Col are 1-based; 0 means unknown).
type FileError struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *FileError) Error() string {
	switch {
	case e.Line > 0 && e.Col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *FileError) Unwrap() error { return ErrBadFile }

// fileDecl is the TOML a plugin file holds.
type fileDecl struct {
	Plugin map[string]pluginDecl `toml:"plugin"`
}

type pluginDecl struct {
	Path        string   `toml:"path"`
	Exports     []string `toml:"exports"`
	Mode        string   `toml:"mode"`
	Description string   `toml:"description"` // read and ignored: coreX's files carry one
}

// validName and validMethod check a plugin's name and an exported
// method's: a letter, digit or _ first, then those, - and, in a method,
// any of "./:". Loops, not regexps, which every berth would compile at
// start-up.
func validName(s string) bool   { return word(s, "-") }
func validMethod(s string) bool { return word(s, "-./:") }

func word(s, more string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !alnum && (i == 0 || strings.IndexByte(more, c) < 0) {
			return false
		}
	}
	return s != ""
}

// Parse reads one plugin file. A file with a syntax error yields no plugins;
// a file whose plugins are partly wrong yields the good ones and an error
// per bad one. Plugins come sorted by name.
func Parse(file string, data []byte) ([]Plugin, []error) {
	var decl fileDecl
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&decl); err != nil {
		return nil, tomlErrors(file, err)
	}
	names := make([]string, 0, len(decl.Plugin))
	for n := range decl.Plugin {
		names = append(names, n)
	}
	slices.Sort(names)
	var (
		out  []Plugin
		errs []error
	)
	for _, n := range names {
		d := decl.Plugin[n]
		bad := func(format string, args ...any) {
			line := headerLine(data, n)
			errs = append(errs, &FileError{File: file, Line: line, Col: min(line, 1), Msg: fmt.Sprintf("plugin %q: ", n) + fmt.Sprintf(format, args...)})
		}
		switch {
		case !validName(n):
			bad("a name has letters, digits, _ and -, and no dot")
			continue
		case d.Path == "":
			bad("path: required")
			continue
		case !strings.HasPrefix(d.Path, "/"):
			bad("path: must be absolute, got %q", d.Path)
			continue
		case len(d.Exports) == 0:
			bad("exports: list at least one method")
			continue
		}
		mode := d.Mode
		switch mode {
		case "":
			mode = ModeExec
		case ModeExec, ModeRPC:
		default:
			bad("mode: must be exec or rpc, got %q", d.Mode)
			continue
		}
		ok := true
		for i, m := range d.Exports {
			if !validMethod(m) {
				bad("exports[%d]: %q is not a method name (letters, digits, _ . / : -, not starting with - . / :)", i, m)
				ok = false
				break
			}
			if slices.Contains(d.Exports[:i], m) {
				bad("exports[%d]: %q listed twice", i, m)
				ok = false
				break
			}
		}
		if ok {
			out = append(out, Plugin{Name: n, Path: d.Path, Exports: slices.Clone(d.Exports), Mode: mode, Source: file})
		}
	}
	return out, errs
}

// tomlErrors turns the TOML library's errors into FileErrors.
func tomlErrors(file string, err error) []error {
	var (
		de *toml.DecodeError
		se *toml.StrictMissingError
	)
	switch {
	case errors.As(err, &se):
		out := make([]error, 0, len(se.Errors))
		for _, e := range se.Errors {
			line, col := e.Position()
			out = append(out, &FileError{File: file, Line: line, Col: col, Msg: fmt.Sprintf("unknown key %q", strings.Join(e.Key(), "."))})
		}
		return out
	case errors.As(err, &de):
		line, col := de.Position()
		return []error{&FileError{File: file, Line: line, Col: col, Msg: strings.TrimPrefix(de.Error(), "toml: ")}}
	}
	return []error{&FileError{File: file, Msg: err.Error()}}
}

// headerLine finds the 1-based line of [plugin.NAME], or 0 when the plugin
// is declared some other way (an inline table).
func headerLine(data []byte, name string) int {
	forms := []string{"plugin." + name, `plugin."` + name + `"`, "plugin.'" + name + "'"}
	for i, line := range strings.Split(string(data), "\n") {
		l := strings.TrimSpace(line)
		if !strings.HasPrefix(l, "[") {
			continue
		}
		l = strings.TrimSpace(strings.TrimPrefix(l, "["))
		if j := strings.IndexByte(l, ']'); j >= 0 {
			l = strings.TrimSpace(l[:j])
		}
		l = strings.Join(strings.Fields(strings.ReplaceAll(l, ".", " . ")), "")
		if slices.Contains(forms, l) {
			return i + 1
		}
	}
	return 0
}
