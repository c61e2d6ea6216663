package session

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"syscall"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/secrets"
)

// SetConfig sets the explicit configuration file this client's workspaces
// use (initializationOptions.config); "" means discover.
func (c *Client) SetConfig(path string) {
	c.mu.Lock()
	c.configPath = path
	c.mu.Unlock()
}

// ConfigPath returns the client's explicit configuration file, if any.
func (c *Client) ConfigPath() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.configPath
}

// Workspace returns the handle of a resolved workspace, and registers the
// client with it: it hears of the instance's changes until it closes.
func (c *Client) Workspace(ws string) *Workspace {
	w := c.m.Workspace(ws)
	w.mu.Lock()
	if w.clients == nil {
		w.clients = map[*Client]bool{}
	}
	w.clients[c] = true
	w.mu.Unlock()
	return w
}

// ensure brings the workspace's instance up for one of the client's
// calls: hooks its creation or start calls for run first, with their
// output streamed to this client, and an editor session counts as
// attached from then on.
func (c *Client) ensure(ctx context.Context, w *Workspace, image string) (Ready, error) {
	r, err := w.Ensure(ctx, EnsureOptions{Image: image, Config: c.ConfigPath(), Hooks: c.hookRunner(), Background: c.backgroundHooks(), Authorize: c.authorize, Limits: c.Limits()})
	if err != nil {
		return Ready{}, err
	}
	c.attach(ctx, w, r)
	c.watchPorts(w)
	if c.isEditor() && r.Config != nil && r.Config.Berth.Service != nil {
		// An editor on a service another berth brought up hears of its
		// health as well.
		w.watchHealth(r, "")
	}
	return r, nil
}

// Status is Workspace.Status for the client, which then hears of the
// instance's changes; an editor session on a running service has its
// health checked from then on.
func (c *Client) Status(ctx context.Context, ws, image string) (*Instance, error) {
	w := c.Workspace(ws)
	inst, err := w.Status(ctx, c.ConfigPath(), image)
	if err != nil || inst == nil {
		return inst, err
	}
	if c.isEditor() && inst.State == backends.StateRunning && inst.Config != nil && inst.Config.Berth.Service != nil {
		w.watchHealth(w.serviceReady(inst.Instance, inst.Config), inst.Health)
	}
	return inst, nil
}

func (c *Client) isEditor() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.editor
}

// hookRunner runs lifecycle commands as this client's processes, so their
// output streams to it under a pid.
func (c *Client) hookRunner() HookFunc {
	return func(ctx context.Context, r Ready, hook, entry string, argv []string) HookRun {
		hr := HookRun{Hook: hook, Name: entry}
		run, err := c.runOn(ctx, r.ws, r, ExecOptions{Workspace: r.ws.path, Argv: argv, Kind: "os"}, nil)
		hr.PID, hr.Code = run.PID, run.Status.Code
		if err != nil {
			hr.Err = err.Error()
		}
		if hr.failed() {
			hr.Tail = tail(string(run.Stdout)+string(run.Stderr), hookTail)
		}
		return hr
	}
}

