package session

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// startedOutbox returns an outbox whose process has started.
func startedOutbox(b *budget, limit int) *outbox {
	o := newOutboxIn(b, limit)
	o.started()
	return o
}

// runStrings is run with the text as a string.
func (o *outbox) runStrings(output func(stream, text string)) {
	o.run(func(stream string, text []byte) { output(stream, string(text)) })
}

// describe names an outbox delivery compactly: long texts by size.
func describe(stream, text string) string {
	if len(text) > 16 {
		return fmt.Sprintf("%s:%d bytes", stream, len(text))
	}
	return stream + ":" + text
}

func TestOutboxOrderAndMerge(t *testing.T) {
	type op struct{ stream, text string }
	big := strings.Repeat("x", mergeLimit-1)
	tests := []struct {
		name string
		ops  []op
		want []string
	}{
		{"nothing but the exit", nil, []string{"exit"}},
		{"consecutive output merges", []op{{"stdout", "a"}, {"stdout", "b"}, {"stdout", "c"}}, []string{"stdout:abc", "exit"}},
		{"streams alternate", []op{{"stdout", "a"}, {"stderr", "b"}, {"stdout", "c"}, {"stdout", "d"}, {"stderr", "e"}},
			[]string{"stdout:a", "stderr:b", "stdout:cd", "stderr:e", "exit"}},
		{"merge stops at mergeLimit", []op{{"stdout", big}, {"stdout", "y"}, {"stdout", "z"}},
			[]string{fmt.Sprintf("stdout:%d bytes", mergeLimit), "stdout:z", "exit"}},
		{"one output over mergeLimit is kept whole", []op{{"stdout", "a"}, {"stdout", big + "yz"}, {"stdout", "b"}},
			[]string{"stdout:a", fmt.Sprintf("stdout:%d bytes", mergeLimit+1), "stdout:b", "exit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := startedOutbox(newBudget(budgetLimit), outboxLimit)
			var got []string
			for _, op := range tt.ops {
				o.output(op.stream, []byte(op.text))
			}
			o.exit(func() { got = append(got, "exit") })
			o.release()
			// Everything is queued: run delivers it all and returns.
			o.runStrings(func(stream, text string) { got = append(got, describe(stream, text)) })
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("deliveries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOutboxHoldsUntilRelease(t *testing.T) {
	o := startedOutbox(newBudget(budgetLimit), outboxLimit)
	delivered := make(chan string, 10)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		o.runStrings(func(stream, text string) { delivered <- describe(stream, text) })
	})
	o.output("stdout", []byte("early"))
	o.exit(func() { delivered <- "exit" })
	// A negative can only be checked for a while.
	select {
	case d := <-delivered:
		t.Fatalf("delivered %q before release", d)
	case <-time.After(50 * time.Millisecond):
	}
	o.release()
	var got []string
	for len(got) < 2 {
		select {
		case d := <-delivered:
			got = append(got, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("deliveries stalled after release; got %q", got)
		}
	}
	if diff := cmp.Diff([]string{"stdout:early", "exit"}, got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
}

// TestOutboxConcurrentStreams feeds both streams from their own goroutines
// while run delivers, as a process's two copiers do.
func TestOutboxConcurrentStreams(t *testing.T) {
	o := startedOutbox(newBudget(budgetLimit), outboxLimit)
	o.release()
	var want [2]strings.Builder
	streams := [2]string{"stdout", "stderr"}
	for i := range 2000 {
		want[0].WriteString(fmt.Sprintf("o%d\n", i))
		want[1].WriteString(fmt.Sprintf("e%d\n", i))
	}
	var (
		got    = map[string]*strings.Builder{"stdout": {}, "stderr": {}}
		last   string
		wg     sync.WaitGroup
		writes sync.WaitGroup
	)
	wg.Go(func() {
		o.runStrings(func(stream, text string) {
			got[stream].WriteString(text)
			last = stream
		})
	})
	for s := range 2 {
		writes.Go(func() {
			for line := range strings.Lines(want[s].String()) {
				o.output(streams[s], []byte(line))
			}
		})
	}
	writes.Wait()
	o.exit(func() { last = "exit" })
	wg.Wait()
	for s := range 2 {
		if g := got[streams[s]].String(); g != want[s].String() {
			t.Errorf("%s: got %d bytes, want %d, in order", streams[s], len(g), want[s].Len())
		}
	}
	if last != "exit" {
		t.Errorf("last delivery was %q, want the exit", last)
	}
}

// TestOutboxLimits blocks a writer on its outbox's limit or on the shared
// budget, checks that it stays blocked, then lets it through by draining an
// outbox (releasing it to its sink) or by closing one. In the end every
// piece has been delivered, in order, and the budget is whole again.
func TestOutboxLimits(t *testing.T) {
	const size = 100
	const cost = size + pieceCost
	type write struct{ box, size int }
	type action struct {
		close bool // close the box; else release it, so that its sink drains it
		box   int
	}
	tests := []struct {
		name          string
		limit, budget int
		through       []write // each goes through at once, in order
		blocked       write   // then this one blocks
		unblock       action  // until this is done
	}{
		{"the outbox limit blocks its writer until the sink drains", 3 * cost, 100 * cost,
			[]write{{0, size}, {0, size}, {0, size}}, write{0, size}, action{false, 0}},
		{"a piece over the limit passes an empty outbox, and then blocks the next", cost, 100 * cost,
			[]write{{0, 5 * size}}, write{0, size}, action{false, 0}},
		{"the budget blocks another process's writer until the first one's sink drains", 100 * cost, 2 * cost,
			[]write{{0, size}, {0, size}}, write{1, size}, action{false, 0}},
		{"any outbox draining makes room in the budget", 100 * cost, 3 * cost,
			[]write{{0, size}, {1, size}, {2, size}}, write{1, size}, action{false, 2}},
		{"closing releases the outbox, so that its sink drains it", 2 * cost, 100 * cost,
			[]write{{0, size}, {0, size}}, write{0, size}, action{true, 0}},
		{"closing unblocks a writer held by the budget that others still hold", 100 * cost, 2 * cost,
			[]write{{0, size}, {0, size}}, write{1, size}, action{true, 1}},
		{"closing the outbox that holds the budget lets the others through", 100 * cost, 2 * cost,
			[]write{{0, size}, {0, size}}, write{1, size}, action{true, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(tt.budget)
			boxes := make([]*outbox, 3)
			got := make([]strings.Builder, len(boxes))
			var wg sync.WaitGroup
			for i := range boxes {
				boxes[i] = startedOutbox(b, tt.limit)
				wg.Go(func() {
					boxes[i].runStrings(func(stream, text string) { got[i].WriteString(text) })
				})
			}
			var want [3]strings.Builder
			letter := 'a'
			write := func(w write) <-chan struct{} {
				text := strings.Repeat(string(letter), w.size)
				letter++
				want[w.box].WriteString(text)
				done := make(chan struct{})
				go func() {
					defer close(done)
					boxes[w.box].output("stdout", []byte(text))
				}()
				return done
			}
			for i, w := range tt.through {
				select {
				case <-write(w):
				case <-time.After(10 * time.Second):
					t.Fatalf("write %d (%+v) blocked", i, w)
				}
			}
			blocked := write(tt.blocked)
			select {
			case <-blocked:
				t.Fatalf("write %+v went through, want it blocked", tt.blocked)
			case <-time.After(50 * time.Millisecond):
			}
			if tt.unblock.close {
				boxes[tt.unblock.box].close()
			} else {
				boxes[tt.unblock.box].release()
			}
			select {
			case <-blocked:
			case <-time.After(10 * time.Second):
				t.Fatalf("write %+v still blocked after %+v", tt.blocked, tt.unblock)
			}

			exits := make([]bool, len(boxes))
			for i, o := range boxes {
				o.exit(func() { exits[i] = true })
				o.release()
			}
			wg.Wait()
			for i := range boxes {
				if g, w := got[i].String(), want[i].String(); g != w {
					t.Errorf("box %d delivered %q, want %q", i, g, w)
				}
				if !exits[i] {
					t.Errorf("box %d: no exit delivered", i)
				}
				if boxes[i].held != 0 {
					t.Errorf("box %d holds %d bytes after its exit", i, boxes[i].held)
				}
			}
			if b.used != 0 || len(b.waiting) != 0 {
				t.Errorf("budget: %d bytes used, %d waiters after every exit", b.used, len(b.waiting))
			}
		})
	}
}

// TestOutboxUnderPressure runs processes whose outboxes and shared budget
// hold a few pieces each, with sinks that take their time: every stream
// arrives whole and in order, each exit comes last, and neither limit is
// passed (closed outboxes may pass the budget by their own limits).
func TestOutboxUnderPressure(t *testing.T) {
	tests := []struct {
		name          string
		boxes         int
		limit, budget int // in pieces of at most 8 bytes
		closed        int // boxes closed as they start
	}{
		{"outbox limits", 4, 2, 100, 0},
		{"shared budget", 4, 100, 3, 0},
		{"both tight", 8, 2, 5, 0},
		{"both tight, half of them closed", 8, 2, 5, 4},
	}
	const lines = 300
	const piece = 8 + pieceCost
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(tt.budget * piece)
			type result struct {
				got  map[string]*strings.Builder
				last string
			}
			results := make([]result, tt.boxes)
			var (
				mu        sync.Mutex // guards maxUsed and maxHeld
				maxUsed   int
				maxHeld   int
				wg        sync.WaitGroup
				processes sync.WaitGroup
			)
			for i := range tt.boxes {
				o := startedOutbox(b, tt.limit*piece)
				results[i].got = map[string]*strings.Builder{"stdout": {}, "stderr": {}}
				wg.Go(func() {
					o.runStrings(func(stream, text string) {
						b.mu.Lock()
						used := b.used
						b.mu.Unlock()
						o.mu.Lock()
						held := o.held
						o.mu.Unlock()
						mu.Lock()
						maxUsed, maxHeld = max(maxUsed, used), max(maxHeld, held)
						mu.Unlock()
						results[i].got[stream].WriteString(text)
						results[i].last = stream
						time.Sleep(10 * time.Microsecond)
					})
				})
				if i < tt.closed {
					o.close()
				} else {
					o.release()
				}
				processes.Go(func() {
					// A process: two copiers, then the exit after both.
					var copiers sync.WaitGroup
					for _, stream := range []string{"stdout", "stderr"} {
						copiers.Go(func() {
							for n := range lines {
								o.output(stream, []byte(fmt.Sprintf("%c%d.%d\n", stream[3], i, n)))
							}
						})
					}
					copiers.Wait()
					o.exit(func() { results[i].last = "exit" })
				})
			}
			processes.Wait()
			wg.Wait()
			for i, r := range results {
				for _, stream := range []string{"stdout", "stderr"} {
					var want strings.Builder
					for n := range lines {
						fmt.Fprintf(&want, "%c%d.%d\n", stream[3], i, n)
					}
					if g := r.got[stream].String(); g != want.String() {
						t.Errorf("box %d %s: got %d bytes, want %d, in order", i, stream, len(g), want.Len())
					}
				}
				if r.last != "exit" {
					t.Errorf("box %d: last delivery was %q, want the exit", i, r.last)
				}
			}
			if limit := (tt.budget + tt.closed*tt.limit) * piece; maxUsed > limit {
				t.Errorf("budget reached %d bytes, over %d", maxUsed, limit)
			}
			if maxHeld > tt.limit*piece {
				t.Errorf("an outbox held %d bytes, over its %d", maxHeld, tt.limit*piece)
			}
			if b.used != 0 {
				t.Errorf("budget: %d bytes used after every exit", b.used)
			}
		})
	}
}

// TestOutboxBeforeStart checks that writers don't wait while the backend
// is starting the process, whatever the limits, and that what they queued
// then counts once it has started.
func TestOutboxBeforeStart(t *testing.T) {
	const size = 100
	const cost = size + pieceCost
	b := newBudget(2 * cost)
	o := newOutboxIn(b, 2*cost)
	for range 5 {
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			o.output("stdout", []byte(strings.Repeat("x", size)))
		}()
		select {
		case <-wrote:
		case <-time.After(10 * time.Second):
			t.Fatal("a write blocked before the process started")
		}
	}
	if b.used != 0 {
		t.Errorf("budget: %d bytes used before the start, want none", b.used)
	}
	o.started()
	if b.used != 5*cost {
		t.Errorf("budget: %d bytes used after the start, want the %d queued", b.used, 5*cost)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		o.output("stderr", []byte(strings.Repeat("y", size)))
	}()
	select {
	case <-wrote:
		t.Fatal("a write went through a full outbox after the start")
	case <-time.After(50 * time.Millisecond):
	}
	var got []string
	var wg sync.WaitGroup
	wg.Go(func() { o.runStrings(func(stream, text string) { got = append(got, describe(stream, text)) }) })
	o.release()
	<-wrote
	o.exit(func() { got = append(got, "exit") })
	wg.Wait()
	if diff := cmp.Diff([]string{"stdout:500 bytes", "stderr:100 bytes", "exit"}, got); diff != "" {
		t.Errorf("deliveries (-want +got):\n%s", diff)
	}
	if b.used != 0 {
		t.Errorf("budget: %d bytes used after the exit", b.used)
	}
}

