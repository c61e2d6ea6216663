package docker

import "time"

// SetDetachedTimeout shortens detachedTimeout for a test and returns the
// restore.
func SetDetachedTimeout(d time.Duration) (restore func()) {
	old := detachedTimeout
	detachedTimeout = d
	return func() { detachedTimeout = old }
}
