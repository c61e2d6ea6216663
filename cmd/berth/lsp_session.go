package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/rpc"
)

// sessionRunner runs berth lsp's processes through an in-process session's
// berth/exec, for an instance whose agent has no door (a remote engine,
// --no-fastpath, --no-agent): the server's stdin goes as berth/stdin, its
// output comes as berth/output, unmapped. Slower than the door, and the
// output is text: bytes that are not UTF-8 arrive as U+FFFD.
//
// Goroutines: per process, a stdin feeder, which ends with its reader or
// the process, and a pump that writes its output, so that the session's
// reader never waits on a writer: the proxy may be busy reading a mirrored
// file through the same session. Wait returns once the pump is done.
type sessionRunner struct {
	s *cliSession // set once, before the first exec

	mu      sync.Mutex // guards the following
	procs   map[string]*sessionProc
	pending map[string][]procNote // notifications that came before berth/exec's answer
}

func newSessionRunner() *sessionRunner {
	return &sessionRunner{procs: map[string]*sessionProc{}, pending: map[string][]procNote{}}
}

// note takes the session's process notifications; it runs on the
// session's reader.
func (r *sessionRunner) note(method string, raw json.RawMessage) bool {
	if method != "berth/output" && method != "berth/exit" {
		return false
	}
	var id struct {
		PID string `json:"pid"`
	}
	if json.Unmarshal(raw, &id) != nil {
		return true
	}
	r.mu.Lock()
	p := r.procs[id.PID]
	if p == nil {
		r.pending[id.PID] = append(r.pending[id.PID], procNote{method, append(json.RawMessage(nil), raw...)})
		r.mu.Unlock()
		return true
	}
	r.mu.Unlock()
	p.deliver(method, raw)
	return true
}

// exec starts spec's argv through berth/exec; cwd, user and environment
// default to the workspace's, as berth/exec gives them.
func (r *sessionRunner) exec(ctx context.Context, spec backends.ExecSpec) (backends.Process, error) {
	env := map[string]string{}
	for _, kv := range spec.Env {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				env[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	noMap := false
	params := rpc.ExecParams{Argv: spec.Argv, Cwd: spec.Cwd, Env: env, User: spec.User, Stdin: spec.Stdin != nil, Kind: "os", MapPaths: &noMap}
	var res rpc.ExecResult
	if err := r.s.c.Call(ctx, "berth/exec", params, &res); err != nil {
		return nil, err
	}
	p := r.newProc(res.PID, spec.Stdout, spec.Stderr)
	r.mu.Lock()
	r.procs[p.pid] = p
	early := r.pending[p.pid]
	delete(r.pending, p.pid)
	r.mu.Unlock()
	for _, n := range early {
		p.deliver(n.method, n.raw)
	}
	if spec.Stdin != nil {
		go p.feed(context.WithoutCancel(ctx), spec.Stdin)
	}
	return p, nil
}

// maxQueued bounds the output a process's pump holds before the session's
// reader waits for it.
const maxQueued = 32 << 20

// sessionProc is one process started through berth/exec.
type sessionProc struct {
	r              *sessionRunner
	pid            string
	stdout, stderr io.Writer
	done           chan struct{} // closed when the exit came and all output is written

	mu     sync.Mutex // guards the following
	cond   *sync.Cond // signalled when queue, exited or room change
	queue  []rpc.OutputParams
	queued int  // bytes in queue
	exited bool // berth/exit came
	st     backends.ExitStatus
	reason string
}

func (r *sessionRunner) newProc(pid string, stdout, stderr io.Writer) *sessionProc {
	p := &sessionProc{r: r, pid: pid, stdout: stdout, stderr: stderr, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go p.pump()
	return p
}

// deliver queues one notification for the pump; it runs on the session's
// reader.
func (p *sessionProc) deliver(method string, raw json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return
	}
	switch method {
	case "berth/output":
		var o rpc.OutputParams
		if json.Unmarshal(raw, &o) != nil {
			return
		}
		for p.queued > maxQueued {
			p.cond.Wait()
		}
		p.queue = append(p.queue, o)
		p.queued += len(o.Text)
	case "berth/exit":
		var e rpc.ExitParams
		if json.Unmarshal(raw, &e) != nil {
			return
		}
		p.st = backends.ExitStatus{Code: e.Code, Signal: e.Signal}
		p.reason, p.exited = e.Reason, true
		p.r.mu.Lock()
		delete(p.r.procs, p.pid)
		p.r.mu.Unlock()
	default:
		return
	}
	p.cond.Broadcast()
}

// pump writes the queued output in order, until the exit.
func (p *sessionProc) pump() {
	defer close(p.done)
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for len(p.queue) == 0 && !p.exited {
			p.cond.Wait()
		}
		if len(p.queue) == 0 {
			return
		}
		o := p.queue[0]
		p.queue = p.queue[1:]
		p.queued -= len(o.Text)
		p.cond.Broadcast()
		w := p.stdout
		if o.Stream == "stderr" {
			w = p.stderr
		}
		p.mu.Unlock()
		if w != nil {
			_, _ = io.WriteString(w, o.Text)
		}
		p.mu.Lock()
	}
}

// feed copies stdin to the process as berth/stdin text, never cutting a
// UTF-8 sequence in two, until stdin ends or the process does.
func (p *sessionProc) feed(ctx context.Context, stdin io.Reader) {
	buf := make([]byte, 64<<10)
	held := 0 // bytes of an unfinished UTF-8 sequence kept at buf's start
	for {
		n, err := stdin.Read(buf[held:])
		n += held
		cut := n
		// Keep back at most 3 bytes that may start a sequence.
		for k := 1; k <= 3 && k <= n; k++ {
			if c := buf[n-k]; c >= 0xC0 {
				if !utf8.FullRune(buf[n-k : n]) {
					cut = n - k
				}
				break
			} else if c < 0x80 {
				break
			}
		}
		if cut > 0 {
			if cerr := p.r.s.c.Call(ctx, "berth/stdin", rpc.StdinParams{PID: p.pid, Text: string(buf[:cut])}, nil); cerr != nil {
				return
			}
		}
		held = copy(buf, buf[cut:n])
		if err != nil {
			_ = p.r.s.c.Call(ctx, "berth/stdin", rpc.StdinParams{PID: p.pid, Text: string(buf[:held]), Close: true}, nil)
			return
		}
	}
}

func (p *sessionProc) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.st.Code == -1 && p.reason != "" {
			return p.st, errors.New(p.reason)
		}
		return p.st, nil
	case <-p.r.s.c.Done():
		// No exit will come: let the pump finish with what it has.
		p.mu.Lock()
		p.exited = true
		p.cond.Broadcast()
		p.mu.Unlock()
		return backends.ExitStatus{Code: -1}, errors.New("connection to the server lost")
	case <-ctx.Done():
		return backends.ExitStatus{Code: -1}, ctx.Err()
	}
}

func (p *sessionProc) Signal(ctx context.Context, sig int) error {
	return p.r.s.c.Call(ctx, "berth/signal", rpc.SignalParams{PID: p.pid, Signal: json.RawMessage(strconv.Itoa(sig))}, nil)
}

func (p *sessionProc) Kill(ctx context.Context) error { return p.Signal(ctx, 9) }
