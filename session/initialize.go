package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// ErrInitializeFailed means the configuration's initializeCommand failed
// on the host; nothing was created or started.
var ErrInitializeFailed = errors.New("initializeCommand failed")

// initialize runs the configuration's initializeCommand on the host, in
// the workspace folder, before anything else of an up: the string form
// through /bin/sh, the array form directly, the object form's entries in
// parallel. Each line of output is reported as progress; a failure stops
// the up with the output's tail.
func (w *Workspace) initialize(ctx context.Context, h *devcontainer.Hook) error {
	if h == nil {
		return nil
	}
	backends.Report(ctx, "running initializeCommand on the host")
	one := func(entry string, h *devcontainer.Hook) error {
		argv := h.Argv
		if h.Shell != "" {
			argv = []string{"/bin/sh", "-c", h.Shell}
		}
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = w.path
		out := &lineReporter{ctx: ctx}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		out.flush()
		if err == nil {
			return nil
		}
		what := "initializeCommand"
		if entry != "" {
			what += " " + entry
		}
		msg := fmt.Sprintf("%s: %v", what, err)
		if t := strings.TrimSpace(out.tail.String()); t != "" {
			msg += ":\n" + t
		}
		return fmt.Errorf("%w: %s", ErrInitializeFailed, msg)
	}
	if len(h.Parallel) == 0 {
		return one("", h)
	}
	names := make([]string, 0, len(h.Parallel))
	for n := range h.Parallel {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = one(n, h.Parallel[n])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// lineReporter reports each line written to it as progress and keeps the
// tail for an error.
type lineReporter struct {
	ctx  context.Context
	mu   sync.Mutex // guards the following: stdout and stderr write at once
	buf  []byte
	tail tailBuffer
}

func (l *lineReporter) Write(p []byte) (int, error) {
	l.tail.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		backends.Report(l.ctx, "initializeCommand: %s", strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineReporter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		backends.Report(l.ctx, "initializeCommand: %s", l.buf)
		l.buf = nil
	}
}
