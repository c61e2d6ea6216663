package session

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// runnerKey names one start of one instance: a restarted instance needs a
// new agent.
func runnerKey(inst backends.Instance) string {
	return inst.ID + "@" + inst.Started.UTC().Format(time.RFC3339Nano)
}

// agent returns the running agent of r's instance, starting it if needed.
// It returns nil and the reason when processes must use plain exec. The
// choice is made once per instance start; only a real failure of the
// agent, never a cancelled request, sends berth to plain exec.
func (w *Workspace) agent(ctx context.Context, r Ready) (*agent.Client, string) {
	m := w.m
	if len(m.agents) == 0 {
		return nil, m.agentOff
	}
	if cfg := r.Config; cfg != nil && cfg.Berth.Agent != nil && !*cfg.Berth.Agent {
		return nil, "agent disabled by customizations.berth.agent in " + cfg.File
	}
	key := runnerKey(r.Instance.Instance)
	w.agentMu.Lock()
	defer w.agentMu.Unlock()
	w.mu.Lock()
	e := w.runner
	w.mu.Unlock()
	switch {
	case m.isClosed():
		return nil, "shutting down"
	case e != nil && e.key == key && e.client != nil && e.client.Alive():
		return e.client, ""
	case e != nil && e.key == key && e.client == nil && time.Since(e.failedAt) < agentRetry:
		return nil, e.reason
	}
	if e != nil && e.client != nil {
		w.log.Info("agent gone or instance restarted; starting a new agent", "instance", r.Name)
		closeAgent(e.client)
	}
	inst := r.Instance.Instance
	e = &agentEntry{key: key}
	if e.bin, e.reason = m.buildFor(ctx, inst); e.bin == nil {
		// A platform berth has no build for never heals: don't retry.
		e.failedAt = time.Now().Add(100 * 365 * 24 * time.Hour)
	} else if c, err := agent.Start(ctx, m.backend, inst.ID, e.bin, w.log.With("instance", inst.Name), agent.Options{FastDir: m.fastDirOf(inst)}); err != nil {
		if ctx.Err() != nil {
			// The request ended, not the agent: decide next time.
			return nil, "agent start interrupted: " + ctx.Err().Error()
		}
		e.reason, e.failedAt = "agent failed to start, using plain exec: "+err.Error(), time.Now()
		w.log.Warn("agent failed to start; using plain exec", "instance", inst.Name, "err", err)
	} else {
		e.client = c
	}
	w.mu.Lock()
	w.runner = e
	w.mu.Unlock()
	return e.client, e.reason
}

// agentDied reports whether the agent berth chose for r's start is gone,
// and forgets it and the instance if so.
func (w *Workspace) agentDied(r Ready) bool {
	w.mu.Lock()
	e := w.runner
	dead := e != nil && e.key == runnerKey(r.Instance.Instance) && e.client != nil && !e.client.Alive()
	if dead {
		w.runner, w.ready, w.netns = nil, nil, nil
	}
	w.mu.Unlock()
	if dead {
		w.closePlugins()
		closeAgent(e.client)
	}
	return dead
}

// closeAgent closes an agent client, bounded: a frozen engine must not
// hold its caller.
func closeAgent(c *agent.Client) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Close()
	}()
	select {
	case <-done:
	case <-time.After(closeTimeout):
	}
}

// dropRunner lets go of the instance's agent, which ends the processes it
// carries; the next call chooses a runner afresh.
func (w *Workspace) dropRunner(why string) {
	w.mu.Lock()
	e := w.runner
	w.runner = nil
	w.mu.Unlock()
	w.letGo(e, why)
}

// releaseEngine lets go of an agent that the engine's exec carries, which
// would hold a daemon that is shutting down (Incus waits for open execs).
// An agent behind the door needs no daemon: it stays, and so do its
// processes, which live on if their container outlives the daemon.
func (w *Workspace) releaseEngine(why string) {
	w.mu.Lock()
	e := w.runner
	if e != nil && e.client != nil && e.client.FastPath() {
		w.mu.Unlock()
		return
	}
	w.runner = nil
	w.mu.Unlock()
	w.letGo(e, why)
}

