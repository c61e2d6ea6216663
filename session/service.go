package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
)

// bootsInit reports whether the backend's instances boot the image's own
// init, so that a service's command is berth's to start.
func (m *Manager) bootsInit() bool {
	b, ok := m.backend.(backends.Booter)
	return ok && b.BootsInit()
}

// startService starts the configuration's service command in r's
// instance, when its engine boots the image's init instead of running the
// command (Incus): through the agent, as the instance's own process, owned
// by no connection, with its output in agent.ServiceLog. The agent starts
// it once per run: when it still runs (another berth started it), nothing
// happens. Without a command the image's init must start the service.
func (w *Workspace) startService(ctx context.Context, r Ready) error {
	cfg := r.Config
	if cfg == nil || cfg.Berth.Service == nil || cfg.Compose != nil || !w.m.bootsInit() {
		return nil
	}
	svc := cfg.Berth.Service
	argv := svc.Command
	if svc.Shell != "" {
		argv = []string{"/bin/sh", "-c", svc.Shell}
	}
	if len(argv) == 0 {
		return nil
	}
	ac, reason := w.agent(ctx, r)
	if ac == nil {
		return fmt.Errorf("%w: the service's command needs berth's agent on %s, which boots the image's init: %s", ErrUnhealthy, w.m.backend.Name(), reason)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	pid, running, err := ac.StartService(ctx, backends.ExecSpec{Argv: argv, Cwd: r.Workdir, User: cfg.ContainerUser, Env: envList(cfg.ContainerEnv)})
	switch {
	case errors.Is(err, agent.ErrNoService):
		return fmt.Errorf("%w: the agent running in %s predates services (protocol %d): berth down, then berth up, starts this berth's: %w", ErrUnhealthy, r.Name, ac.Proto(), err)
	case err != nil:
		return fmt.Errorf("%w: the service's command did not start (see %s in the container): %w", ErrUnhealthy, agent.ServiceLog, err)
	case running:
		w.log.Debug("service already running", "pid", pid)
	default:
		backends.Report(ctx, "started the service %q (pid %d; its output goes to %s in the container)", argv, pid, agent.ServiceLog)
	}
	return nil
}
