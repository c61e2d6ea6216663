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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	// Warnings name what berth leaves out of the configuration, and where
	// the engine's host falls short of hostRequirements; set by the call
	// that resolved the configuration (Ensure, not a cached answer).
	Warnings []string
	// HookError says why the container's create hooks failed; berth
	// doesn't run them again on its own (recreate does).
	HookError string
	// HealthError says why a service's health check fails.
	HealthError string

	synthetic bool            // Config stands in for none: the instance is used as it is
	install   *featureInstall // Features to install before its hooks: it was just created without them
}

// AgentStatus says how berth reaches an instance's processes.
type AgentStatus struct {
	Enabled bool   // processes and tunnels go through the agent
	Reason  string // why not, when disabled
	// Build is the agent build berth runs in the instance, or would run
	// there; nil when disabled, or when berth can't tell without asking
	// the engine.
	Build *agent.Binary
	// Connected says this berth has Build running in the instance now.
	Connected bool
}

// Manager is one backend's share of berth: every client of one berth
// process uses it, and it holds one Workspace per workspace folder.
//
// Goroutines: the event watcher (started with the first Workspace, when
// the backend is a backends.Watcher), and the lifecycle hooks a
// Workspace leaves to the background (waitFor); Close cancels both and
// waits for them, bounded.
type Manager struct {
	backend      backends.Backend
	log          *slog.Logger
	defaultImage string
	flavor       pathmap.Flavor

	agents   agent.Set // by platform; empty: agent disabled
	agentOff string    // why agents is empty
	noFast   bool      // keep everything on the exec stream

	ctx    context.Context // the manager's lifetime: ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the event watcher
	bg     sync.WaitGroup // hooks left to the background (Workspace.background)

	autoIDs atomic.Uint64 // numbers auto-forwards: "a1", "a2", ...

	mu         sync.Mutex // guards the following
	workspaces map[string]*Workspace
	watching   bool
	closed     bool

	healthTimeout time.Duration // SetHealthTimeout; 0 for DefaultHealthTimeout
}

// agentRetry is how long berth uses plain exec after an agent failed to
// start before it tries again.
const agentRetry = 30 * time.Second

// NewManager returns a Manager on backend. defaultImage is used when a call
// names none; it may be empty. Close releases it.
func NewManager(backend backends.Backend, log *slog.Logger, defaultImage string) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		backend:      backend,
		log:          log,
		defaultImage: defaultImage,
		flavor:       pathmap.HostFlavor(),
		ctx:          ctx,
		cancel:       cancel,
		workspaces:   map[string]*Workspace{},
		agentOff:     "agent not configured",
	}
}

// SetAgents enables the in-container agent with the builds of set, one per
// platform, or disables it when set is empty, for the reason given. Call it
// before serving.
func (m *Manager) SetAgents(set agent.Set, reason string) {
	m.agents, m.agentOff = set, reason
	if len(set) == 0 && reason == "" {
		m.agentOff = "agent not configured"
	}
}

// SetFastPath turns the agent's unix-socket fast path on (the default) or
// off, for engines that are local. Off, everything rides the exec stream,
// as it does with a remote engine.
func (m *Manager) SetFastPath(on bool) { m.noFast = !on }

// AgentEnabled reports whether the agent is configured, and why not.
func (m *Manager) AgentEnabled() (bool, string) {
	return len(m.agents) > 0, m.agentOff
}

// Agents returns the agent builds the manager installs, by platform.
func (m *Manager) Agents() agent.Set { return m.agents }

// DefaultImage is the image for workspaces that configure none; "" for
// none.
func (m *Manager) DefaultImage() string { return m.defaultImage }

// Backend returns the manager's backend.
func (m *Manager) Backend() backends.Backend { return m.backend }

// Workspace returns the handle of a resolved workspace (see
// ResolveWorkspace), making it on first use. Every call for one path
// returns the same handle.
func (m *Manager) Workspace(path string) *Workspace {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.workspaces[path]
	if !ok {
		w = &Workspace{m: m, path: path, log: m.log.With("workspace", path)}
		m.workspaces[path] = w
	}
	if !m.watching && !m.closed {
		if wt, ok := m.backend.(backends.Watcher); ok {
			m.watching = true
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.watch(wt)
			}()
		}
	}
	return w
}

