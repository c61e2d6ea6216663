// Package tools builds the command lines of the test runners, linters,
// interpreters and debug adapters berth runs inside a container, and parses
// what those tools report into editor-ready values.
//
// Everything here is pure: other code runs the commands and hands over their
// output as bytes. Paths stay container paths. Tools report them absolute or
// relative to the directory they ran in; this package makes them absolute and
// clean with the path package (containers are Linux, whatever the host), and
// the caller maps them to the host.
package tools

import (
	"errors"
	"math"
	"path"
	"strings"
)

var (
	// ErrBadReport means a tool's output could not be parsed.
	ErrBadReport = errors.New("malformed tool report")
	// ErrBadFormat means an errorformat string could not be compiled.
	ErrBadFormat = errors.New("bad errorformat")
	// ErrBadRequest means a debug request or a selection of tests is
	// incomplete or contradictory.
	ErrBadRequest = errors.New("bad request")
)

// messageLines caps the lines kept in a message: editors show it inline, and
// the whole log is a click away in the runner's output anyway.
const messageLines = 10

// resolve makes p absolute against cwd and cleans it. An empty p stays empty,
// and a relative p with no cwd is only cleaned.
func resolve(cwd, p string) string {
	if p == "" {
		return ""
	}
	if !path.IsAbs(p) && cwd != "" {
		p = path.Join(cwd, p)
	}
	return path.Clean(p)
}

// maxMillis (35 years) caps a duration so that sums of them cannot overflow.
const maxMillis = 1 << 40

// millis converts seconds to whole milliseconds, treating nonsense as 0.
func millis(sec float64) int64 {
	if math.IsNaN(sec) || sec <= 0 {
		return 0
	}
	return int64(math.Min(math.Round(sec*1000), maxMillis))
}

// firstLines trims s and keeps at most messageLines lines of it.
func firstLines(s string) string {
	s = strings.Trim(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > messageLines {
		lines = append(lines[:messageLines], "…")
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// splitLines splits output into lines without their "\r\n" or "\n".
func splitLines(b []byte) []string {
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}
