package rpc

import "time"

// SetConfirmTimeout shortens how long berth waits for a trust answer, until
// the returned func restores it.
func SetConfirmTimeout(d time.Duration) (restore func()) {
	old := confirmTimeout
	confirmTimeout = d
	return func() { confirmTimeout = old }
}
