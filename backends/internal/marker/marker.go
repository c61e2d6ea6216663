// Package marker reads the first line a backend's exec wrapper writes on
// stderr (its pid, or word that the command is missing) and passes the rest
// of the stream through untouched. The Docker and Incus backends share it.
package marker

import (
	"bytes"
	"io"
)

// maxLine bounds the first line: anything longer is not the wrapper's.
const maxLine = 256

// Writer passes stderr through, except that it offers the first line to
// OnLine and drops it if OnLine claims it. It is written from one
// goroutine; Flush and First may be called from another only once that
// goroutine's writes have ended and something (a channel close, a
// WaitGroup) says so.
type Writer struct {
	w      io.Writer
	onLine func(string) bool
	buf    []byte
	passed bool   // first line handled; everything goes straight through
	first  string // the first line, when OnLine did not claim it
}

// New returns a Writer onto w; onLine returns true for a line it claims.
func New(w io.Writer, onLine func(string) bool) *Writer {
	return &Writer{w: w, onLine: onLine}
}

// Pass makes the Writer pass everything through from the start, for execs
// that run without the wrapper.
func (m *Writer) Pass() { m.passed = true }

// First returns the first line if it was not claimed: the engine's own
// message when the wrapper never ran.
func (m *Writer) First() string { return m.first }

// Write implements io.Writer.
func (m *Writer) Write(p []byte) (int, error) {
	if m.passed {
		return m.w.Write(p)
	}
	m.buf = append(m.buf, p...)
	i := bytes.IndexByte(m.buf, '\n')
	if i < 0 {
		if len(m.buf) > maxLine {
			m.passed = true
			m.onLine("")
			_, err := m.w.Write(m.buf)
			m.buf = nil
			return len(p), err
		}
		return len(p), nil
	}
	m.passed = true
	line, rest := string(m.buf[:i]), m.buf[i+1:]
	if !m.onLine(line) {
		rest = m.buf
		m.first = line
	}
	var err error
	if len(rest) > 0 {
		_, err = m.w.Write(rest)
	}
	m.buf = nil
	return len(p), err
}

// Flush offers a partial first line when the stream ended without a
// newline.
func (m *Writer) Flush() {
	if !m.passed && len(m.buf) > 0 {
		m.passed = true
		if !m.onLine(string(m.buf)) {
			m.first = string(m.buf)
			_, _ = m.w.Write(m.buf)
		}
		m.buf = nil
	}
}
