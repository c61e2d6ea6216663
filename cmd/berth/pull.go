package main

import (
	"encoding/json"
	"io"
	"os"
	"sync"

	"github.com/docker/docker/pkg/jsonmessage"
	"golang.org/x/term"

	"github.com/berthdev/berth/backends"
)

// pullDrawer draws image pulls on a terminal as docker does, a progress
// bar per layer, with docker's own renderer.
//
// Goroutines: one renderer per pull in progress, which the pull's end (or
// close) ends and waits for.
type pullDrawer struct {
	out io.Writer
	fd  uintptr

	mu   sync.Mutex // guards the following
	pw   *io.PipeWriter
	enc  *json.Encoder
	done chan struct{}
}

// newPullDrawer returns a drawer for w, or nil when w is not a terminal:
// there, pulls stay one line per change of status.
func newPullDrawer(w io.Writer) *pullDrawer {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &pullDrawer{out: f, fd: f.Fd()}
}

// event is a backends.PullFunc.
func (d *pullDrawer) event(e backends.PullEvent) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Done {
		d.endLocked()
		return
	}
	if d.pw == nil {
		pr, pw := io.Pipe()
		d.pw, d.enc, d.done = pw, json.NewEncoder(pw), make(chan struct{})
		go func(done chan struct{}) {
			defer close(done)
			// The renderer's error is the pull's, which berth reports.
			_ = jsonmessage.DisplayJSONMessagesStream(pr, d.out, d.fd, true, nil)
			_, _ = io.Copy(io.Discard, pr)
		}(d.done)
	}
	msg := jsonmessage.JSONMessage{ID: e.Layer, Status: e.Status}
	if e.Total > 0 {
		msg.Progress = &jsonmessage.JSONProgress{Current: e.Current, Total: e.Total}
	}
	_ = d.enc.Encode(msg)
}

func (d *pullDrawer) endLocked() {
	if d.pw == nil {
		return
	}
	d.pw.Close()
	<-d.done
	d.pw, d.enc, d.done = nil, nil, nil
}

// close ends a pull still drawn.
func (d *pullDrawer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endLocked()
}
