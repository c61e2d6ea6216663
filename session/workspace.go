package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/pathmap"
)

// Workspace is the one owner of a workspace's state on one backend: its
// instance, its resolved configuration, its path mapper and its runner (the
// agent, or plain exec). It is the only code that creates, starts,
// recreates or stops the instance, and the lifecycle hooks that go with
// those run here, once.
//
// Goroutines: none of its own. The Manager's event watcher calls
// instanceEvent; everything else runs on its callers' goroutines.
type Workspace struct {
	m    *Manager
	path string
	log  *slog.Logger

	op sync.Mutex // serialises create, start, recreate, stop, remove and their hooks

	agentMu sync.Mutex // serialises starting the agent

	mu        sync.Mutex                   // guards the following
	ready     *Ready                       // the running instance as last ensured; nil: ensure again
	cfg       *devcontainer.Config         // last resolved
	runner    *agentEntry                  // the agent of ready's instance; nil: not chosen yet
	netns     *string                      // the instance's netns path, once looked up
	clients   map[*Client]bool             // clients that used the workspace: they hear of changes
	editors   int                          // editor sessions of this process attached
	running   int                          // clients' processes of this berth process running in the instance
	memLimit  bool                         // the instance has a memory limit, as far as this berth knows: OOM kills are looked for
	ownStopAt time.Time                    // when berth itself last stopped or removed it
	lastState string                       // last state reported to clients
	healthKey string                       // the instance start whose service health is watched
	published string                       // the agent socket and config hash of the profile last written
	recreates int                          // recreations so far, for runs that lost a race with one
	bgDone    chan struct{}                // closed when the hooks left to the background end; nil: none ran
	probed    map[string]map[string]string // userEnvProbe's environments, by instance start, user and probe
	portWatch *portWatcher                 // while clients that hear of ports use it
	plugins   *pluginEntry                 // the plugin host of ready's instance start; nil: none yet
}

// Ready is a workspace's running instance and what reaches it, as of one
// Ensure.
type Ready struct {
	Instance
	Mapper *pathmap.Mapper
	Hooks  []HookRun // lifecycle commands this call ran

	ws     *Workspace
	copied bool // a synced workspace was copied in by this call
}

// agentEntry is the agent of one start of one instance, or why it has none.
type agentEntry struct {
	key      string        // instance id and start: a new start needs a new agent
	bin      *agent.Binary // the build chosen for the instance; nil when none fits
	client   *agent.Client
	reason   string    // set when client is nil
	failedAt time.Time // when a start failed; retried after agentRetry
}

// HookFunc runs one lifecycle command for the caller that triggered it,
// streaming its output to that caller's client.
type HookFunc func(ctx context.Context, r Ready, hook, entry string, argv []string) HookRun

// EnsureOptions are the parameters of Workspace.Ensure.
type EnsureOptions struct {
	Image    string    // the image when none is configured
	Config   string    // explicit configuration file; "" discovers one
	Recreate bool      // remove any existing instance first, rebuilding its image
	Fresh    bool      // ask the engine even when berth knows the instance runs
	BuildLog io.Writer // receives an image build's log; may be nil
	Hooks    HookFunc  // runs lifecycle commands; nil runs them without output
	// WaitAll waits for every lifecycle hook (berth/up); otherwise those
	// after the configuration's waitFor finish in the background.
	WaitAll bool
	// Background runs the hooks left to the background, with no output
	// and on no connection; nil runs them as runHookQuiet does.
	Background HookFunc
	// Authorize lets the configuration act (create, start, run hooks),
	// or says why not; nil lets it. Clients pass their trust check.
	Authorize func(ctx context.Context, ws string, cfg *devcontainer.Config) error
	// Limits are the client's (initializationOptions.limits); each field
	// set wins over the configuration's.
	Limits backends.Limits
}

// Deadlines of engine calls. Metadata calls answer quickly or the engine
// is in trouble; long operations fail only after a spell without progress,
// so a loaded machine doesn't fail a slow pull.
const (
	metaTimeout = 5 * time.Second
	idleTimeout = 60 * time.Second
)

// Path is the workspace's resolved host path.
func (w *Workspace) Path() string { return w.path }

