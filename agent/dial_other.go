//go:build !linux

package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// dialIn connects to the unix socket name in dir, after checking that it is
// a socket of this user's and not a symlink. The check and the dial are two
// steps here; Linux does it in one (dial_linux.go).
func dialIn(ctx context.Context, dir, name string) (net.Conn, error) {
	p := filepath.Join(dir, name)
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	uid := -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = int(st.Uid)
	}
	if err := checkSocket(fi.Mode()&os.ModeSocket != 0, uid); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var d net.Dialer
	return d.DialContext(ctx, "unix", p)
}
