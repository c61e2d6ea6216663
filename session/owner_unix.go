//go:build unix

package session

import (
	"os"
	"syscall"
)

// processUID is the effective uid berth runs as.
func processUID() int { return os.Geteuid() }

// fileOwner is fi's owner uid, or -1 when the system doesn't say.
func fileOwner(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
