package session

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/pathmap"
)

// WorkRun is a process run for the editor's work (tests, lint, inspection):
// its output streams to the client under its pid as it runs, and is also
// captured for parsing.
type WorkRun struct {
	PID    string
	Status backends.ExitStatus
	Stdout []byte // raw container text, capped at MaxWorkCapture
	Stderr []byte
}

// MaxWorkCapture bounds what a work run keeps for parsing, and what
// ReadFile reads.
const MaxWorkCapture = 64 << 20

// Ready ensures the workspace's instance for one of the client's calls and
// returns it with its mapper and configuration.
func (c *Client) Ready(ctx context.Context, ws, image string) (Ready, error) {
	return c.ensure(ctx, c.Workspace(ws), image)
}

// NeedAgent reports why r's instance has no agent, as an ErrNeedsAgent, or
// nil when it has one.
func (c *Client) NeedAgent(ctx context.Context, r Ready) error {
	_, err := r.ws.agentFor(ctx, r)
	return err
}

// RunWork starts opts as a process, streams its output to the client with
// container paths mapped, captures the raw output, and waits for the exit.
// transform, when set, turns raw stdout into what the client sees (go
// test -json becomes its Output lines). Cancelling ctx kills the process.
func (c *Client) RunWork(ctx context.Context, opts ExecOptions, transform func(string) string) (WorkRun, error) {
	w := c.Workspace(opts.Workspace)
	r, err := c.ensure(ctx, w, opts.Image)
	if err == nil && w.agentDied(r) {
		// Restarted behind berth's back: ensure it anew, hooks and all.
		r, err = c.ensure(ctx, w, opts.Image)
	}
	if err != nil {
		return WorkRun{}, err
	}
	return c.runOn(ctx, w, r, opts, transform)
}

// runOn is RunWork on an instance the caller ensured.
func (c *Client) runOn(ctx context.Context, w *Workspace, r Ready, opts ExecOptions, transform func(string) string) (WorkRun, error) {
	id, err := c.newID()
	if err != nil {
		return WorkRun{}, err
	}
	var (
		mu       sync.Mutex // guards the following
		run      = WorkRun{PID: id}
		exitErr  error
		streamed = map[string]*pathmap.Writer{}
	)
	send := func(stream string) *pathmap.Writer {
		if w, ok := streamed[stream]; ok {
			return w
		}
		w := r.Mapper.NewWriter(textSink(func(p []byte) { c.sink.Output(id, stream, p) }))
		streamed[stream] = w
		return w
	}
	opts.MapPaths = false // parsed as the container wrote it; mapped for the client below
	out := newOutbox()
	out.release() // the client learns the pid from the output itself
	p, err := c.startOn(ctx, w, r, id, opts, out,
		func(stream string, raw []byte) {
			text := string(raw) // raw is reused after the call
			mu.Lock()
			defer mu.Unlock()
			buf := &run.Stdout
			if stream == "stderr" {
				buf = &run.Stderr
			}
			if len(*buf)+len(text) <= MaxWorkCapture {
				*buf = append(*buf, text...)
			}
			if stream == "stdout" && transform != nil {
				text = transform(text)
			}
			_, _ = send(stream).Write([]byte(text))
		},
		func(st backends.ExitStatus, err error) {
			mu.Lock()
			for _, w := range streamed {
				_ = w.Flush()
			}
			run.Status, exitErr = st, err
			mu.Unlock()
			reason := ""
			if err != nil {
				reason = err.Error()
			}
			c.sink.Exit(id, st, reason)
		})
	if err != nil {
		return WorkRun{}, err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		_ = p.Kill(context.WithoutCancel(ctx))
		<-p.done
		return WorkRun{}, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	if exitErr != nil {
		return WorkRun{}, fmt.Errorf("%s: %w", opts.Argv[0], exitErr)
	}
	return run, nil
}

// textSink adapts a callback to an io.Writer; p is only valid during the call.
type textSink func([]byte)

func (f textSink) Write(p []byte) (int, error) {
	f(p)
	return len(p), nil
}

// ReadFile reads one file out of r's instance, at most MaxWorkCapture
// bytes of it.
func (c *Client) ReadFile(ctx context.Context, r Ready, p string) ([]byte, error) {
	if r.ws == nil {
		return nil, errors.New("read: no instance")
	}
	return r.ws.readFile(ctx, r.ID, p, MaxWorkCapture)
}

// Cwd maps a host cwd into r's instance; "" is the workspace folder.
func (r Ready) Cwd(cwd string) string { return containerCwd(r.Mapper, cwd, r.Workdir) }
