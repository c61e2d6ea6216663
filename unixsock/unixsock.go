// Package unixsock makes unix sockets that only their owner can reach, for
// `berth --listen unix:PATH` and for berth/forward's hostSocket.
//
// A socket is bound in a private directory beside its path, given mode
// 0600 there, and hard-linked into place, which fails rather than replace
// a file that appeared meanwhile: at no moment can another user connect.
// Nothing at the path is ever replaced but a stale socket, one nobody
// listens on.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

var (
	// ErrInUse means another process listens on the socket.
	ErrInUse = errors.New("another process listens on that socket")
	// ErrNotSocket means something that is not a socket is at the path.
	ErrNotSocket = errors.New("a file that is not a socket is there, and berth won't replace it")
	// ErrTooLong means the path, or the private name it is bound under
	// first, is too long for a socket address.
	ErrTooLong = errors.New("too long for a unix socket path")
)

// maxPath is the longest socket path every unix takes (macOS's sun_path
// holds 104 bytes, Linux's 108), less the terminating NUL.
const maxPath = 103

// Listen listens on a unix socket at path, an absolute path, with mode
// 0600. remove deletes the socket file if it is still the one made here;
// closing ln leaves the file.
func Listen(path string) (ln *net.UnixListener, remove func(), err error) {
	if !filepath.IsAbs(path) {
		return nil, nil, errors.New("not an absolute path")
	}
	path = filepath.Clean(path)
	if len(path) > maxPath {
		// Bound through a shorter name it would work, but no client could
		// connect to it.
		return nil, nil, fmt.Errorf("%d bytes is %w (the limit is %d)", len(path), ErrTooLong, maxPath)
	}
	stale, err := staleSocket(path)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".berth") // 0700
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	if len(tmp) > maxPath {
		return nil, nil, fmt.Errorf("its directory's path is %w; pick a shorter one", ErrTooLong)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	ul.SetUnlinkOnClose(false) // the file that counts is path; remove deletes it
	fail := func(err error) (*net.UnixListener, func(), error) {
		ul.Close()
		return nil, nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if stale != nil {
		// Left by a process that died. Link below refuses whatever may
		// appear after this.
		if now, err := os.Lstat(path); err == nil && os.SameFile(stale, now) {
			_ = os.Remove(path)
		}
	}
	if err := os.Link(tmp, path); err != nil {
		return fail(err)
	}
	made, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return ul, func() {
		if now, err := os.Lstat(path); err == nil && os.SameFile(made, now) {
			_ = os.Remove(path)
		}
	}, nil
}

// staleSocket returns the socket at path that nobody listens on, nil when
// nothing is there, and an error for anything else.
func staleSocket(path string) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, err
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, ErrNotSocket
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return nil, ErrInUse
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("cannot tell whether the socket there is stale: %w", err)
	}
	return fi, nil
}
