//go:build linux

package agent

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/berthdev/berth/backends"
)

// hostileAgent is a backend whose "agent" answers the handshake and then
// says whatever the test wants: berth must take none of it on trust.
type hostileAgent struct {
	inProcess
	// answer handles each stream berth opens after hello.
	answer func(st *yamux.Stream, req request)
	// open, if set, runs once on the session after hello, to open streams
	// of the agent's own.
	open func(sess *yamux.Session)

	wg sync.WaitGroup
}

func (b *hostileAgent) Exec(_ context.Context, _ string, spec backends.ExecSpec) (backends.Process, error) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &agentProc{io: stdio{r: spec.Stdin, w: spec.Stdout}, cancel: cancel, done: make(chan struct{})}
	sess, err := yamux.Server(newJoinedConn(p.io), muxConfig())
	if err != nil {
		return nil, err
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(p.done)
		defer sess.Close()
		stop := context.AfterFunc(ctx, func() { sess.Close() })
		defer stop()
		var once sync.Once
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer st.Close()
				var req request
				if readJSON(st, frameRequest, &req) != nil {
					return
				}
				if req.Op == opHello {
					_ = writeJSON(st, frameReply, reply{Version: testHash, PID: 1})
					if b.open != nil {
						once.Do(func() {
							wg.Add(1)
							go func() {
								defer wg.Done()
								b.open(sess)
							}()
						})
					}
					return
				}
				b.answer(st, req)
			}()
		}
	}()
	return p, nil
}

func startHostile(t *testing.T, b *hostileAgent) *Client {
	t.Helper()
	b.version = testHash
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, b, "test", &Binary{Hash: testHash}, discard, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		b.wg.Wait()
	})
	return c
}

func TestHostileAgentReplies(t *testing.T) {
	t.Parallel()
	hugeError := strings.Repeat("\x1b[31mno\n", 4000)
	for _, tt := range []struct {
		name   string
		answer func(st *yamux.Stream)
		want   string // in the error of Exec or Wait
	}{
		{"pid zero", func(st *yamux.Stream) { _ = writeJSON(st, frameReply, reply{}) }, "pid 0"},
		{"pid past the kernel's", func(st *yamux.Stream) { _ = writeJSON(st, frameReply, reply{PID: maxPID + 1}) }, "pid"},
		{"reply too big", func(st *yamux.Stream) {
			_ = writeFrame(st, frameReply, append([]byte(`{"pid":1,"error":"`), bytes.Repeat([]byte("x"), maxJSON)...))
		}, "exceeds"},
		{"reply not JSON", func(st *yamux.Stream) { _ = writeFrame(st, frameReply, []byte("{{")) }, "bad frame"},
		{"output then no such frame", func(st *yamux.Stream) {
			_ = writeJSON(st, frameReply, reply{PID: 9})
			_ = writeFrame(st, frameStdout, []byte("hi"))
			_ = writeFrame(st, 'Z', nil)
		}, "bad frame"},
		{"exit code out of range", func(st *yamux.Stream) {
			_ = writeJSON(st, frameReply, reply{PID: 9})
			_ = writeJSON(st, frameExit, exitMsg{Code: 1 << 20})
		}, "exit code"},
		{"huge error with escapes", func(st *yamux.Stream) {
			_ = writeJSON(st, frameReply, reply{Error: hugeError})
		}, "no"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startHostile(t, &hostileAgent{answer: func(st *yamux.Stream, _ request) { tt.answer(st) }})
			_, err := run(t, c, backends.ExecSpec{Argv: []string{"true"}}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error with %q", err, tt.want)
			}
			if len(err.Error()) > 2*maxAgentText || strings.ContainsAny(err.Error(), "\x1b\n") {
				t.Errorf("error passes the agent's text on unchecked: %d bytes %q…", len(err.Error()), err.Error()[:40])
			}
			if !c.Alive() {
				t.Error("one bad reply ended the agent")
			}
		})
	}
}

// An agent that opens streams of its own without end, or with garbage,
// gets them closed; berth goes on.
func TestHostileAgentStreams(t *testing.T) {
	t.Parallel()
	const n = 2000
	opened := make(chan int, 1)
	c := startHostile(t, &hostileAgent{
		answer: func(st *yamux.Stream, req request) {
			_ = writeJSON(st, frameReply, reply{PID: 9})
			_ = writeJSON(st, frameExit, exitMsg{Code: 0})
		},
		open: func(sess *yamux.Session) {
			ok := 0
			for i := range n {
				st, err := sess.OpenStream()
				if err != nil {
					break
				}
				ok++
				switch i % 3 {
				case 0: // says nothing
				case 1:
					_, _ = st.Write([]byte("garbage that is no frame"))
				case 2:
					_ = writeJSON(st, frameRequest, request{Op: opConn, Listener: uint64(i)}) // no such listener
				}
			}
			opened <- ok
		},
	})
	ok := <-opened
	if ok == 0 {
		t.Fatal("the agent opened no stream")
	}
	got, err := run(t, c, backends.ExecSpec{Argv: []string{"true"}}, nil)
	if err != nil || got.Status.Code != 0 {
		t.Fatalf("run beside %d hostile streams = %+v, %v", ok, got, err)
	}
}
