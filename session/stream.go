package session

import (
	"io"
	"sync"
	"unicode/utf8"

	"github.com/berthdev/berth/pathmap"
)

// gate holds a process's events until release, then passes them through in
// the order they arrived.
type gate struct {
	mu    sync.Mutex // guards the following
	open  bool
	queue []func()
}

func (g *gate) do(f func()) {
	g.mu.Lock()
	if !g.open {
		g.queue = append(g.queue, f)
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	f()
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return
	}
	// Drain under the lock so that later events wait their turn.
	for _, f := range g.queue {
		f()
	}
	g.queue, g.open = nil, true
}

// streamWriter turns one output stream into text events: container paths
// rewritten to host paths, and never a UTF-8 sequence split across events.
type streamWriter struct {
	w    io.Writer // the path rewriter, or the text emitter directly
	pm   *pathmap.Writer
	text *textWriter
}

func newStreamWriter(m *pathmap.Mapper, mapPaths bool, emit func(string)) *streamWriter {
	tw := &textWriter{emit: emit}
	sw := &streamWriter{w: tw, text: tw}
	if mapPaths {
		sw.pm = m.NewWriter(tw)
		sw.w = sw.pm
	}
	return sw
}

func (s *streamWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

// Flush emits everything held back; call it once the stream has ended.
func (s *streamWriter) Flush() {
	if s.pm != nil {
		_ = s.pm.Flush()
	}
	s.text.flush()
}

// textWriter emits complete UTF-8 text, holding back at most a partial
// trailing rune until the next write.
type textWriter struct {
	emit    func(string)
	pending []byte
}

func (t *textWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(t.pending) > 0 {
		p = append(t.pending, p...)
		t.pending = nil
	}
	cut := completePrefix(p)
	if cut < len(p) {
		t.pending = append([]byte(nil), p[cut:]...)
	}
	if cut > 0 {
		t.emit(string(p[:cut]))
	}
	return n, nil
}

func (t *textWriter) flush() {
	if len(t.pending) > 0 {
		t.emit(string(t.pending))
		t.pending = nil
	}
}

// completePrefix returns the length of p without a trailing incomplete
// (but so far valid) UTF-8 sequence.
func completePrefix(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if !utf8.RuneStart(p[i]) {
			continue
		}
		if !utf8.FullRune(p[i:]) {
			return i
		}
		break
	}
	return len(p)
}

// stdinQueue is a process's stdin: writes queue without blocking, and the
// backend reads them in order. close after the queued text means EOF.
type stdinQueue struct {
	mu     sync.Mutex // guards the following
	buf    []byte
	eof    bool          // no more writes; EOF after buf drains
	closed bool          // reader side closed: the process is gone
	ready  chan struct{} // closed and replaced when state changes
}

func newStdinQueue() *stdinQueue { return &stdinQueue{ready: make(chan struct{})} }

func (q *stdinQueue) write(text string, eof bool) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.eof || q.closed {
		return ErrStdinClosed
	}
	q.buf = append(q.buf, text...)
	q.eof = eof
	close(q.ready)
	q.ready = make(chan struct{})
	return nil
}

// Read implements io.Reader for the backend's stdin copier.
func (q *stdinQueue) Read(p []byte) (int, error) {
	for {
		q.mu.Lock()
		switch {
		case q.closed:
			q.mu.Unlock()
			return 0, io.ErrClosedPipe
		case len(q.buf) > 0:
			n := copy(p, q.buf)
			q.buf = q.buf[n:]
			q.mu.Unlock()
			return n, nil
		case q.eof:
			q.mu.Unlock()
			return 0, io.EOF
		}
		ready := q.ready
		q.mu.Unlock()
		<-ready
	}
}

// Close is called by the backend when the process has exited; it unblocks
// a pending Read.
func (q *stdinQueue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ready)
		q.ready = make(chan struct{})
	}
	return nil
}
