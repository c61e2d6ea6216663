package session

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs f on an OS thread that has joined the network namespace at
// path, then returns the thread to berth's own namespace. Sockets f makes
// stay in the container's namespace: that is the point. It needs
// CAP_SYS_ADMIN, so only root gets this fast path.
func inNetNS(path string, f func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	// A fresh goroutine, so that if the thread can't be restored it dies
	// with the goroutine instead of serving other code in the wrong place.
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- ferr // stay locked: the thread exits with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netnsDial dials addr from inside the network namespace at path.
func netnsDial(ctx context.Context, path, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(path, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// netnsListen listens on addr inside the network namespace at path.
func netnsListen(path, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetNS(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// netnsUsable reports whether this process may join other namespaces.
func netnsUsable() bool { return os.Geteuid() == 0 }
