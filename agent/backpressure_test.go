//go:build linux

package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
)

// gate is an output writer that takes nothing until it is opened.
type gate struct {
	first chan struct{} // closed at the first write
	open  chan struct{} // closed to let writes through
	once  sync.Once
	n     atomic.Int64 // bytes taken
}

func newGate() *gate { return &gate{first: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.first) })
	<-g.open
	g.n.Add(int64(len(p)))
	return len(p), nil
}

// written is how many bytes a host process has written, from /proc.
func written(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no wchar in /proc/%d/io", pid)
	return 0
}

// TestBlockedStream checks backpressure through the agent. A process whose
// output the writer doesn't take stops on its writes, with little of it in
// flight, while another process on the same session runs to its end. Kill
// then waits for the held output rather than cutting it off, and all of it
// arrives, before the exit.
func TestBlockedStream(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g := newGate()
	p, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"yes"}, Stdout: g, Stderr: io.Discard}, nil)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	proc := p.(*process)
	t.Cleanup(func() {
		killGroup(proc.PID())
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	})
	select {
	case <-g.first:
	case <-time.After(10 * time.Second):
		t.Fatal("no output from yes")
	}

	var n int64
	for deadline := time.Now().Add(10 * time.Second); ; {
		before := written(t, proc.PID())
		time.Sleep(200 * time.Millisecond)
		if n = written(t, proc.PID()); n == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("yes is still writing after %d bytes", n)
		}
	}
	// In flight: the gate's frame, the read-ahead, the stream window, the
	// agent's blocked frame and the pipe.
	if limit := int64(2 << 20); n > limit {
		t.Errorf("yes wrote %d bytes before it blocked, want at most %d", n, limit)
	}

	res, err := run(t, c, backends.ExecSpec{Argv: []string{"seq", "1", "100000"}}, nil)
	if err != nil || res.Stdout != seq(1, 100000) {
		t.Errorf("a second process while the first is blocked: %d bytes of output, %v; want all of seq's", len(res.Stdout), err)
	}

	killed := make(chan error, 1)
	go func() { killed <- p.Kill(ctx) }()
	select {
	case err := <-killed:
		t.Fatalf("Kill returned (%v) while the process's output was held", err)
	case <-time.After(killWait + time.Second):
	}
	close(g.open)
	if err := <-killed; err != nil {
		t.Errorf("Kill: %v", err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait after Kill: %v", err)
	}
	if want := (backends.ExitStatus{Code: 137, Signal: "SIGKILL"}); st != want {
		t.Errorf("Wait after Kill = %+v, want %+v", st, want)
	}
	if got := g.n.Load(); got < n {
		t.Errorf("got %d bytes of output, want all %d that yes wrote", got, n)
	}
}

// TestExitNotStalledByChattyChild checks that the wait for a process's own
// output doesn't become a wait for a child's that never ends: a child that
// writes forever to the inherited stdout still gets only drainGrace.
func TestExitNotStalledByChattyChild(t *testing.T) {
	t.Parallel()
	c, _ := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	p, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"sh", "-c", "yes & echo started"}, Stdout: io.Discard, Stderr: io.Discard}, nil)
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	t.Cleanup(func() { killGroup(p.(*process).PID()) })
	st, err := p.Wait(ctx)
	if err != nil || st != (backends.ExitStatus{}) {
		t.Fatalf("Wait = %+v, %v; want exit 0", st, err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Wait took %v with a child writing to stdout, want about drainGrace (%v)", elapsed, drainGrace)
	}
}
