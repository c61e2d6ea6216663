package session

import (
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/berthdev/berth/pathmap"
)

// outbox carries a process's events to its sink on one sender goroutine.
// It holds them until release, so a client learns the pid before it sees
// output for it; it merges consecutive output of one stream while the sink
// is busy, so a chatty process costs few notifications; and it blocks the
// writers when too much is queued, so a slow client slows the process
// rather than growing memory.
type outbox struct {
	mu       sync.Mutex // guards the following
	cond     *sync.Cond // signalled on every change
	events   []event
	queued   int // bytes of output in events
	released bool
	done     bool // the exit event is queued
}

type event struct {
	stream string   // "stdout" or "stderr"; empty for the exit event
	parts  []string // output, merged by keeping the pieces: joined once, at send
	size   int      // bytes in parts
	exit   func()
}

// outboxLimit bounds queued output before writers block; mergeLimit bounds
// one merged notification.
const (
	outboxLimit = 8 << 20
	mergeLimit  = 1 << 20
)

func newOutbox() *outbox {
	o := &outbox{}
	o.cond = sync.NewCond(&o.mu)
	return o
}

func (o *outbox) output(stream, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.queued > outboxLimit && !o.done {
		o.cond.Wait()
	}
	if n := len(o.events); n > 0 && o.events[n-1].stream == stream && o.events[n-1].size+len(text) <= mergeLimit {
		o.events[n-1].parts = append(o.events[n-1].parts, text)
		o.events[n-1].size += len(text)
	} else {
		o.events = append(o.events, event{stream: stream, parts: []string{text}, size: len(text)})
	}
	o.queued += len(text)
	o.cond.Broadcast()
}

// exit queues the last event.
func (o *outbox) exit(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, event{exit: f})
	o.done = true
	o.cond.Broadcast()
}

func (o *outbox) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.released = true
	o.cond.Broadcast()
}

// run sends events until the exit event has been sent.
func (o *outbox) run(output func(stream, text string)) {
	for {
		o.mu.Lock()
		for !o.released || len(o.events) == 0 {
			o.cond.Wait()
		}
		ev := o.events[0]
		o.events[0] = event{}
		o.events = o.events[1:]
		o.queued -= ev.size
		o.cond.Broadcast()
		o.mu.Unlock()
		if ev.exit != nil {
			ev.exit()
			return
		}
		output(ev.stream, join(ev.parts, ev.size))
	}
}

// join concatenates parts with one copy, or none for a single part.
func join(parts []string, size int) string {
	if len(parts) == 1 {
		return parts[0]
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range parts {
		b.WriteString(p)
	}
	return b.String()
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