// Manager returns the workspace's manager.
func (w *Workspace) Manager() *Manager { return w.m }

// current returns the ready instance when nothing needs doing.
func (w *Workspace) current() (Ready, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ready == nil {
		return Ready{}, false
	}
	r := *w.ready
	r.Hooks, r.Created, r.Started, r.copied = nil, false, false, false
	return r, true
}

// Ensure returns the workspace's running instance, creating or starting it
// when needed, and runs the lifecycle hooks that creating or starting it
// calls for before it returns: onCreate, updateContent and postCreate once
// per container, postStart once per start. Callers that arrive while hooks
// run wait for them.
func (w *Workspace) Ensure(ctx context.Context, opts EnsureOptions) (Ready, error) {
	fast := !opts.Recreate && !opts.Fresh
	if fast {
		if r, ok := w.current(); ok {
			return r, nil
		}
	}
	w.op.Lock()
	defer w.op.Unlock()
	if fast {
		if r, ok := w.current(); ok {
			return r, nil
		}
	}
	if w.m.isClosed() {
		return Ready{}, ErrClosed
	}
	inst, err := w.up(ctx, opts)
	if err != nil {
		return Ready{}, err
	}
	if inst.Started {
		// A stop after this start is not the one berth made before it.
		w.mu.Lock()
		w.ownStopAt = time.Time{}
		w.mu.Unlock()
	}
	mapper, err := w.m.mapperFor(MountsOf(inst.Instance))
	if err != nil {
		return Ready{}, err
	}
	r := Ready{Instance: inst, Mapper: mapper, ws: w}
	if inst.Created && !inst.synthetic {
		w.updateRemoteUID(ctx, r)
	}
	if err := w.lifecycle(ctx, &r, opts); err != nil {
		return Ready{}, err
	}
	if opts.WaitAll {
		// Hooks an earlier call left to the background count too.
		if err := w.waitBackground(ctx); err != nil {
			return Ready{}, err
		}
	}
	// After the hooks berth waits for, which may prepare what it runs.
	if err := w.startService(ctx, r); err != nil {
		return Ready{}, err
	}
	w.mu.Lock()
	keep := r
	w.ready = &keep
	w.lastState = string(backends.StateRunning)
	w.mu.Unlock()
	w.publish(ctx)
	return r, nil
}

