package unixsock

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "debug.sock")
	ln, remove, err := Listen(p)
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
	if _, _, err := Listen(p); !errors.Is(err, ErrInUse) {
		t.Errorf("second listen on a live socket: %v", err)
	}
	ln.Close()
	// Stale: replaced.
	ln2, remove2, err := Listen(p)
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
	// A path short enough, in a directory too long for the private name
	// it is bound under first.
	long := filepath.Join(dir, strings.Repeat("y", 100-len(dir)-3))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path    string
		wantErr error
		want    string
	}{
		{plain, ErrNotSocket, ""},
		{dir, ErrNotSocket, ""},
		{"rel/debug.sock", nil, "not an absolute path"},
		{filepath.Join(dir, "no", "such", "dir", "s"), fs.ErrNotExist, ""},
		{filepath.Join(dir, strings.Repeat("x", 120)), ErrTooLong, ""},
		{filepath.Join(long, "s"), ErrTooLong, "directory"},
	} {
		_, _, err := Listen(tt.path)
		if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Listen(%s): %v, want %v saying %q", tt.path, err, tt.wantErr, tt.want)
		}
	}
	if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
		t.Errorf("the plain file is now %q, %v", b, err)
	}
}
