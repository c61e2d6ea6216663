// Package session owns berth's runtime state: which instance serves each
// workspace, the processes each client started, and their lifetimes.
//
// A Manager is shared by every client of one berth process and keeps exactly
// one instance per workspace. A Client is one editor connection; it owns the
// processes it started and ends them all when it closes.
package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/pathmap"
)

// Sentinel errors of the session layer.
var (
	// ErrNoWorkspace means a call named no workspace and the client has no default.
	ErrNoWorkspace = errors.New("no workspace given and no default workspace")
	// ErrBadWorkspace means the workspace is not an existing host directory.
	ErrBadWorkspace = errors.New("invalid workspace")
	// ErrNoImage means no image was configured for a workspace that needs one.
	ErrNoImage = errors.New("no image configured")
	// ErrNoSuchProcess means the pid is unknown to this client.
	ErrNoSuchProcess = errors.New("no such process")
	// ErrProcessExited means the process has already exited.
	ErrProcessExited = errors.New("process has exited")
	// ErrStdinClosed means the process was started without stdin, or its
	// stdin was closed already.
	ErrStdinClosed = errors.New("stdin not open")
	// ErrClosed means the client is shutting down.
	ErrClosed = errors.New("session closed")
	// ErrNeedsAgent means the operation needs the in-container agent,
	// which is disabled or unusable for this instance.
	ErrNeedsAgent = errors.New("needs the berth agent")
	// ErrNoSuchTunnel means the tunnel id is unknown to this client.
	ErrNoSuchTunnel = errors.New("no such tunnel")
	// ErrBind means a host port could not be listened on.
	ErrBind = errors.New("cannot listen")
	// ErrBadConfig means the workspace configuration asks for something
	// berth can't do.
	ErrBadConfig = errors.New("unsupported configuration")
)

// Instance is an instance as berth reports it to clients.
type Instance struct {
	backends.Instance
	Backend string
	Created bool // created by the call that returned it
	Started bool // created or started by the call that returned it
	Stale   bool // its configuration changed since it was created
	Config  *devcontainer.Config
	Agent   AgentStatus
}

// AgentStatus says how berth reaches an instance's processes.
type AgentStatus struct {
	Enabled bool   // processes and tunnels go through the agent
	Reason  string // why not, when disabled
}

// Manager maps workspaces to instances on one backend.
type Manager struct {
	backend      backends.Backend
	log          *slog.Logger
	defaultImage string
	flavor       pathmap.Flavor

	agentBin *agent.Binary // nil: agent disabled
	agentOff string        // why agentBin is nil
	noFast   bool          // keep everything on the exec stream

	mu      sync.Mutex             // guards the following
	locks   map[string]*sync.Mutex // per-workspace, serialises Up and Down
	cache   map[string]backends.Instance
	agents  map[string]*agentEntry          // by instance id
	netnss  map[string]string               // by workspace: the instance's netns path
	configs map[string]*devcontainer.Config // by workspace: last resolved
	clients map[string]int                  // by workspace: clients attached
	closed  bool
}

// agentEntry is the agent of one instance, or why it has none.
type agentEntry struct {
	client   *agent.Client
	reason   string    // set when client is nil
	failedAt time.Time // when a start failed; retried after agentRetry
}

// agentRetry is how long berth uses plain exec after an agent failed to
// start before it tries again.
const agentRetry = 30 * time.Second

// NewManager returns a Manager on backend. defaultImage is used when a call
// names none; it may be empty.
func NewManager(backend backends.Backend, log *slog.Logger, defaultImage string) *Manager {
	return &Manager{
		backend:      backend,
		log:          log,
		defaultImage: defaultImage,
		flavor:       pathmap.HostFlavor(),
		locks:        map[string]*sync.Mutex{},
		cache:        map[string]backends.Instance{},
		agents:       map[string]*agentEntry{},
		netnss:       map[string]string{},
		configs:      map[string]*devcontainer.Config{},
		clients:      map[string]int{},
		agentOff:     "agent not configured",
	}
}

// SetAgent enables the in-container agent with bin, or disables it when bin
// is nil, for the reason given. Call it before serving.
func (m *Manager) SetAgent(bin *agent.Binary, reason string) {
	m.agentBin, m.agentOff = bin, reason
}