// known returns every workspace handle made so far.
func (m *Manager) known() []*Workspace {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Workspace, 0, len(m.workspaces))
	for _, w := range m.workspaces {
		out = append(out, w)
	}
	return out
}

// closeTimeout bounds letting go of agents, so that a frozen or vanished
// engine can't hold berth's exit hostage.
const closeTimeout = time.Second

// Close stops the event watcher and every agent this manager started,
// which ends their processes, and refuses new ones. Each step is bounded.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	var wg sync.WaitGroup
	for _, w := range m.known() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stopPorts(true)
			w.dropRunner("shutting down")
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	waitCtx(ctx, &wg)
	// Background hooks end with their agent, which dropRunner stopped.
	if !waitCtx(ctx, &m.bg) {
		m.log.Debug("background hooks still ending; not waiting for them")
	}
	// The watcher returns once its ctx ends, but a reconnect in progress
	// may hold it up to its handshake timeout: don't wait that out.
	ctx, cancel = context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if !waitCtx(ctx, &m.wg) {
		m.log.Debug("event watcher still ending; not waiting for it")
	}
}

// isClosed reports whether Close has begun.
func (m *Manager) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// ResolveWorkspace turns a host path or file URI into the canonical key of a
// workspace: absolute, cleaned, symlinks resolved, and an existing directory.
// It is where every entry point's workspace is checked: berth refuses the
// filesystem root, system directories, the user's home directory itself
// and directories other users own, with an error wrapping ErrRefusedPath.
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
	// Resolved as far as it exists: a link to /etc is /etc, and what lies
	// under /etc is refused whether it exists or not.
	p = resolved(p)
	pol := currentPolicy()
	if why := pol.why(p, -1); why != "" {
		return "", fmt.Errorf("%w: workspace %s: %s", ErrRefusedPath, p, why)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadWorkspace, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s is not a directory", ErrBadWorkspace, p)
	}
	if why := pol.why(p, fileOwner(fi)); why != "" {
		return "", fmt.Errorf("%w: workspace %s: %s", ErrRefusedPath, p, why)
	}
	return p, nil
}

// safeName replaces each run of characters outside [a-zA-Z0-9_.-] in s
// with one '-', as the regexp [^a-zA-Z0-9_.-]+ would (an invalid byte is
// a character of its own); by hand, because `berth exec` calls it and a
// regexp would cost every berth process its compilation.
func safeName(s string) string {
	var b strings.Builder
	inRun := false
	for _, r := range s {
		ok := 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '.' || r == '-'
		switch {
		case ok:
			b.WriteRune(r)
			inRun = false
		case !inRun:
			b.WriteByte('-')
			inRun = true
		}
	}
	return b.String()
}