// backgroundHooks runs the lifecycle commands left to the background
// (waitFor) as the client's would run, with its user and environment, but
// as the workspace's processes: they outlive the client.
func (c *Client) backgroundHooks() HookFunc {
	return func(ctx context.Context, r Ready, hook, entry string, argv []string) HookRun {
		opts := ExecOptions{Workspace: r.ws.path, Argv: argv}
		c.applyConfig(ctx, r.ws, r, &opts)
		return r.ws.runHookAs(ctx, r, hook, entry, backends.ExecSpec{Argv: argv, User: opts.User, Env: envList(opts.Env)})
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// UpResult is the outcome of Client.Up.
type UpResult struct {
	Instance
	BuildPID  string // the build log's pseudo-pid, when an image was built
	Hooks     []HookRun
	Forwarded []TunnelInfo
}

// Up brings the workspace's instance up (Workspace.Ensure, which runs the
// create and start hooks), then does what the devcontainer spec asks of
// an attach: postAttachCommand once per client, and forwardPorts as
// tunnels. A build's log streams to the client under a pseudo-pid of its
// own.
func (c *Client) Up(ctx context.Context, opts UpOptions) (UpResult, error) {
	if opts.Config == "" {
		opts.Config = c.ConfigPath()
	}
	w := c.Workspace(opts.Workspace)
	blog := &buildLog{c: c}
	r, err := w.Ensure(ctx, EnsureOptions{Image: opts.Image, Config: opts.Config, Recreate: opts.Recreate, Fresh: true, WaitAll: true, BuildLog: blog, Hooks: c.hookRunner(), Authorize: c.authorize, Limits: c.Limits()})
	blog.finish(err)
	if err != nil {
		return UpResult{}, err
	}
	c.attach(ctx, w, r)
	// After forwardPorts below, which take their host ports first.
	defer c.watchPorts(w)
	if w.m.fastDirOf(r.Instance.Instance) != "" {
		// Up behind the door now, so that the next berth from a shell
		// finds the agent, and the profile, ready.
		if ac, _ := w.agent(ctx, r); ac != nil {
			if cfg := r.Config; cfg != nil {
				// The profile carries the probed environment: probe now.
				w.userEnv(ctx, r, remoteUser(cfg, r.Instance.Instance))
			}
			w.publish(ctx)
		}
	}
	res := UpResult{Instance: r.Instance, BuildPID: blog.id, Hooks: r.Hooks}
	if r.Labels[LabelSync] == "true" {
		if err := c.startSync(ctx, opts.Workspace, opts.Image, r.Config, r.Instance.Instance, r.copied); err != nil {
			return UpResult{}, fmt.Errorf("sync: %w", err)
		}
	}
	cfg := r.Config
	if cfg == nil {
		return res, nil
	}
	c.watchConfig(opts.Workspace, cfg)
	servicePort := 0
	if cfg.Berth.Service != nil {
		// Every up waits for the service; the container stays up when
		// it never gets healthy, for the user to look into.
		if servicePort, err = w.waitHealthy(ctx, r); err != nil {
			return UpResult{}, err
		}
		res.Instance.Instance.Health = backends.HealthHealthy
		w.watchHealth(r, backends.HealthHealthy)
	}
	if !c.firstUp(w) {
		return res, nil
	}
	if attach := stageHooks(cfg, "postAttachCommand"); len(attach) > 0 {
		backends.Report(ctx, "running postAttachCommand")
		for _, nh := range attach {
			for _, h := range runHook(ctx, r, nh, c.hookRunner()) {
				res.Hooks = append(res.Hooks, h)
				if h.failed() {
					c.log.Warn("postAttachCommand failed", "name", h.Name, "code", h.Code, "err", h.Err)
				}
			}
		}
	}
	for _, p := range cfg.ForwardPorts {
		host := p.Host
		if host == "" {
			host = "127.0.0.1"
		}
		t, err := c.Forward(ctx, opts.Workspace, opts.Image, host, p.Port, p.Port)
		if err != nil && cfg.AttributesOf(p.Port).RequireLocalPort {
			res.Warnings = append(res.Warnings, fmt.Sprintf("forwardPorts: port %d not forwarded: requireLocalPort is set and host port %d is taken (%v)", p.Port, p.Port, err))
			continue
		}
		if err != nil {
			// The same host port may be taken: any port will do.
			t, err = c.Forward(ctx, opts.Workspace, opts.Image, host, p.Port, 0)
		}
		if err != nil {
			c.log.Warn("forwardPorts: not forwarded", "port", p.Port, "err", err)
			continue
		}
		res.Forwarded = append(res.Forwarded, t)
	}
	if servicePort > 0 {
		t, err := c.Forward(ctx, opts.Workspace, opts.Image, "127.0.0.1", servicePort, servicePort)
		if err != nil {
			t, err = c.Forward(ctx, opts.Workspace, opts.Image, "127.0.0.1", servicePort, 0)
		}
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("service port %d not forwarded: %v", servicePort, err))
		} else {
			res.Forwarded = append(res.Forwarded, t)
		}
	}
	return res, nil
}