// SetFastPath turns the agent's unix-socket fast path on (the default) or
// off, for engines that are local. Off, everything rides the exec stream,
// as it does with a remote engine.
func (m *Manager) SetFastPath(on bool) { m.noFast = !on }

// AgentEnabled reports whether the agent is configured, and why not.
func (m *Manager) AgentEnabled() (bool, string) {
	return m.agentBin != nil, m.agentOff
}

// agentFor returns the running agent of inst, starting it if needed. It
// returns nil and the reason when processes must use plain exec.
func (m *Manager) agentFor(ctx context.Context, inst backends.Instance) (*agent.Client, string) {
	if m.agentBin == nil {
		return nil, m.agentOff
	}
	if cfg := m.cachedConfig(inst.Workspace); cfg != nil && cfg.Berth.Agent != nil && !*cfg.Berth.Agent {
		return nil, "agent disabled by customizations.berth.agent in " + cfg.File
	}
	unlock := m.lock("agent:" + inst.ID)
	defer unlock()
	m.mu.Lock()
	e := m.agents[inst.ID]
	closed := m.closed
	m.mu.Unlock()
	switch {
	case closed:
		return nil, "shutting down"
	case e != nil && e.client != nil && e.client.Alive():
		return e.client, ""
	case e != nil && e.client == nil && time.Since(e.failedAt) < agentRetry:
		return nil, e.reason
	}
	if e != nil && e.client != nil {
		m.log.Info("agent gone; restarting it", "instance", inst.Name)
		e.client.Close()
	}
	e = &agentEntry{}
	if reason := m.platformMismatch(ctx, inst); reason != "" {
		// A mismatch never heals: don't retry.
		e.reason, e.failedAt = reason, time.Now().Add(100*365*24*time.Hour)
	} else if c, err := agent.Start(ctx, m.backend, inst.ID, m.agentBin, m.log.With("instance", inst.Name), agent.Options{FastDir: m.fastDirOf(inst)}); err != nil {
		e.reason, e.failedAt = "agent failed to start, using plain exec: "+err.Error(), time.Now()
		m.log.Warn("agent failed to start; using plain exec", "instance", inst.Name, "err", err)
	} else {
		e.client = c
	}
	m.mu.Lock()
	m.agents[inst.ID] = e
	m.mu.Unlock()
	return e.client, e.reason
}

// netns returns the path of the workspace's instance's network namespace
// when berth may join it (root, local engine, fast path on), else "".
func (m *Manager) netns(ctx context.Context, ws string) string {
	nser, ok := m.backend.(backends.NetNSer)
	if !ok || m.noFast || !netnsUsable() {
		return ""
	}
	m.mu.Lock()
	p, ok := m.netnss[ws]
	inst, cached := m.cache[ws]
	m.mu.Unlock()
	if ok {
		return p
	}
	if !cached {
		return ""
	}
	p, err := nser.NetNS(ctx, inst.ID)
	if err != nil {
		m.log.Debug("no netns fast path", "instance", inst.Name, "err", err)
		p = ""
	}
	m.mu.Lock()
	m.netnss[ws] = p
	m.mu.Unlock()
	return p
}