// up is Ensure's engine part: the old instance, the config, a build, the
// backend's Ensure. The caller holds op.
func (w *Workspace) up(ctx context.Context, opts EnsureOptions) (Instance, error) {
	ws := w.path
	prior, ferr := w.find(ctx)
	if ferr != nil && !errors.Is(ferr, backends.ErrNotFound) {
		return Instance{}, ferr
	}
	exists := ferr == nil
	synthetic := false
	cfg, err := w.Config(opts.Config, opts.Image)
	if errors.Is(err, devcontainer.ErrNoConfig) && exists && !opts.Recreate {
		// An existing instance needs no configuration to be used.
		cfg, err = &devcontainer.Config{Source: devcontainer.SourceImage, Image: prior.Image, Hash: prior.Labels[LabelConfigHash]}, nil
		synthetic = true
	}
	if err != nil {
		if errors.Is(err, devcontainer.ErrNoConfig) {
			return Instance{}, fmt.Errorf("%w: %v", ErrNoImage, err)
		}
		return Instance{}, err
	}
	spec, err := w.m.spec(ws, cfg)
	if err != nil {
		return Instance{}, err
	}
	if opts.Authorize != nil {
		// Before anything is made or run; the user may take a while to
		// answer, so before the watchdog too.
		if err := opts.Authorize(ctx, ws, cfg); err != nil {
			return Instance{}, err
		}
	}
	var warnings []string
	if !synthetic {
		warnings = w.m.warnings(cfg, spec)
		// On the host, before anything else; it may take its time (a
		// fetch, a login), so before the watchdog.
		if err := w.initialize(ctx, cfg.InitializeCommand); err != nil {
			return Instance{}, err
		}
	}
	askCtx := ctx // the user may take a while to answer: no watchdog
	ctx, touch, cancel := watchdog(ctx, idleTimeout)
	defer cancel()
	if opts.Recreate && exists {
		w.mu.Lock()
		w.recreates++
		w.mu.Unlock()
		w.forget()
		w.m.forgetProfile(prior)
		w.dropRunner("the container is being recreated")
		w.setOwnStop()
		w.log.Info("removing instance to recreate it", "instance", prior.Name)
		if err := w.m.backend.Remove(ctx, prior.ID); err != nil && !errors.Is(err, backends.ErrNotFound) {
			return Instance{}, w.m.engineErr(ctx, "remove", err)
		}
		// Its host files stay: the new instance has the same name, and
		// its run directory is already made for it.
		exists = false
	}
	var plan imagePlan
	if exists {
		// Reuse it, stale or not: rebuilding is the user's call (recreate).
		// Its image metadata is what it was created with.
		plan.image = prior.Image
		plan.entries = labelEntries(prior.Labels[LabelMetadata], "the "+LabelMetadata+" label of "+prior.Name, w.log)
	} else if !synthetic {
		blog := opts.BuildLog
		if blog == nil {
			blog = io.Discard
		}
		if cfg.Build != nil {
			if err := w.m.build(ctx, ws, cfg, touchWriter{blog, touch}); err != nil {
				return Instance{}, w.m.engineErr(ctx, "build", err)
			}
		}
		if plan, err = w.m.planImage(ctx, ws, cfg, touchWriter{blog, touch}, w.log); err != nil {
			return Instance{}, w.m.engineErr(ctx, "build", err)
		}
	}
	if len(plan.entries) > 0 {
		plan.entries = substituteEntries(plan.entries, ws, cfg.WorkspaceFolder)
		merged := devcontainer.Merge(cfg, plan.entries)
		if opts.Authorize != nil && !exists {
			// The base image's own hooks need trust as the config's do.
			if err := opts.Authorize(askCtx, ws, merged); err != nil {
				return Instance{}, err
			}
			touch()
		}
		merged.ContainerEnv = instanceEnv(cfg, plan.entries, plan.install == nil)
		if spec, err = w.m.spec(ws, merged); err != nil {
			return Instance{}, err
		}
		cfg = merged
		label, err := json.Marshal(plan.entries)
		if err != nil {
			return Instance{}, err
		}
		spec.Labels[LabelMetadata] = string(label)
	}
	if plan.image != "" {
		spec.Image = plan.image
	}
	spec.Limits = overLimits(spec.Limits, opts.Limits)
	inst, created, err := w.m.backend.Ensure(ctx, spec)
	if err != nil {
		return Instance{}, w.m.engineErr(ctx, "ensure", err)
	}
	if spec.Limits.Memory > 0 {
		w.mu.Lock()
		w.memLimit = true
		w.mu.Unlock()
	}
	if !created && !spec.Limits.IsZero() {
		// Limits stay out of the config hash: a changed one is applied
		// to the container there is.
		if err := w.applyLimits(ctx, inst, spec.Limits); err != nil {
			warnings = append(warnings, fmt.Sprintf("limits not applied: %v", err))
		}
	}
	out := Instance{
		Instance: inst, Backend: w.m.backend.Name(), Created: created,
		Started: created || (exists && prior.State != backends.StateRunning),
		Config:  cfg, synthetic: synthetic,
	}
	if created {
		out.install = plan.install
	}
	out.Agent = w.m.agentStatus(ctx, inst, false)
	if !synthetic {
		warnings = append(warnings, w.m.hostShortfall(ctx, cfg.HostRequirements)...)
	}
	out.Warnings = warnings
	for _, msg := range warnings {
		w.log.Info(msg)
	}
	out.Stale = !created && cfg.Hash != "" && inst.Labels[LabelConfigHash] != cfg.Hash
	if out.Stale {
		backends.Report(ctx, "container %s is stale: its configuration changed; berth/up with recreate rebuilds it", inst.Name)
	}
	if created {
		w.log.Info("instance created", "instance", inst.Name, "config", cfg.Source)
	}
	return out, nil
}

