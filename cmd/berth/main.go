// Command berth is the berth sidecar and its command-line client.
//
//	berth --stdio              serve one editor on stdin/stdout
//	berth --listen unix:PATH   serve editors of the same user on a unix socket
//	berth --tcp 127.0.0.1:7420 serve editors on loopback TCP, with a token
//	berth connect ADDR         bridge stdin/stdout to a running berth
//	berth up | exec -- CMD | ls | down [--rm] | path to-container|to-host P... | version
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

// exitError asks main to exit with a code and print nothing more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
