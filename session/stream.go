package session

import (
	"io"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/berthdev/berth/pathmap"
)

// Output buffering. A process's output waits in its outbox until the sink
// takes it. A writer that would pass either limit below blocks until the
// sink catches up, so berth stops reading that process's output: the
// agent's stream window then fills and the agent stops reading the
// process's pipes, or, with plain engine exec, the engine's connection
// stops being read. Either way the process blocks on its writes. Output is
// never dropped while the client is there.
const (
	// outboxLimit bounds the output one process holds in berth, queued or
	// being sent.
	outboxLimit = 128 << 10
	// budgetLimit bounds the output every outbox of one berth process
	// holds together.
	budgetLimit = 32 << 20
	// mergeLimit bounds one notification, and one piece of output: writes
	// are cut into pieces of at most this size.
	mergeLimit = 64 << 10
	// pieceCost is what a queued piece costs beyond its bytes (its string
	// header and allocation slack), so that a process writing a byte at a
	// time is held to the limits too.
	pieceCost = 32
)

// outputBudget is the budget every outbox of this berth process shares.
var outputBudget = newBudget(budgetLimit)

// outbox carries a process's events to its sink on one sender goroutine.
// It holds them until release, so a client learns the pid before it sees
// output for it; it merges consecutive output of one stream while the sink
// is busy, so a chatty process costs few notifications; and, once the
// process has started, it blocks the writers while the process holds limit
// bytes or the shared budget is spent, so a slow client slows the process
// rather than growing memory.
//
// Writers are a process's two stream copiers, each calling output from one
// goroutine; run is the sender. When nothing is queued and the sink is
// idle, a writer hands its text to the sink itself: no copy, and no
// hand-off to run, while the client keeps up. Either way one goroutine at
// a time is in the sink, and events reach it in order. Bytes count
// against the outbox and the budget from output until the sink has
// returned.
type outbox struct {
	limit  int
	budget *budget
	// free is set while writers don't wait on the budget: until the
	// process has started, and once the outbox is closed.
	free atomic.Bool

	mu       sync.Mutex // guards the following
	cond     *sync.Cond // signalled on every change
	events   []event
	held     int  // cost of output queued or being sent
	starting bool // the backend is starting the process: no limits, nothing charged to the budget
	closed   bool
	released bool
	done     bool                             // the exit event is queued
	sending  bool                             // a goroutine is in the sink
	sink     func(stream string, text []byte) // run's output, once run has started
}

type event struct {
	stream string // "stdout" or "stderr"; empty for the exit event
	buf    []byte // output, merged by copying each piece in: from getBuf
	cost   int    // len(buf) plus pieceCost per piece
	exit   func()
}

func newOutbox() *outbox { return newOutboxIn(outputBudget, outboxLimit) }

// newOutboxIn returns an outbox that holds at most limit bytes of output
// and draws on b, once started.
func newOutboxIn(b *budget, limit int) *outbox {
	o := &outbox{limit: limit, budget: b, starting: true}
	o.free.Store(true)
	o.cond = sync.NewCond(&o.mu)
	return o
}

// started says that the backend has started the process: writers wait for
// room from now on. Until then they don't, because a backend may need its
// output to flow before its start returns (Docker's passes on what it held
// back once the wrapper has reported). It must come before run.
func (o *outbox) started() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.starting {
		return
	}
	o.starting = false
	o.budget.charge(o.held)
	if !o.closed {
		o.free.Store(false)
	}
}

// output queues a copy of text, or sends it (see outbox). Once the process
// has started it blocks
// while the outbox is full and, unless the outbox is closed, while the
// budget is spent; a piece larger than a limit goes through once nothing
// else is held. Text after the exit event is dropped: nobody would send it.
func (o *outbox) output(stream string, text []byte) {
	cost := len(text) + pieceCost
	o.mu.Lock()
	for !o.starting && o.held > 0 && o.held+cost > o.limit && !o.done {
		o.cond.Wait()
	}
	if o.done {
		o.mu.Unlock()
		return
	}
	o.held += cost // reserved while waiting on the budget
	if !o.starting {
		o.mu.Unlock()
		o.budget.acquire(cost, &o.free)
		o.mu.Lock()
	}
	if o.released && !o.starting && !o.sending && len(o.events) == 0 && o.sink != nil {
		// The sink is idle and nothing waits: send from here.
		o.sending = true
		sink := o.sink
		o.mu.Unlock()
		sink(stream, text)
		o.sent(cost)
		return
	}
	defer o.mu.Unlock()
	if n := len(o.events); n > 0 && o.events[n-1].stream == stream && len(o.events[n-1].buf)+len(text) <= mergeLimit {
		ev := &o.events[n-1]
		ev.buf = appendBuf(ev.buf, text)
		ev.cost += cost
	} else {
		o.events = append(o.events, event{stream: stream, buf: appendBuf(nil, text), cost: cost})
	}
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

// close is for a client that is going away. It releases the outbox, and
// its writers stop waiting on the shared budget (they still count in it),
// so a closing client never waits on another client's slow editor. Its
// own limit still holds, and every piece of output is still delivered
// before the exit event.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.free.Store(true)
	o.released = true
	o.cond.Broadcast()
	o.mu.Unlock()
	o.budget.wake()
}