// letGo closes e, a runner already taken out of the workspace.
func (w *Workspace) letGo(e *agentEntry, why string) {
	w.closePlugins() // before the agent that carries them goes
	if e != nil && e.client != nil {
		w.log.Info("letting go of the agent", "why", why)
		closeAgent(e.client)
	}
}

// exec starts spec in r's instance through its agent, or with plain
// backend exec when the agent can't be had. tty, when set, needs the agent.
func (w *Workspace) exec(ctx context.Context, r Ready, spec backends.ExecSpec, tty *agent.Terminal) (backends.Process, error) {
	if w.agentDied(r) {
		// Its instance likely stopped or restarted: the caller ensures it
		// again (running postStartCommand for a new start) and retries.
		return nil, fmt.Errorf("exec: %w", agent.ErrLost)
	}
	ac, reason := w.agent(ctx, r)
	if ac != nil {
		w.publish(ctx)
	}
	// ctx bounds only the start, so a deadline here never cuts a process short.
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if ac == nil {
		if tty != nil {
			return nil, fmt.Errorf("tty: %w (%s)", ErrNeedsAgent, reason)
		}
		p, err := w.m.backend.Exec(ctx, r.ID, spec)
		return p, w.m.engineErr(ctx, "exec", err)
	}
	if spec.User == "" {
		// The agent runs as root; the engine's exec, as the image's user.
		spec.User = r.Instance.Instance.User
	}
	p, err := ac.Exec(ctx, spec, tty)
	return p, w.m.engineErr(ctx, "exec", err)
}

// remoteUser is whom the editor's processes run as, by the spec's
// defaults: remoteUser, else containerUser, else the image's own user.
func remoteUser(cfg *devcontainer.Config, inst backends.Instance) string {
	switch {
	case cfg != nil && cfg.RemoteUser != "":
		return cfg.RemoteUser
	case cfg != nil && cfg.ContainerUser != "":
		return cfg.ContainerUser
	}
	return inst.User
}

// startTimeout bounds starting a process, which a healthy engine does in
// well under a second even on a loaded machine.
const startTimeout = 10 * time.Second

// agentFor is agent for tunnels, which have no plain-exec fallback.
func (w *Workspace) agentFor(ctx context.Context, r Ready) (*agent.Client, error) {
	ac, reason := w.agent(ctx, r)
	if ac == nil {
		return nil, fmt.Errorf("tunnels: %w (%s)", ErrNeedsAgent, reason)
	}
	return ac, nil
}

// dial connects to addr inside r's instance: from a thread in the
// instance's network namespace when berth may (root, local engine), else
// through the agent.
func (w *Workspace) dial(ctx context.Context, r Ready, addr string) (net.Conn, error) {
	ac, err := w.agentFor(ctx, r)
	if err != nil {
		return nil, err
	}
	if ns := w.netnsPath(ctx, r); ns != "" {
		cc, err := netnsDial(ctx, ns, addr)
		if err == nil {
			return cc, nil
		}
		w.log.Debug("netns dial failed; using the agent", "addr", addr, "err", err)
		w.mu.Lock()
		w.netns = nil
		w.mu.Unlock()
	}
	return ac.Dial(ctx, addr)
}

// netnsPath returns the path of the instance's network namespace when
// berth may join it (root, local engine, fast path on), else "".
func (w *Workspace) netnsPath(ctx context.Context, r Ready) string {
	nser, ok := w.m.backend.(backends.NetNSer)
	if !ok || w.m.noFast || !netnsUsable() {
		return ""
	}
	w.mu.Lock()
	p := w.netns
	w.mu.Unlock()
	if p != nil {
		return *p
	}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	ns, err := nser.NetNS(ctx, r.ID)
	if err != nil {
		w.log.Debug("no netns fast path", "instance", r.Name, "err", err)
		ns = ""
	}
	w.mu.Lock()
	w.netns = &ns
	w.mu.Unlock()
	return ns
}

