package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// stdoutBuffer is the kernel buffer berth asks for on its stdout. The
// default pipe holds 64 KiB, less than one notification of a chatty
// process, so every frame would block berth until the editor had read the
// one before: a larger buffer lets the two work side by side, with fewer
// wake-ups on both ends. Backpressure is unchanged, only deeper by this.
const stdoutBuffer = 1 << 20

// growStdout enlarges the kernel buffer behind f, a pipe or a socket, as
// far as the system allows; it leaves anything else, and any refusal, as
// it is.
func growStdout(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if _, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, stdoutBuffer); err == nil {
			return
		}
		// Not a pipe: a socket pair, as Node's child processes get.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, stdoutBuffer)
	})
}
