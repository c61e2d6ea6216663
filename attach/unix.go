package attach

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/berthdev/berth/rpc"
)

// maxSocketPath is the longest socket path every unix takes (macOS's
// sun_path holds 104 bytes, Linux's 108).
const maxSocketPath = 103

// listenUnix serves a unix socket at path, mode 0600. It never replaces
// anything but a stale socket: the socket is bound in a private directory
// beside path, given its mode there, and linked into place, which fails if
// anything appeared at path meanwhile. No one can connect before the mode
// is set.
func listenUnix(path string) (*net.UnixListener, os.FileInfo, error) {
	path = filepath.Clean(path)
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".berth")
	if err != nil {
		return nil, nil, fmt.Errorf("--listen unix:%s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	if len(bound) > maxSocketPath {
		return nil, nil, fmt.Errorf("--listen unix:%s: %w: its directory's path is too long for a socket; pick a shorter one", path, ErrSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("--listen unix:%s: %w", path, err)
	}
	// The bound name goes with tmp; Close removes path itself.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("--listen unix:%s: %w", path, err)
	}
	if err := os.Link(bound, path); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("--listen unix:%s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("--listen unix:%s: %w", path, err)
	}
	return ln, fi, nil
}

// removeStale removes a socket at path that no one serves, and refuses
// anything else there.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--listen unix:%s: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("--listen unix:%s: %w: it exists and is not a socket; berth won't replace it", path, ErrSocketPath)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("--listen unix:%s: %w: something is serving it already (another berth?)", path, ErrSocketPath)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("--listen unix:%s: %w: cannot tell whether it is stale: %v", path, ErrSocketPath, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--listen unix:%s: removing the stale socket: %w", path, err)
	}
	return nil
}

// checkPeer admits a unix-socket peer that runs as berth's user or as
// root, by the credentials the kernel recorded when it connected.
func checkPeer(nc net.Conn) error {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%w: not a unix socket", rpc.ErrUnauthorized)
	}
	uid, err := PeerUID(uc)
	if err != nil {
		return fmt.Errorf("%w: cannot read the peer's credentials: %v", rpc.ErrUnauthorized, err)
	}
	return admitUID(uid, os.Geteuid())
}

// admitUID admits the same user, or root.
func admitUID(peer, self int) error {
	if peer == self || peer == 0 {
		return nil
	}
	return fmt.Errorf("%w: peer uid %d is neither berth's user (uid %d) nor root", rpc.ErrUnauthorized, peer, self)
}
