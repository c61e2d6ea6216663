package session

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "debug.sock")
	ln, remove, err := listenSocket(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket file: %v, %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".berth*")); len(left) != 0 {
		t.Errorf("left behind %v", left)
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}

	// Live: refused.
	if _, _, err := listenSocket(p); !errors.Is(err, ErrBind) || !strings.Contains(err.Error(), "listens") {
		t.Errorf("second listen on a live socket: %v", err)
	}
	ln.Close()
	// Stale: replaced.
	ln2, remove2, err := listenSocket(p)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	// The first tunnel's removal leaves the new socket alone.
	remove()
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("the old tunnel removed the new socket: %v", err)
	}
	ln2.Close()
	remove2()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket not removed: %v", err)
	}

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{plain, "not a socket"},
		{dir, "not a socket"},
		{"rel/debug.sock", "not an absolute path"},
		{filepath.Join(dir, "no", "such", "dir", "s"), "no such file"},
		{filepath.Join(dir, strings.Repeat("x", 120)), "too long"},
	} {
		if _, _, err := listenSocket(tt.path); !errors.Is(err, ErrBind) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("listenSocket(%s): %v, want ErrBind saying %q", tt.path, err, tt.want)
		}
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
		t.Errorf("the plain file is now %q, %v", b, err)
	}
}