func (m *Manager) forgetNetNS(ws string) {
	m.mu.Lock()
	delete(m.netnss, ws)
	m.mu.Unlock()
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

func (m *Manager) platformMismatch(ctx context.Context, inst backends.Instance) string {
	pf, ok := m.backend.(backends.Platformer)
	if !ok {
		return ""
	}
	goos, goarch, err := pf.Platform(ctx, inst.ID)
	if err != nil || goos == "" || goarch == "" {
		return ""
	}
	if goos != m.agentBin.GOOS || goarch != m.agentBin.GOARCH {
		return fmt.Sprintf("container is %s/%s but the agent is built for %s/%s; using plain exec", goos, goarch, m.agentBin.GOOS, m.agentBin.GOARCH)
	}
	return ""
}

// agentStatus reports, without starting anything, how inst is reached.
func (m *Manager) agentStatus(inst backends.Instance) AgentStatus {
	if m.agentBin == nil {
		return AgentStatus{Reason: m.agentOff}
	}
	if cfg := m.cachedConfig(inst.Workspace); cfg != nil && cfg.Berth.Agent != nil && !*cfg.Berth.Agent {
		return AgentStatus{Reason: "agent disabled by customizations.berth.agent in " + cfg.File}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.agents[inst.ID]; e != nil && e.client == nil {
		return AgentStatus{Reason: e.reason}
	}
	return AgentStatus{Enabled: true}
}

// Close stops every agent this manager started, which ends their
// processes, and refuses new ones.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	agents := m.agents
	m.agents = map[string]*agentEntry{}
	m.mu.Unlock()
	for _, e := range agents {
		if e.client != nil {
			e.client.Close()
		}
	}
}

// Backend returns the manager's backend.
func (m *Manager) Backend() backends.Backend { return m.backend }

func (m *Manager) lock(ws string) func() {
	m.mu.Lock()
	l, ok := m.locks[ws]
	if !ok {
		l = &sync.Mutex{}
		m.locks[ws] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (m *Manager) remember(ws string, inst *backends.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.cache[ws]; !ok || inst == nil || old.ID != inst.ID || inst.State != backends.StateRunning {
		delete(m.netnss, ws)
	}
	if inst == nil {
		delete(m.cache, ws)
		return
	}
	m.cache[ws] = *inst
}

func (m *Manager) cached(ws string) (backends.Instance, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst, ok := m.cache[ws]
	return inst, ok
}

// ResolveWorkspace turns a host path or file URI into the canonical key of a
// workspace: absolute, cleaned, symlinks resolved, and an existing directory.
func ResolveWorkspace(p string) (string, error) {
	if p == "" {
		return "", ErrNoWorkspace
	}
	if len(p) >= 5 && strings.EqualFold(p[:5], "file:") {
		u, err := url.Parse(p)
		if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") {
			return "", fmt.Errorf("%w: %q is not a local file URI", ErrBadWorkspace, p)
		}
		p = filepath.FromSlash(u.Path)
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%w: %q is not an absolute path", ErrBadWorkspace, p)
	}
	p = filepath.Clean(p)
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadWorkspace, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s is not a directory", ErrBadWorkspace, p)
	}
	return p, nil
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// InstanceName is the deterministic instance name for a workspace: readable,
// and unique by a hash of the full path.
func InstanceName(workspace string) string {
	sum := sha256.Sum256([]byte(workspace))
	base := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(filepath.Base(workspace)), "-"), "-._")
	if len(base) > 30 {
		base = base[:30]
	}
	if base == "" {
		base = "root"
	}
	return "berth-" + base + "-" + hex.EncodeToString(sum[:])[:12]
}

// Workdir is the default container path of a workspace.
func Workdir(workspace string) string {
	return path.Join("/workspaces", filepath.Base(workspace))
}

// UpOptions are the parameters of Up.
type UpOptions struct {
	Workspace string    // resolved workspace
	Image     string    // overrides the default image
	Recreate  bool      // remove any existing instance first, rebuilding its image
	Config    string    // explicit config file; "" discovers one
	BuildLog  io.Writer // receives an image build's log; may be nil
}

// Labels berth adds for the workspace configuration.
const (
	LabelConfigHash   = "berth.config"        // hash of the resolved config and its build inputs
	LabelConfigSource = "berth.config-source" // where the config came from
)