// find looks the workspace's instance up, within metaTimeout.
func (w *Workspace) find(ctx context.Context) (backends.Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	inst, err := w.m.backend.Find(ctx, w.path)
	if err != nil {
		return inst, w.m.engineErr(ctx, "find", err)
	}
	return inst, nil
}

// forget drops what berth knew of the running instance, so the next call
// looks again.
func (w *Workspace) forget() {
	w.mu.Lock()
	w.ready, w.netns = nil, nil
	w.mu.Unlock()
}

// Config resolves the workspace's configuration: explicit, devcontainer.json,
// Containerfile or image, in that order (see devcontainer.Discover). image
// is the fallback image.
func (w *Workspace) Config(explicit, image string) (*devcontainer.Config, error) {
	if image == "" {
		image = w.m.defaultImage
	}
	cfg, err := devcontainer.Discover(w.path, explicit, image, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.cfg = cfg
	w.mu.Unlock()
	return cfg, nil
}

// cachedConfig returns the configuration last resolved, or nil.
func (w *Workspace) cachedConfig() *devcontainer.Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg
}

// Status returns the workspace's instance, or nil if it has none. It
// compares the instance with the workspace's configuration now, to say
// whether it is stale; explicit and image are as for Ensure. It never
// creates or starts anything.
func (w *Workspace) Status(ctx context.Context, explicit, image string) (*Instance, error) {
	inst, err := w.find(ctx)
	if errors.Is(err, backends.ErrNotFound) {
		w.forget()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if inst.State != backends.StateRunning {
		w.forget()
	}
	out := &Instance{Instance: inst, Backend: w.m.backend.Name(), Agent: w.m.agentStatus(ctx, inst, true)}
	if cfg, err := w.Config(explicit, image); err == nil {
		out.Config = cfg
		out.Stale = cfg.Hash != "" && inst.Labels[LabelConfigHash] != cfg.Hash
	}
	if inst.State == backends.StateRunning && out.Config != nil && out.Config.Berth.Service != nil {
		// berth's own check, through the agent, whichever berth process
		// brought the service up.
		out.Health, out.HealthError = w.healthNow(ctx, w.serviceReady(inst, out.Config))
	}
	if inst.State == backends.StateRunning && inst.Labels[LabelHooks] == "true" {
		if st, err := w.readState(ctx, inst.ID); err == nil && st.Create == createFailed {
			out.HookError = st.Error
		}
	}
	return out, nil
}

// serviceReady is what checking inst's service needs: the Ready this berth
// ensured, or, when another berth process brought inst up, one made of
// inst and cfg.
func (w *Workspace) serviceReady(inst backends.Instance, cfg *devcontainer.Config) Ready {
	if r, ok := w.current(); ok && r.ID == inst.ID && r.Config != nil && r.Config.Berth.Service != nil {
		return r
	}
	return Ready{Instance: Instance{Instance: inst, Backend: w.m.backend.Name(), Config: cfg}, ws: w}
}

// Down stops the workspace's instance, or removes it. It is idempotent.
func (w *Workspace) Down(ctx context.Context, remove bool) error {
	w.op.Lock()
	defer w.op.Unlock()
	inst, err := w.find(ctx)
	if errors.Is(err, backends.ErrNotFound) {
		w.forget()
		return nil
	}
	if err != nil {
		return err
	}
	w.forget()
	w.m.forgetProfile(inst)
	w.dropRunner("the container was stopped by berth")
	ctx, _, cancel := watchdog(ctx, idleTimeout)
	defer cancel()
	if d, ok := w.m.backend.(backends.Downer); ok {
		// The instance may be one service of a Compose project: down
		// takes the whole project with it.
		w.setOwnStop()
		if remove {
			w.log.Info("removing instance", "instance", inst.Name)
		}
		if err := d.Down(ctx, inst.ID, remove); err != nil && !errors.Is(err, backends.ErrNotFound) {
			return w.m.engineErr(ctx, "down", err)
		}
		if remove {
			w.m.forgetHost(ctx, inst)
		}
		return nil
	}
	if remove {
		w.setOwnStop()
		w.log.Info("removing instance", "instance", inst.Name)
		if err := w.m.backend.Remove(ctx, inst.ID); err != nil && !errors.Is(err, backends.ErrNotFound) {
			return w.m.engineErr(ctx, "remove", err)
		}
		w.m.forgetHost(ctx, inst)
		return nil
	}
	if inst.State == backends.StateStopped {
		return nil
	}
	w.setOwnStop()
	if err := w.m.backend.Stop(ctx, inst.ID); err != nil {
		return w.m.engineErr(ctx, "stop", err)
	}
	return nil
}

func (w *Workspace) setOwnStop() {
	w.mu.Lock()
	w.ownStopAt = time.Now()
	w.mu.Unlock()
}

// Mapper returns the workspace's path mapper: from its instance's mounts
// when it has one, else from the mounts it would be created with. It never
// creates anything.
func (w *Workspace) Mapper(ctx context.Context) (*pathmap.Mapper, error) {
	if r, ok := w.current(); ok {
		return r.Mapper, nil
	}
	var mounts []backends.Mount
	if inst, err := w.find(ctx); err == nil {
		mounts = MountsOf(inst)
	} else if !errors.Is(err, backends.ErrNotFound) && !errors.Is(err, backends.ErrUnavailable) {
		return nil, err
	}
	if len(mounts) == 0 {
		mounts = []backends.Mount{{Host: w.path, Container: Workdir(w.path)}}
	}
	return w.m.mapperFor(mounts)
}

// engineErr turns a deadline that berth set on an engine call into the
// engine being unavailable, which is what it means to the user.
func (m *Manager) engineErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.DeadlineExceeded) && !errors.Is(err, backends.ErrUnavailable) {
		return fmt.Errorf("%s: %s: the engine did not answer in time (is its daemon running, or frozen?): %w", m.backend.Name(), op, backends.ErrUnavailable)
	}
	return err
}

