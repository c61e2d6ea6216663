package session

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

// listenSocket listens on a unix socket at path with mode 0600. It never
// replaces anything but a socket nobody listens on. The socket is made in
// a private directory beside path, its mode set there, then hard-linked
// into place, which fails rather than replace a file that appeared in the
// meantime: at no moment can another user connect to it. remove deletes
// the socket file if it is still the one made here.
func listenSocket(path string) (ln net.Listener, remove func(), err error) {
	if !filepath.IsAbs(path) {
		return nil, nil, fmt.Errorf("%w on %s: not an absolute path", ErrBind, path)
	}
	path = filepath.Clean(path)
	if max := len(syscall.RawSockaddrUnix{}.Path) - 1; len(path) > max {
		// Bound through a shorter name it would work, but no client could
		// connect to it.
		return nil, nil, fmt.Errorf("%w on %s: %d bytes is too long for a unix socket path (the limit is %d)", ErrBind, path, len(path), max)
	}
	var stale fs.FileInfo // a socket nobody listens on
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, nil, fmt.Errorf("%w on %s: %v", ErrBind, path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, nil, fmt.Errorf("%w on %s: a file that is not a socket is there, and berth won't replace it", ErrBind, path)
	default:
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("%w on %s: another process listens on that socket", ErrBind, path)
		}
		stale = fi
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".berth") // 0700
	if err != nil {
		return nil, nil, fmt.Errorf("%w on %s: %v", ErrBind, path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("%w on %s: %v", ErrBind, path, err)
	}
	ul.SetUnlinkOnClose(false) // the file that counts is path; remove deletes it
	fail := func(err error) (net.Listener, func(), error) {
		ul.Close()
		return nil, nil, fmt.Errorf("%w on %s: %v", ErrBind, path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if stale != nil {
		// Left by a berth that died. Link below refuses whatever may
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