// fastDirOf finds the host side of an instance's fast-path mount.
func (m *Manager) fastDirOf(inst backends.Instance) string {
	if m.noFast {
		return ""
	}
	for _, mt := range inst.Mounts {
		if mt.Container == agent.RunDir {
			return mt.Host
		}
	}
	return ""
}

// buildFor chooses the agent build for inst's platform, or says why there
// is none. When the engine can't tell the platform, berth guesses its own
// architecture's, which a local engine runs.
func (m *Manager) buildFor(ctx context.Context, inst backends.Instance) (*agent.Binary, string) {
	platform := "linux/" + runtime.GOARCH
	if pf, ok := m.backend.(backends.Platformer); ok {
		ctx, cancel := context.WithTimeout(ctx, metaTimeout)
		defer cancel()
		if goos, goarch, err := pf.Platform(ctx, inst.ID); err == nil && goos != "" && goarch != "" {
			platform = goos + "/" + goarch
		}
	}
	bin, err := m.agents.For(platform)
	if err != nil {
		return nil, err.Error() + "; using plain exec"
	}
	return bin, ""
}

// agentStatus reports, without starting anything, how inst is reached.
// With probe, when berth has chosen no build for inst yet, it asks the
// engine for inst's platform to tell which build it would run.
func (m *Manager) agentStatus(ctx context.Context, inst backends.Instance, probe bool) AgentStatus {
	if len(m.agents) == 0 {
		return AgentStatus{Reason: m.agentOff}
	}
	m.mu.Lock()
	w := m.workspaces[inst.Workspace]
	m.mu.Unlock()
	if w != nil {
		if cfg := w.cachedConfig(); cfg != nil && cfg.Berth.Agent != nil && !*cfg.Berth.Agent {
			return AgentStatus{Reason: "agent disabled by customizations.berth.agent in " + cfg.File}
		}
		w.mu.Lock()
		e := w.runner
		w.mu.Unlock()
		if e != nil && e.key == runnerKey(inst) {
			if e.client == nil {
				return AgentStatus{Reason: e.reason, Build: e.bin}
			}
			return AgentStatus{Enabled: true, Build: e.bin, Connected: e.client.Alive()}
		}
	}
	if !probe {
		return AgentStatus{Enabled: true}
	}
	if st, ok := m.doorStatus(ctx, inst); ok {
		return st
	}
	bin, reason := m.buildFor(ctx, inst)
	return AgentStatus{Enabled: bin != nil, Reason: reason, Build: bin}
}

// doorStatus asks the agent behind inst's door, which another berth
// process may have left running, which build it is. ok is false when no
// agent answers there.
func (m *Manager) doorStatus(ctx context.Context, inst backends.Instance) (AgentStatus, bool) {
	dir := m.fastDirOf(inst)
	if dir == "" || inst.State != backends.StateRunning {
		return AgentStatus{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, doorProbeTimeout)
	defer cancel()
	c, err := agent.Attach(ctx, dir, m.log)
	if err != nil {
		m.log.Debug("no agent answers at the door", "instance", inst.Name, "err", err)
		return AgentStatus{}, false
	}
	defer c.Close()
	for _, b := range m.agents {
		if b.Hash == c.Version() {
			return AgentStatus{Enabled: true, Build: b, Connected: true}, true
		}
	}
	// Another berth's build, which this one uses while their protocols
	// agree.
	goos, goarch := c.Platform()
	return AgentStatus{Enabled: true, Connected: true, Build: &agent.Binary{
		Hash: c.Version(), GOOS: goos, GOARCH: goarch, Source: agent.SourceInstance,
	}}, true
}

// doorProbeTimeout bounds berth/status's question at the door, which a
// live agent answers in microseconds.
const doorProbeTimeout = time.Second
