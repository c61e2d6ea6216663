//go:build !unix

package docker

import "context"

// lockFile takes no lock where flock is missing: berth processes on one
// Windows host may race on a Compose project, which Compose then reports.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