// firstUp reports whether this is the client's first Up of w.
func (c *Client) firstUp(w *Workspace) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.upped == nil {
		c.upped = map[*Workspace]bool{}
	}
	if c.upped[w] {
		return false
	}
	c.upped[w] = true
	return true
}

// attach counts the client as an editor session of w, once: from then on
// a shutdownAction waits for it. CLI invocations never count.
func (c *Client) attach(ctx context.Context, w *Workspace, r Ready) {
	if !c.editor {
		return
	}
	c.mu.Lock()
	if c.closed || c.attached[w] {
		c.mu.Unlock()
		return
	}
	if c.attached == nil {
		c.attached = map[*Workspace]bool{}
	}
	c.attached[w] = true
	c.mu.Unlock()
	w.mu.Lock()
	w.editors++
	first := w.editors == 1
	w.mu.Unlock()
	if stopsOnLeave(r.Config) && (first || r.Created || r.Started) {
		w.writeLease(ctx, r.ID, true)
	}
}

// detach uncounts an editor session and, when it was the last one of
// every berth process, honours the configuration's shutdownAction. Only a
// devcontainer.json says stopContainer (the spec's default); a plain image
// or Containerfile keeps berth's default, a container that outlives its
// clients.
func (w *Workspace) detach(ctx context.Context) {
	w.mu.Lock()
	w.editors--
	last := w.editors <= 0
	if last {
		w.editors = 0
	}
	cfg, r := w.cfg, w.ready
	w.mu.Unlock()
	if !last {
		return
	}
	if cfg != nil && cfg.EffectiveLifetime() == devcontainer.LifetimeCommand {
		w.stopIdle(ctx, r)
		return
	}
	id := ""
	if r != nil {
		id = r.ID
	} else if inst, err := w.find(ctx); err == nil && inst.State == backends.StateRunning {
		id = inst.ID
	}
	if id == "" || !stopsOnLeave(cfg) {
		return
	}
	w.writeLease(ctx, id, false)
	if n := w.otherSessions(ctx, id); n > 0 {
		w.log.Info("last session of this berth gone; others remain, so the container stays", "sessions", n)
		return
	}
	w.log.Info("last editor session gone: stopping the container", "shutdownAction", cfg.ShutdownAction)
	if err := w.Down(ctx, false); err != nil {
		w.log.Warn("shutdownAction: stop failed", "err", err)
	}
}

func stopsOnLeave(cfg *devcontainer.Config) bool {
	if cfg == nil || (cfg.ShutdownAction != "stopContainer" && cfg.ShutdownAction != "stopCompose") {
		return false
	}
	switch cfg.Source {
	case devcontainer.SourceDevcontainerJSON, devcontainer.SourceDotDevcontainer:
		return true
	case devcontainer.SourceExplicit:
		return strings.HasSuffix(cfg.File, ".json")
	}
	return false
}

// sessionsDir holds one lease per berth process with editor sessions on
// the instance, so that shutdownAction counts sessions across processes.
const sessionsDir = "/.berth/sessions"

// leaseName is this process's lease file.
func leaseName() string { return url.PathEscape(hostID()) }

// writeLease records (or releases) this process's editor sessions in the
// instance. Failing to is logged: the container then merely may stop
// early or late.
func (w *Workspace) writeLease(ctx context.Context, id string, held bool) {
	body := ""
	if held {
		body = hostID()
	}
	if err := w.writeFile(ctx, id, sessionsDir+"/"+leaseName(), []byte(body)); err != nil {
		w.log.Warn("could not record the editor session in the container", "held", held, "err", err)
	}
}

