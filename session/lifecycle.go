package session

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
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

func (c *Client) ensure(ctx context.Context, ws, image string) (backends.Instance, error) {
	return c.m.ensure(ctx, UpOptions{Workspace: ws, Image: image, Config: c.ConfigPath()})
}

// HookRun is the outcome of one lifecycle command.
type HookRun struct {
	Hook string // postCreateCommand, postStartCommand, postAttachCommand
	Name string // the entry's name in the object form
	PID  string
	Code int
	Err  string
}

// UpResult is the outcome of Client.Up.
type UpResult struct {
	Instance
	BuildPID  string // the build log's pseudo-pid, when an image was built
	Hooks     []HookRun
	Forwarded []TunnelInfo
}

// Up brings the workspace's instance up (Manager.Up), then does what the
// devcontainer spec asks of an attach: postCreateCommand once per
// container, postStartCommand on every start, postAttachCommand once per
// client, and forwardPorts as tunnels. A build's log streams to the client
// under a pseudo-pid of its own.
func (c *Client) Up(ctx context.Context, opts UpOptions) (UpResult, error) {
	if opts.Config == "" {
		opts.Config = c.ConfigPath()
	}
	blog := &buildLog{c: c}
	opts.BuildLog = blog
	inst, err := c.m.Up(ctx, opts)
	blog.finish(err)
	if err != nil {
		return UpResult{}, err
	}
	res := UpResult{Instance: inst, BuildPID: blog.id}
	if inst.Labels[LabelSync] == "true" {
		if err := c.startSync(ctx, opts.Workspace, opts.Image, inst.Instance); err != nil {
			return UpResult{}, fmt.Errorf("sync: %w", err)
		}
	}
	cfg := inst.Config
	if cfg == nil {
		return res, nil
	}
	c.watchConfig(opts.Workspace, cfg)
	first := c.firstAttach(opts.Workspace)
	hooks := []struct {
		name string
		hook *devcontainer.Hook
		run  bool
	}{
		{"postCreateCommand", cfg.PostCreate, inst.Created},
		{"postStartCommand", cfg.PostStart, inst.Started},
		{"postAttachCommand", cfg.PostAttach, first},
	}
	for _, h := range hooks {
		if h.hook == nil || !h.run {
			continue
		}
		backends.Report(ctx, "running %s", h.name)
		runs := c.runHook(ctx, opts, h.name, h.hook)
		res.Hooks = append(res.Hooks, runs...)
		for _, r := range runs {
			if r.Err != "" || r.Code != 0 {
				c.log.Warn("lifecycle command failed", "hook", h.name, "name", r.Name, "code", r.Code, "err", r.Err)
			}
		}
	}
	if first {
		for _, p := range cfg.ForwardPorts {
			host := p.Host
			if host == "" {
				host = "127.0.0.1"
			}
			t, err := c.Forward(ctx, opts.Workspace, opts.Image, host, p.Port, p.Port)
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
	}
	return res, nil
}

// firstAttach reports whether this is the client's first Up of ws.
func (c *Client) firstAttach(ws string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attached == nil {
		c.attached = map[string]bool{}
	}
	if c.attached[ws] {
		return false
	}
	c.attached[ws] = true
	c.m.attach(ws)
	return true
}

// runHook runs a lifecycle command in its three forms: a string through
// /bin/sh, an array directly, an object's entries in parallel.
func (c *Client) runHook(ctx context.Context, opts UpOptions, name string, h *devcontainer.Hook) []HookRun {
	one := func(entry string, h *devcontainer.Hook) HookRun {
		argv := h.Argv
		if h.Shell != "" {
			argv = []string{"/bin/sh", "-c", h.Shell}
		}
		r := HookRun{Hook: name, Name: entry}
		if len(argv) == 0 {
			return r
		}
		run, err := c.runWork(ctx, ExecOptions{Workspace: opts.Workspace, Image: opts.Image, Argv: argv, Kind: "os"}, nil)
		r.PID, r.Code = run.PID, run.Status.Code
		if err != nil {
			r.Err = err.Error()
		}
		return r
	}
	if len(h.Parallel) == 0 {
		return []HookRun{one("", h)}
	}
	names := make([]string, 0, len(h.Parallel))
	for n := range h.Parallel {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]HookRun, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = one(n, h.Parallel[n])
		}()
	}
	wg.Wait()
	return out
}

// applyConfig fills an exec's defaults from the workspace configuration:
// remoteUser (else containerUser) and remoteEnv, under what the call gives.
func (c *Client) applyConfig(ctx context.Context, inst backends.Instance, opts *ExecOptions) {
	cfg := c.m.cachedConfig(opts.Workspace)
	if cfg == nil || opts.internal {
		return
	}
	if opts.User == "" {
		opts.User = cfg.RemoteUser
		if opts.User == "" {
			opts.User = cfg.ContainerUser
		}
	}
	if len(cfg.RemoteEnv) == 0 {
		return
	}
	var containerEnv map[string]string
	for _, v := range cfg.RemoteEnv {
		if strings.Contains(v, "${containerEnv:") {
			containerEnv = c.containerEnv(ctx, opts.Workspace, opts.Image)
			break
		}
	}
	env := cfg.ResolveRemoteEnv(containerEnv)
	merged := make(map[string]string, len(env)+len(opts.Env))
	for k, v := range env {
		merged[k] = v
	}
	for k, v := range opts.Env {
		merged[k] = v
	}
	opts.Env = merged
}

// containerEnv reads the instance's environment, for ${containerEnv:VAR}.
func (c *Client) containerEnv(ctx context.Context, ws, image string) map[string]string {
	res, err := c.Run(ctx, ExecOptions{Workspace: ws, Image: image, Argv: []string{"env"}, internal: true}, 0)
	env := map[string]string{}
	if err != nil {
		return env
	}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
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
	b.c.sink.Output(b.id, "stdout", string(p))
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