// watchdog returns a ctx that ends after d without progress. Every step
// reported through it (backends.Report), and every call of touch,
// restarts the clock.
func watchdog(ctx context.Context, d time.Duration) (context.Context, func(), context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(d, func() { cancel(context.DeadlineExceeded) })
	touch := func() { t.Reset(d) }
	ctx = backends.AlsoReport(ctx, func(string) { touch() })
	return ctx, touch, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// touchWriter counts every write as progress.
type touchWriter struct {
	w     io.Writer
	touch func()
}

func (t touchWriter) Write(p []byte) (int, error) {
	t.touch()
	return t.w.Write(p)
}

// hostID names this berth process, for bookkeeping shared with others.
func hostID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

// sameHostPID returns the pid of an owner written by hostID on this host.
func sameHostPID(owner string) (int, bool) {
	h, _ := os.Hostname()
	host, pid, ok := strings.Cut(owner, ":")
	if !ok || host != h {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(pid, "%d", &n); err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// ToContainer maps a host path or file URI into the container like
// m.ToContainer, and also when the path reaches a mount through a symlink:
// workspaces are keyed by their real path (ResolveWorkspace), so the path
// is resolved the same way before it is given up on.
func ToContainer(m *pathmap.Mapper, p string) (string, bool) {
	if got, ok := m.ToContainer(p); ok {
		return got, true
	}
	if real := realHostPath(p); real != p {
		return m.ToContainer(real)
	}
	return "", false
}

// realHostPath resolves symlinks in the longest existing prefix of a host
// path or file URI, keeping the rest as is.
func realHostPath(p string) string {
	isURI := len(p) >= 5 && strings.EqualFold(p[:5], "file:")
	fp := p
	var u *url.URL
	if isURI {
		var err error
		if u, err = url.Parse(p); err != nil || u.Scheme != "file" {
			return p
		}
		fp = filepath.FromSlash(u.Path)
	}
	if !filepath.IsAbs(fp) {
		return p
	}
	// The unresolved rest is clean's tail after dir, sliced rather than
	// joined level by level: a path can be megabytes long.
	clean := filepath.Clean(fp)
	dir := clean
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			resolved := clean
			if real != dir {
				resolved = filepath.Join(real, clean[len(dir):])
			}
			if !isURI {
				return resolved
			}
			u.Path = filepath.ToSlash(resolved)
			return u.String()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return p
		}
		dir = parent
	}
}
