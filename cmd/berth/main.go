// Command berth is the berth sidecar and its command-line client.
//
//	berth --stdio              serve one editor on stdin/stdout
//	berth --listen unix:PATH   serve editors of the same user on a unix socket
//	berth --tcp 127.0.0.1:7420 serve editors on loopback TCP, with a token
//	berth connect ADDR         bridge stdin/stdout to a running berth
//	berth up | exec | lsp | shell | forward | status | ls | down | path | plugin | plugins | version | completion
//
// Exit codes follow docker's: a command's own code, 125 when berth itself
// fails, 126 when the command cannot be invoked, 127 when it is not found.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/berthdev/berth/cmd/berth/internal/prefault" // first, before heavy package initialisation
)

func main() {
	prefault.Ahead(1 << 20) // about what `berth exec` allocates
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)))
}

// Exit codes of berth's own, as docker's.
const (
	exitBerthFailed   = 125 // berth itself failed: no daemon, bad config, bad flags
	exitCannotInvoke  = 126 // the command exists but cannot be run
	exitNotFound      = 127 // the command does not exist in the container
	exitNoShutdownAck = 1   // LSP: exit without shutdown
)

// exitCode prints err, if it says anything, and returns the process's
// exit code.
func exitCode(err error) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "berth:", ee.msg)
		}
		return ee.code
	default:
		fmt.Fprintln(os.Stderr, "berth:", err)
		return exitBerthFailed
	}
}

// exitError asks main to exit with code, after printing msg if there is one.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string {
	if e.msg != "" {
		return e.msg
	}
	return fmt.Sprintf("exit status %d", e.code)
}