// spec turns a workspace's config into what the backend creates. It does
// not build: an image to build is named by its input hash.
func (m *Manager) spec(ws string, cfg *devcontainer.Config) (backends.Spec, error) {
	wd := cfg.WorkspaceFolder
	if wd == "" {
		wd = Workdir(ws)
	}
	image := cfg.Image
	if cfg.Build != nil {
		image = buildTag(ws, cfg)
	}
	if image == "" {
		return backends.Spec{}, fmt.Errorf("%w for %s: pass an image to berth/up, set initializationOptions.image, --image or BERTH_IMAGE, or add a devcontainer.json or Dockerfile", ErrNoImage, ws)
	}
	spec := backends.Spec{
		Workspace: ws,
		Name:      InstanceName(ws),
		Image:     image,
		Workdir:   wd,
		Mounts:    []backends.Mount{{Host: ws, Container: wd}},
		Env:       envList(cfg.ContainerEnv),
		Labels:    map[string]string{LabelConfigHash: cfg.Hash, LabelConfigSource: string(cfg.Source)},
	}
	local := true
	if l, ok := m.backend.(backends.Localer); ok {
		local = l.Local()
	}
	if wm := cfg.WorkspaceMount; (wm != nil && wm.Type == "copy") || !local {
		// Sync mode: the engine can't see the host folder (or the config
		// says copy), so the workspace is copied in and kept in sync.
		spec.Mounts = nil
		spec.Labels[LabelSync] = "true"
	} else if wm != nil {
		switch wm.Type {
		case "bind", "":
			spec.Mounts = []backends.Mount{{Host: wm.Source, Container: wm.Target, ReadOnly: wm.ReadOnly}}
		default:
			return backends.Spec{}, fmt.Errorf("%w: workspaceMount must be a bind mount of the workspace, got type %q", ErrBadConfig, wm.Type)
		}
	}
	for _, mt := range cfg.Mounts {
		spec.Mounts = append(spec.Mounts, backends.Mount{Host: mt.Source, Container: mt.Target, Type: mt.Type, ReadOnly: mt.ReadOnly})
	}
	if bin := m.agentBin; bin != nil && (cfg.Berth.Agent == nil || *cfg.Berth.Agent) {
		// The agent doubles as the instance's main process, so images
		// need nothing at all, not even a shell.
		spec.Init = []string{agent.InitPath, "init"}
		spec.InitPlatform = bin.GOOS + "/" + bin.GOARCH
		spec.Files = func() (io.Reader, error) { return bin.Tar() }
		if dir, ok := m.fastDir(spec.Name); ok {
			spec.Mounts = append(spec.Mounts, backends.Mount{Host: dir, Container: agent.RunDir})
		}
	}
	return spec, nil
}

// buildTag names a built image by its inputs, so an unchanged config never
// rebuilds.
func buildTag(ws string, cfg *devcontainer.Config) string {
	// Hex only: a workspace's name can make an invalid image reference.
	sum := sha256.Sum256([]byte(ws))
	return "berth-build/ws-" + hex.EncodeToString(sum[:])[:12] + ":" + cfg.Hash[:12]
}

// build makes the config's image unless an image of its tag exists.
func (m *Manager) build(ctx context.Context, ws string, cfg *devcontainer.Config, log io.Writer) error {
	b, ok := m.backend.(backends.Builder)
	if !ok {
		return fmt.Errorf("%w: the %s backend cannot build %s; build the image with docker and import it, or set \"image\"", backends.ErrBuild, m.backend.Name(), cfg.Build.Dockerfile)
	}
	tag := buildTag(ws, cfg)
	if ok, err := b.ImageExists(ctx, tag); err != nil {
		return err
	} else if ok {
		return nil
	}
	if log == nil {
		log = io.Discard
	}
	return b.Build(ctx, backends.BuildSpec{
		Context: cfg.Build.Context, Dockerfile: cfg.Build.Dockerfile, Args: cfg.Build.Args, Target: cfg.Build.Target,
		Tag: tag, Labels: map[string]string{backends.LabelManaged: "true", backends.LabelWorkspace: ws},
	}, log)
}

// Config resolves a workspace's configuration: explicit, devcontainer.json,
// Containerfile or image, in that order (see devcontainer.Discover). image
// is the fallback image.
func (m *Manager) Config(ws, explicit, image string) (*devcontainer.Config, error) {
	if image == "" {
		image = m.defaultImage
	}
	cfg, err := devcontainer.Discover(ws, explicit, image, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	if len(cfg.Unknown) > 0 || len(cfg.Berth.Unknown) > 0 {
		m.log.Info("ignoring unsupported config keys", "workspace", ws, "file", cfg.File, "keys", append(cfg.Unknown, cfg.Berth.Unknown...))
	}
	m.mu.Lock()
	m.configs[ws] = cfg
	m.mu.Unlock()
	return cfg, nil
}

// attach counts a client on ws; detach uncounts it and, when it was the
// last, honours the configuration's shutdownAction. Only a devcontainer.json
// says stopContainer (the spec's default); a plain image or Containerfile
// keeps berth's default, a container that outlives its clients.
func (m *Manager) attach(ws string) {
	m.mu.Lock()
	m.clients[ws]++
	m.mu.Unlock()
}

func (m *Manager) detach(ctx context.Context, ws string) {
	m.mu.Lock()
	m.clients[ws]--
	last := m.clients[ws] <= 0
	if last {
		delete(m.clients, ws)
	}
	cfg := m.configs[ws]
	m.mu.Unlock()
	if !last || cfg == nil || cfg.ShutdownAction != "stopContainer" {
		return
	}
	switch cfg.Source {
	case devcontainer.SourceDevcontainerJSON, devcontainer.SourceDotDevcontainer:
	case devcontainer.SourceExplicit:
		if !strings.HasSuffix(cfg.File, ".json") {
			return
		}
	default:
		return
	}
	m.log.Info("last client gone: stopping the container (shutdownAction stopContainer)", "workspace", ws)
	if err := m.Down(ctx, ws, false); err != nil {
		m.log.Warn("shutdownAction: stop failed", "workspace", ws, "err", err)
	}
}

// cachedConfig returns the config last resolved for ws, or nil.
func (m *Manager) cachedConfig(ws string) *devcontainer.Config {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.configs[ws]
}

// fastDir makes the host directory shared with an instance for the
// agent's fast path, when the engine is local.
func (m *Manager) fastDir(name string) (string, bool) {
	if l, ok := m.backend.(backends.Localer); !ok || !l.Local() {
		return "", false
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	switch {
	case base != "":
		base = filepath.Join(base, "berth")
	case os.Getuid() == 0:
		base = "/run/berth"
	default:
		base = filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Getuid()))
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		m.log.Warn("no fast path: cannot make its directory", "dir", dir, "err", err)
		return "", false
	}
	return dir, true
}