// InstanceName is the deterministic instance name for a workspace: readable,
// and unique by a hash of the full path.
func InstanceName(workspace string) string {
	sum := sha256.Sum256([]byte(workspace))
	base := strings.Trim(safeName(strings.ToLower(filepath.Base(workspace))), "-._")
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
	if image == "" && cfg.Compose == nil {
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
	if len(createCommands(cfg)) > 0 {
		spec.Labels[LabelHooks] = "true"
	}
	if spec.RemoteUser = cfg.RemoteUser; spec.RemoteUser == "" {
		spec.RemoteUser = cfg.ContainerUser
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
	for _, mt := range append(slices.Clip(cfg.Mounts), cfg.Run.Mounts...) {
		spec.Mounts = append(spec.Mounts, backends.Mount{Host: mt.Source, Container: mt.Target, Type: mt.Type, ReadOnly: mt.ReadOnly})
	}
	if l := cfg.Berth.Limits; l != nil {
		spec.Limits = backends.Limits{Memory: l.Memory, CPUs: l.CPUs, Pids: l.Pids}
	}
	if err := engineSpec(&spec, cfg); err != nil {
		return backends.Spec{}, err
	}
	if svc := cfg.Berth.Service; svc != nil && cfg.Compose == nil && !m.bootsInit() {
		// The service is the main process: the image's command, or the
		// configuration's. An instance that boots its init has berth
		// start the configuration's (Workspace.startService).
		spec.KeepCommand = true
		spec.Command = svc.Command
		if svc.Shell != "" {
			spec.Command = []string{"/bin/sh", "-c", svc.Shell}
		}
	}
	if cc := cfg.Compose; cc != nil {
		spec.Compose = &backends.ComposeSpec{
			Files: cc.Files, Service: cc.Service, RunServices: cc.RunServices,
			Project: cc.Project, Dir: cc.Dir,
			// overrideCommand defaults to true for Compose too.
			KeepCommand: cfg.OverrideCommand != nil && !*cfg.OverrideCommand,
			StateDir:    composeStateDir(spec.Name),
		}
	}
	if set := m.agents; len(set) > 0 && (cfg.Berth.Agent == nil || *cfg.Berth.Agent) {
		// The agent doubles as the instance's main process, so images
		// need nothing at all, not even a shell.
		spec.Init = []string{agent.InitPath, "init"}
		spec.InitPlatforms = set.Platforms()
		spec.Files = func(platform string) (io.Reader, error) {
			bin, err := set.For(platform)
			if err != nil {
				return nil, err
			}
			return bin.Tar()
		}
		if dir, ok := m.fastDir(spec.Name); ok {
			spec.Mounts = append(spec.Mounts, backends.Mount{Host: dir, Container: agent.RunDir})
		}
	}
	return spec, nil
}

// composeStateDir is where the backend keeps a Compose project's
// override file: in berth's cache, not the workspace, and lasting, since
// Compose records the file and a later down reads it.
func composeStateDir(name string) string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Getuid()))
	}
	return filepath.Join(base, "berth", "compose", name)
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

// fastDir makes the host directory shared with an instance for the
// agent's door (its fast path), when the engine is local.
func (m *Manager) fastDir(name string) (string, bool) {
	if l, ok := m.backend.(backends.Localer); !ok || !l.Local() {
		return "", false
	}
	dir, err := agent.HostRunDir(name)
	if err != nil {
		m.log.Warn("no fast path", "err", err)
		return "", false
	}
	return dir, true
}

// UserMounts drops berth's own mounts, which no path maps through, and
// those that bind no host path.
func UserMounts(mounts []backends.Mount) []backends.Mount {
	out := make([]backends.Mount, 0, len(mounts))
	for _, mt := range mounts {
		if mt.Container != agent.RunDir && mt.Container != agent.LegacyRunDir && (mt.IsBind() || mt.Type == MountSync) {
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

// List returns every berth instance on the backend.
func (m *Manager) List(ctx context.Context) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	list, err := m.backend.List(ctx)
	if err != nil {
		return nil, m.engineErr(ctx, "list", err)
	}
	out := make([]Instance, 0, len(list))
	for _, inst := range list {
		out = append(out, Instance{Instance: inst, Backend: m.backend.Name(), Agent: m.agentStatus(ctx, inst, false)})
	}
	return out, nil
}

func (m *Manager) mapperFor(mounts []backends.Mount) (*pathmap.Mapper, error) {
	return mapperOf(m.flavor, mounts)
}

// NewMapper is the path mapper of an instance with mounts (see MountsOf),
// on this host.
func NewMapper(mounts []backends.Mount) (*pathmap.Mapper, error) {
	return mapperOf(pathmap.HostFlavor(), mounts)
}

func mapperOf(f pathmap.Flavor, mounts []backends.Mount) (*pathmap.Mapper, error) {
	pm := make([]pathmap.Mount, 0, len(mounts))
	for _, mt := range UserMounts(mounts) {
		pm = append(pm, pathmap.Mount{Host: mt.Host, Container: mt.Container})
	}
	return pathmap.New(f, pm)
}
