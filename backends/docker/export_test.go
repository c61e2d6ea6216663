package docker

import (
	"time"

	"github.com/docker/docker/client"
)

// SetDetachedTimeout shortens detachedTimeout for a test and returns the
// restore.
func SetDetachedTimeout(d time.Duration) (restore func()) {
	old := detachedTimeout
	detachedTimeout = d
	return func() { detachedTimeout = old }
}

// SetHeartbeat shortens the watcher's heartbeat and ping timeout for a test
// and returns the restore.
func SetHeartbeat(every, timeout time.Duration) (restore func()) {
	oldEvery, oldTimeout := heartbeat, pingTimeout
	heartbeat, pingTimeout = every, timeout
	return func() { heartbeat, pingTimeout = oldEvery, oldTimeout }
}

// Client returns the backend's engine client, for tests that act behind
// berth's back.
func (b *Backend) Client() *client.Client { return b.cli }