// run sends events until the exit event has been sent. text is only valid
// during the call to output: its buffer is reused.
func (o *outbox) run(output func(stream string, text []byte)) {
	o.mu.Lock()
	o.sink = output
	o.mu.Unlock()
	for {
		o.mu.Lock()
		for !o.released || len(o.events) == 0 || o.sending {
			o.cond.Wait()
		}
		ev := o.events[0]
		o.events[0] = event{}
		o.events = o.events[1:]
		if ev.exit != nil {
			o.mu.Unlock()
			ev.exit()
			return
		}
		o.sending = true
		o.mu.Unlock()
		output(ev.stream, ev.buf)
		putBuf(ev.buf)
		o.sent(ev.cost)
	}
}

// sent ends a send of output that cost cost.
func (o *outbox) sent(cost int) {
	o.mu.Lock()
	o.sending = false
	o.held -= cost
	o.cond.Broadcast()
	o.mu.Unlock()
	o.budget.release(cost)
}

// budget is output buffering shared by outboxes. Bytes are granted in the
// order they were asked for, so a large piece is not passed over forever
// by small ones.
type budget struct {
	limit int

	mu      sync.Mutex // guards the following
	cond    *sync.Cond // signalled when bytes return, a waiter leaves, or an outbox closes
	used    int
	next    uint64   // the next waiter's ticket
	waiting []uint64 // tickets of blocked acquires, oldest first
}

func newBudget(limit int) *budget {
	b := &budget{limit: limit}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire takes n bytes, waiting while they don't fit; n fits an unused
// budget whatever its size. While force is set (or once it is set and wake
// called) it takes them without waiting, past the limit if need be.
func (b *budget) acquire(n int, force *atomic.Bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiting) == 0 && b.fits(n) || force.Load() {
		b.used += n
		return
	}
	t := b.next
	b.next++
	b.waiting = append(b.waiting, t)
	for b.waiting[0] != t || !b.fits(n) {
		if force.Load() {
			break
		}
		b.cond.Wait()
	}
	b.waiting = slices.DeleteFunc(b.waiting, func(w uint64) bool { return w == t })
	b.used += n
	b.cond.Broadcast() // the next in line may fit too
}

func (b *budget) fits(n int) bool { return b.used == 0 || b.used+n <= b.limit }

// charge takes n bytes without waiting.
func (b *budget) charge(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += n
}

func (b *budget) release(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.cond.Broadcast()
}

// wake makes blocked acquires look at their force flags again.
func (b *budget) wake() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cond.Broadcast()
}

// Output buffers. An event's bytes live in one buffer; a small one is
// grown by append, one of minPooled bytes or more comes from a pool by
// its power-of-two size, up to mergeLimit. Either way a buffer holds at
// least half its capacity, so the limits above, counted in bytes of
// output, bound memory to twice them; and a busy process's 64 KiB
// notifications reuse the same few buffers rather than asking the garbage
// collector for new ones.
const minPooled = 4 << 10

var bufPools [5]sync.Pool // bufPools[i] holds buffers of minPooled<<i bytes, up to mergeLimit

// appendBuf appends p to buf, moving to a larger buffer as needed.
func appendBuf(buf, p []byte) []byte {
	need := len(buf) + len(p)
	if need <= cap(buf) {
		return append(buf, p...)
	}
	if need < minPooled || need > mergeLimit {
		// Small (append doubles it), or a piece larger than any pooled
		// buffer (kept whole, at its size).
		return append(buf, p...)
	}
	i := bits.Len(uint((need - 1) / minPooled))
	nb, _ := bufPools[i].Get().([]byte)
	if nb == nil {
		nb = make([]byte, 0, minPooled<<i)
	}
	nb = append(append(nb[:0], buf...), p...)
	putBuf(buf)
	return nb
}

// putBuf returns a buffer from appendBuf to its pool, if it came from one.
func putBuf(buf []byte) {
	c := cap(buf)
	if c < minPooled || c > mergeLimit || c&(c-1) != 0 {
		return
	}
	bufPools[bits.Len(uint(c/minPooled))-1].Put(buf[:0]) //nolint:staticcheck // the slice header's allocation is small beside the buffer
}

// streamWriter turns one output stream into text events: container paths
// rewritten to host paths, and never a UTF-8 sequence split across events.
type streamWriter struct {
	w    io.Writer // the path rewriter, or the text emitter directly
	pm   *pathmap.Writer
	text *textWriter
}

func newStreamWriter(m *pathmap.Mapper, mapPaths bool, emit func([]byte)) *streamWriter {
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

// textWriter emits complete UTF-8 text in pieces of at most mergeLimit
// bytes, holding back at most a partial trailing rune until the next write.
// A piece is only valid during the call to emit.
type textWriter struct {
	emit    func([]byte)
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
	t.emitPieces(p[:cut])
	return n, nil
}

// emitPieces emits p in pieces of at most mergeLimit bytes, each cut
// before a rune start where there is one within a rune's length.
func (t *textWriter) emitPieces(p []byte) {
	for len(p) > 0 {
		end := len(p)
		if end > mergeLimit {
			end = mergeLimit
			for i := end; i > 0 && i > mergeLimit-utf8.UTFMax; i-- {
				if utf8.RuneStart(p[i]) {
					end = i
					break
				}
			}
		}
		t.emit(p[:end])
		p = p[end:]
	}
}

func (t *textWriter) flush() {
	if len(t.pending) > 0 {
		t.emit(t.pending)
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