func TestTextWriterPieces(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"ascii", strings.Repeat("0123456789\n", 3*mergeLimit/11+5)},
		{"runes of every length", strings.Repeat(mixed, 3*mergeLimit/len(mixed)+1)},
		{"runes shifted", "ab" + strings.Repeat("😀", mergeLimit/2)},
		{"continuation bytes without a start", strings.Repeat("\x80", 2*mergeLimit+3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got emits
			tw := &textWriter{emit: got.emit}
			tw.Write([]byte(tt.in))
			tw.flush()
			for i, s := range got {
				if len(s) > mergeLimit {
					t.Errorf("piece %d has %d bytes, over mergeLimit", i, len(s))
				}
				if utf8.ValidString(tt.in) && !utf8.ValidString(s) {
					t.Errorf("piece %d splits a rune", i)
				}
			}
			if len(got) < 2 {
				t.Errorf("%d pieces for %d bytes", len(got), len(tt.in))
			}
			if strings.Join(got, "") != tt.in {
				t.Error("pieces don't join to the input")
			}
		})
	}
}

// TestOutboxSendsIdleDirectly checks that, with the sink idle and nothing
// queued, a writer's text reaches the sink as it is, not a copy.
func TestOutboxSendsIdleDirectly(t *testing.T) {
	o := startedOutbox(newBudget(budgetLimit), outboxLimit)
	o.release()
	var seen []*byte
	var wg sync.WaitGroup
	wg.Go(func() {
		o.run(func(stream string, text []byte) { seen = append(seen, &text[0]) })
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		o.mu.Lock()
		ready := o.sink != nil
		o.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run never took its sink")
		}
		time.Sleep(time.Millisecond)
	}
	p := []byte("hello\n")
	o.output("stdout", p)
	o.exit(func() {})
	wg.Wait()
	if len(seen) != 1 || seen[0] != &p[0] {
		t.Errorf("sink got %d sends, want the writer's own bytes once", len(seen))
	}
	if o.held != 0 {
		t.Errorf("outbox holds %d after the exit", o.held)
	}
}