// UserMounts drops berth's own mounts, which no path maps through, and
// those that bind no host path.
func UserMounts(mounts []backends.Mount) []backends.Mount {
	out := make([]backends.Mount, 0, len(mounts))
	for _, mt := range mounts {
		if mt.Container != agent.RunDir && (mt.IsBind() || mt.Type == MountSync) {
			out = append(out, mt)
		}
	}
	return out
}

// MountSync is the type of the mount berth reports for a synced
// workspace: a copy kept up to date, which maps paths like a bind.
const MountSync = "sync"

// LabelSync marks an instance whose workspace is copied in and kept in
// sync instead of bind-mounted.
const LabelSync = "berth.sync"

// MountsOf returns an instance's mounts, with its synced workspace shown
// as a mount so that paths map the same way.
func MountsOf(inst backends.Instance) []backends.Mount {
	if inst.Labels[LabelSync] != "true" {
		return inst.Mounts
	}
	return append([]backends.Mount{{Host: inst.Workspace, Container: inst.Workdir, Type: MountSync}}, inst.Mounts...)
}

// Up returns the workspace's running instance, creating or starting it when
// needed. It is idempotent.
func (m *Manager) Up(ctx context.Context, opts UpOptions) (Instance, error) {
	unlock := m.lock(opts.Workspace)
	defer unlock()
	return m.upLocked(ctx, opts)
}

func (m *Manager) upLocked(ctx context.Context, opts UpOptions) (Instance, error) {
	ws := opts.Workspace
	prior, ferr := m.backend.Find(ctx, ws)
	if ferr != nil && !errors.Is(ferr, backends.ErrNotFound) {
		return Instance{}, ferr
	}
	exists := ferr == nil
	cfg, err := m.Config(ws, opts.Config, opts.Image)
	if errors.Is(err, devcontainer.ErrNoConfig) && exists && !opts.Recreate {
		// An existing instance needs no configuration to be used.
		cfg, err = &devcontainer.Config{Source: devcontainer.SourceImage, Image: prior.Image, Hash: prior.Labels[LabelConfigHash]}, nil
	}
	if err != nil {
		if errors.Is(err, devcontainer.ErrNoConfig) {
			return Instance{}, fmt.Errorf("%w: %v", ErrNoImage, err)
		}
		return Instance{}, err
	}
	spec, err := m.spec(ws, cfg)
	if err != nil {
		return Instance{}, err
	}
	if opts.Recreate && exists {
		if err := m.removeLocked(ctx, ws); err != nil && !errors.Is(err, backends.ErrNotFound) {
			return Instance{}, err
		}
		exists = false
	}
	if exists {
		// Reuse it, stale or not: rebuilding is the user's call (recreate).
		spec.Image = prior.Image
	} else if cfg.Build != nil {
		if err := m.build(ctx, ws, cfg, opts.BuildLog); err != nil {
			return Instance{}, err
		}
	}
	inst, created, err := m.backend.Ensure(ctx, spec)
	if err != nil {
		return Instance{}, err
	}
	m.remember(ws, &inst)
	out := Instance{
		Instance: inst, Backend: m.backend.Name(), Created: created, Agent: m.agentStatus(inst),
		Started: created || (exists && prior.State != backends.StateRunning),
		Config:  cfg,
	}
	out.Stale = !created && cfg.Hash != "" && inst.Labels[LabelConfigHash] != cfg.Hash
	if out.Stale {
		backends.Report(ctx, "container %s is stale: its configuration changed; berth/up with recreate rebuilds it", inst.Name)
	}
	if created {
		m.log.Info("instance created", "workspace", ws, "instance", inst.Name, "config", cfg.Source)
	}
	return out, nil
}

