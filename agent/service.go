package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthdev/berth/backends"
)

// ServiceLog is where the output of a service the agent started
// (StartService) goes, in the instance. When it has grown past 8 MiB, the
// next start moves it to ServiceLog.1.
const ServiceLog = Dir + "/service.log"

// ErrNoService means the agent predates ProtoService: it can neither start
// an instance-owned service nor count processes.
var ErrNoService = errors.New("the agent predates services and process counts (agent protocol 4)")

// StartService starts spec's command as the instance's service, owned by
// no connection: it outlives this client, the agent and berth, and ends
// with the instance. Its output goes to ServiceLog; spec's Stdin, Stdout
// and Stderr are unused. When the service an earlier call started still
// runs, nothing starts, and running is true: racing calls, through any
// agent of the instance and from any berth process, start it once.
func (c *Client) StartService(ctx context.Context, spec backends.ExecSpec) (pid int, running bool, err error) {
	if c.proto[0] < ProtoService {
		return 0, false, ErrNoService
	}
	var rep reply
	if err := c.callOn(ctx, c.sess, request{Op: opService, Argv: spec.Argv, Env: spec.Env, Cwd: spec.Cwd, User: spec.User}, &rep); err != nil {
		return 0, false, fmt.Errorf("service: %w", err)
	}
	return rep.PID, rep.Running, nil
}

// Processes counts the processes of every connection to the agent, of
// every berth process, that still run: each exec's process until it
// exits. berth's helpers (ExecSpec.Helper) are left out.
// Only an agent behind its door is shared; one on an exec stream counts
// its own connection's.
func (c *Client) Processes(ctx context.Context) (int, error) {
	if c.proto[0] < ProtoService {
		return 0, ErrNoService
	}
	var rep reply
	if err := c.callOn(ctx, c.sess, request{Op: opProcs}, &rep); err != nil {
		return 0, fmt.Errorf("processes: %w", err)
	}
	return rep.Count, nil
}
