package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/creack/pty"

	"github.com/berthdev/berth/backends"
)

// On a terminal, a pull is drawn as docker draws it: a bar per layer,
// redrawn in place; elsewhere nothing is drawn.
func TestPullDrawer(t *testing.T) {
	if d := newPullDrawer(&bytes.Buffer{}); d != nil {
		t.Fatal("a drawer for a buffer, which is no terminal")
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	d := newPullDrawer(tty)
	if d == nil {
		t.Fatal("no drawer for a terminal")
	}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&out, ptmx)
	}()
	for _, e := range []backends.PullEvent{
		{Ref: "x", Layer: "a1", Status: "Pulling fs layer"},
		{Ref: "x", Layer: "b2", Status: "Pulling fs layer"},
		{Ref: "x", Layer: "a1", Status: "Downloading", Current: 5 << 20, Total: 10 << 20},
		{Ref: "x", Layer: "a1", Status: "Pull complete"},
		{Ref: "x", Done: true},
	} {
		d.event(e)
	}
	d.close()
	tty.Close()
	<-read
	got := out.String()
	for _, want := range []string{"a1: Pulling fs layer", "b2: Pulling fs layer", "[=========================>", "5.243MB/10.49MB", "a1: Pull complete", "\x1b["} {
		if !strings.Contains(got, want) {
			t.Errorf("drawn pull lacks %q:\n%q", want, got)
		}
	}
}