// ensure returns the running instance for exec, from cache when possible.
func (m *Manager) ensure(ctx context.Context, opts UpOptions) (backends.Instance, error) {
	if inst, ok := m.cached(opts.Workspace); ok && inst.State == backends.StateRunning {
		return inst, nil
	}
	inst, err := m.Up(ctx, opts)
	return inst.Instance, err
}

// forget drops a cached instance that turned out to be gone or stopped.
func (m *Manager) forget(ws string) { m.remember(ws, nil) }

// Status returns the workspace's instance, or nil if it has none. It
// compares the instance with the workspace's configuration now, to say
// whether it is stale; explicit and image are as for Up.
func (m *Manager) Status(ctx context.Context, ws, explicit, image string) (*Instance, error) {
	inst, err := m.backend.Find(ctx, ws)
	if errors.Is(err, backends.ErrNotFound) {
		m.forget(ws)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m.remember(ws, &inst)
	out := &Instance{Instance: inst, Backend: m.backend.Name(), Agent: m.agentStatus(inst)}
	if cfg, err := m.Config(ws, explicit, image); err == nil {
		out.Config = cfg
		out.Stale = cfg.Hash != "" && inst.Labels[LabelConfigHash] != cfg.Hash
	}
	return out, nil
}

// List returns every berth instance on the backend.
func (m *Manager) List(ctx context.Context) ([]Instance, error) {
	list, err := m.backend.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Instance, 0, len(list))
	for _, inst := range list {
		out = append(out, Instance{Instance: inst, Backend: m.backend.Name(), Agent: m.agentStatus(inst)})
	}
	return out, nil
}

// Down stops the workspace's instance, or removes it. It is idempotent.
func (m *Manager) Down(ctx context.Context, ws string, remove bool) error {
	unlock := m.lock(ws)
	defer unlock()
	if remove {
		err := m.removeLocked(ctx, ws)
		if errors.Is(err, backends.ErrNotFound) {
			return nil
		}
		return err
	}
	inst, err := m.backend.Find(ctx, ws)
	if errors.Is(err, backends.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	m.forget(ws)
	if inst.State == backends.StateStopped {
		return nil
	}
	return m.backend.Stop(ctx, inst.ID)
}

func (m *Manager) removeLocked(ctx context.Context, ws string) error {
	m.forget(ws)
	inst, err := m.backend.Find(ctx, ws)
	if err != nil {
		return err
	}
	m.log.Info("removing instance", "workspace", ws, "instance", inst.Name)
	return m.backend.Remove(ctx, inst.ID)
}

// Mapper returns the path mapper for a workspace: from its instance's mounts
// when it has one, else from the mounts it would be created with.
func (m *Manager) Mapper(ctx context.Context, ws string) (*pathmap.Mapper, error) {
	var mounts []backends.Mount
	if inst, ok := m.cached(ws); ok {
		mounts = MountsOf(inst)
	} else if inst, err := m.backend.Find(ctx, ws); err == nil {
		mounts = MountsOf(inst)
	} else if !errors.Is(err, backends.ErrNotFound) && !errors.Is(err, backends.ErrUnavailable) {
		return nil, err
	}
	if len(mounts) == 0 {
		mounts = []backends.Mount{{Host: ws, Container: Workdir(ws)}}
	}
	return m.mapperFor(mounts)
}

func (m *Manager) mapperFor(mounts []backends.Mount) (*pathmap.Mapper, error) {
	pm := make([]pathmap.Mount, 0, len(mounts))
	for _, mt := range UserMounts(mounts) {
		pm = append(pm, pathmap.Mount{Host: mt.Host, Container: mt.Container})
	}
	return pathmap.New(m.flavor, pm)
}