// otherSessions counts the live leases of other berth processes.
func (w *Workspace) otherSessions(ctx context.Context, id string) int {
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	rc, err := w.m.backend.CopyFrom(ctx, id, sessionsDir)
	if err != nil {
		return 0
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	n := 0
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			continue
		}
		body, err := io.ReadAll(io.LimitReader(tr, 1024))
		if err != nil {
			break
		}
		owner := string(body)
		if owner == hostID() {
			continue
		}
		if pid, ok := sameHostPID(owner); ok && errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // a berth that died without releasing its lease
		}
		n++
	}
	return n
}

// buildLog streams an image build's log to the client under a pseudo-pid,
// taken at its first line, and ends it with berth/exit.
type buildLog struct {
	c  *Client
	id string // "" until the build writes
}

func (b *buildLog) Write(p []byte) (int, error) {
	if b.id == "" {
		id, err := b.c.newID()
		if err != nil {
			return 0, err
		}
		b.id = id
	}
	b.c.sink.Output(b.id, "stdout", p)
	return len(p), nil
}

func (b *buildLog) finish(err error) {
	if b.id == "" {
		return
	}
	st := backends.ExitStatus{}
	reason := ""
	if err != nil {
		st.Code, reason = 1, err.Error()
	}
	b.c.sink.Exit(b.id, st, reason)
}

// SetSecrets sets the variables every process of the client gets, its
// lifecycle hooks included: the server's --secrets-file and the client's
// initializationOptions.secrets, merged. Call it before the client's first
// call.
func (c *Client) SetSecrets(env map[string]string) {
	c.mu.Lock()
	c.secrets = env
	c.mu.Unlock()
}

// applyConfig fills an exec's defaults from the workspace configuration
// and the client: remoteUser (else containerUser), and the environment in
// layers, each winning over the one before: the remote user's shell
// environment (userEnvProbe), remoteEnv, the client's secrets, then what
// the call gives. berth's own probes get none of it.
func (c *Client) applyConfig(ctx context.Context, w *Workspace, r Ready, opts *ExecOptions) {
	if opts.Internal {
		return
	}
	c.mu.Lock()
	secretEnv := c.secrets
	c.mu.Unlock()
	var remoteEnv, userEnv map[string]string
	if cfg := r.Config; cfg != nil {
		remote := remoteUser(cfg, r.Instance.Instance)
		if opts.User == "" || opts.User == remote {
			// The remote user's shell environment, under everything else;
			// another user's process doesn't get it.
			opts.User = remote
			userEnv = w.userEnv(ctx, r, remote)
		}
		if len(cfg.RemoteEnv) > 0 {
			var containerEnv map[string]string
			for _, v := range cfg.RemoteEnv {
				if strings.Contains(v, "${containerEnv:") {
					containerEnv = c.containerEnv(ctx, w, r)
					break
				}
			}
			remoteEnv = cfg.ResolveRemoteEnv(containerEnv)
		}
	}
	if len(userEnv) == 0 && len(remoteEnv) == 0 && len(secretEnv) == 0 {
		return
	}
	opts.Env = secrets.Merge(userEnv, remoteEnv, secretEnv, opts.Env)
}

// containerEnv reads the instance's environment, for ${containerEnv:VAR}.
func (c *Client) containerEnv(ctx context.Context, w *Workspace, r Ready) map[string]string {
	var out bytes.Buffer // one writer: stdout
	env := map[string]string{}
	proc, err := w.exec(ctx, r, backends.ExecSpec{Argv: []string{"env"}, Stdout: &out, Stderr: io.Discard, Helper: true}, nil)
	if err != nil {
		return env
	}
	if _, err := proc.Wait(ctx); err != nil {
		return env
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// watchConfig watches ws's configuration inputs while the client lives.
func (c *Client) watchConfig(ws string, cfg *devcontainer.Config) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.watcher == nil {
		w, err := newConfigWatcher(c)
		if err != nil {
			c.mu.Unlock()
			c.log.Warn("not watching the configuration", "err", err)
			return
		}
		c.watcher = w
	}
	w := c.watcher
	c.mu.Unlock()
	w.watch(ws, cfg)
}
