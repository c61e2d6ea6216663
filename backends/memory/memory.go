// Package memory implements backends.Backend in memory, for unit tests of
// the pure logic in session and rpc: instances are structs, their
// filesystems are maps, and exec runs commands written in Go from a command
// table (echo, cat, sleep, a small sh, and whatever a test adds).
//
// It also lets a test break the engine on purpose: freeze it, take it down,
// fail one method, or stop, kill and remove instances behind berth's back,
// and it counts the calls berth made. It is never the proof that a feature
// works against a real engine: the tests in backends/docker, backends/incus
// and cmd/berth stay the proof.
//
// What it does not model: images have no content (an instance starts with
// a few empty directories plus Spec.Files), mounts are empty directories
// that do not reach the host, processes share one Go address space, and
// there is no network.
package memory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
)

// Name is the backend's default name.
const Name = "memory"

// Options configures a Backend. The zero value gives a backend named
// "memory" that is not local, accepts any image and knows only root.
type Options struct {
	// Name is what Name returns; "" means "memory".
	Name string
	// Local is what Local returns (backends.Localer).
	Local bool
	// Version is recorded in the backends.LabelVersion label.
	Version string
	// Platform is the default GOOS/GOARCH of images; "" means
	// "linux/" + runtime.GOARCH.
	Platform string
	// Images are the images Ensure accepts, mapped to their GOOS/GOARCH
	// ("" for Platform). A nil map accepts every non-empty reference; any
	// other image fails with backends.ErrImageNotFound.
	Images map[string]string
	// Users are the user names exec accepts, mapped to their uid (the gid
	// is the same number). Nil means {"root": 0}. Numeric "uid" and
	// "uid:gid" users are always accepted.
	Users map[string]int
	// Commands are added to the built-in command table, replacing
	// built-ins of the same name; a nil Command removes one.
	Commands map[string]Command
	// Log receives debug lines; nil discards them.
	Log *slog.Logger
	// Now stamps instances and files; nil means time.Now.
	Now func() time.Time
}

// Backend is an in-memory container engine. All methods are safe for
// concurrent use.
//
// Goroutines: each Exec runs its command on a goroutine of its own, plus
// one that copies stdin when the ExecSpec has one, one per background child
// the command starts (Proc.Start, sh's &) and one per command of an sh
// pipeline but the last. The process is done, and Wait returns, once the
// command and its background children have returned and the stdin copy has
// stopped; a pipeline waits for its own goroutines. After a kill, a timer
// may finish the process without a command that ignores its ctx. Watch runs
// fn on its caller's goroutine and starts none.
type Backend struct {
	name     string
	local    bool
	version  string
	platform string
	log      *slog.Logger
	now      func() time.Time

	mu        sync.Mutex // guards the following
	images    map[string]string
	users     map[string]int
	commands  map[string]Command
	instances map[string]*instance // by id, foreign ones too
	byWS      map[string]*instance // managed instances by workspace, pending ones too
	byName    map[string]*instance // every instance by name
	nextID    int
	calls     map[string]int
	errs      map[string]error // injected by SetError, by method
	down      bool
	frozen    bool
	thaw      chan struct{} // closed by Thaw; replaced by Freeze
	subs      map[*subscriber]struct{}
	subsAdded chan struct{} // closed and replaced when a watcher subscribes
}

var (
	_ backends.Backend    = (*Backend)(nil)
	_ backends.Watcher    = (*Backend)(nil)
	_ backends.Platformer = (*Backend)(nil)
	_ backends.Localer    = (*Backend)(nil)
	_ backends.Limiter    = (*Backend)(nil)
)

// New returns an empty engine configured by opts.
func New(opts Options) *Backend {
	b := &Backend{
		name:      opts.Name,
		local:     opts.Local,
		version:   opts.Version,
		platform:  opts.Platform,
		log:       opts.Log,
		now:       opts.Now,
		users:     maps.Clone(opts.Users),
		commands:  builtins(),
		instances: map[string]*instance{},
		byWS:      map[string]*instance{},
		byName:    map[string]*instance{},
		calls:     map[string]int{},
		errs:      map[string]error{},
		subs:      map[*subscriber]struct{}{},
		subsAdded: make(chan struct{}),
	}
	if b.name == "" {
		b.name = Name
	}
	if b.platform == "" {
		b.platform = "linux/" + runtime.GOARCH
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("backend", b.name)
	if b.now == nil {
		b.now = time.Now
	}
	if b.users == nil {
		b.users = map[string]int{"root": 0}
	}
	if opts.Images != nil {
		b.images = maps.Clone(opts.Images)
	}
	for name, cmd := range opts.Commands {
		b.handleLocked(name, cmd)
	}
	return b
}

// instance is one container. Its fields are guarded by Backend.mu, except
// fs, which has a lock of its own, and the fields set at creation.
type instance struct {
	id, name  string
	image     string
	platform  string
	workspace string
	workdir   string
	managed   bool
	mounts    []backends.Mount
	labels    map[string]string
	env       []string
	init      string // pid 1's command line, as ps shows it
	created   time.Time
	fs        *FS
	limits    backends.Limits

	state   backends.State
	pending chan struct{} // non-nil while Ensure creates it; closed when done
	execs   map[*process]struct{}
	pids    map[int]string // running commands: pid → command line
	nextPID int
}

func (in *instance) info() backends.Instance {
	return backends.Instance{
		ID:        in.id,
		Name:      in.name,
		Image:     in.image,
		Workspace: in.workspace,
		Workdir:   in.workdir,
		State:     in.state,
		Mounts:    slices.Clone(in.mounts),
		Labels:    maps.Clone(in.labels),
		Created:   in.created,
	}
}

func (in *instance) event(kind backends.EventKind) backends.Event {
	return backends.Event{Kind: kind, ID: in.id, Name: in.name, Workspace: in.workspace}
}

// Name implements backends.Backend.
func (b *Backend) Name() string { return b.name }

// Local implements backends.Localer.
func (b *Backend) Local() bool { return b.local }

// Ping implements backends.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	return b.enter(ctx, "Ping")
}

// Platform implements backends.Platformer from the instance's image.
func (b *Backend) Platform(ctx context.Context, id string) (string, string, error) {
	if err := b.enter(ctx, "Platform"); err != nil {
		return "", "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in, err := b.lookupLocked("platform", id)
	if err != nil {
		return "", "", err
	}
	goos, goarch, _ := strings.Cut(in.platform, "/")
	return goos, goarch, nil
}

// lookupLocked finds a ready instance by id or name, refusing foreign ones.
func (b *Backend) lookupLocked(op, ref string) (*instance, error) {
	in := b.instances[ref]
	if in == nil {
		in = b.byName[ref]
	}
	if in == nil || in.pending != nil {
		return nil, fmt.Errorf("memory: %s %s: %w", op, ref, backends.ErrNotFound)
	}
	if !in.managed {
		return nil, fmt.Errorf("memory: %s %s: instance %s has no %s label: %w", op, ref, in.name, backends.LabelManaged, backends.ErrForeign)
	}
	return in, nil
}

// Find implements backends.Backend.
func (b *Backend) Find(ctx context.Context, workspace string) (backends.Instance, error) {
	if err := b.enter(ctx, "Find"); err != nil {
		return backends.Instance{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	in := b.byWS[workspace]
	if in == nil || in.pending != nil {
		return backends.Instance{}, fmt.Errorf("memory: workspace %s: %w", workspace, backends.ErrNotFound)
	}
	return in.info(), nil
}

// List implements backends.Backend: managed instances, oldest first.
func (b *Backend) List(ctx context.Context) ([]backends.Instance, error) {
	if err := b.enter(ctx, "List"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []backends.Instance
	for _, in := range b.byWS {
		if in.pending == nil {
			out = append(out, in.info())
		}
	}
	slices.SortFunc(out, func(a, c backends.Instance) int {
		if n := a.Created.Compare(c.Created); n != 0 {
			return n
		}
		return strings.Compare(a.ID, c.ID)
	})
	return out, nil
}

// Ensure implements backends.Backend. Concurrent calls for one workspace
// wait for the first one's creation and then share its instance.
//
// Like the real backends, it drops spec.Init and spec.Files when
// spec.InitPlatforms is set and lacks the image's platform. Unlike them,
// it keeps spec.Files when InitPlatforms is empty.
func (b *Backend) Ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	if err := b.enter(ctx, "Ensure"); err != nil {
		return backends.Instance{}, false, err
	}
	if spec.Workspace == "" {
		return backends.Instance{}, false, errors.New("memory: ensure: spec has no workspace")
	}
	if spec.Compose != nil {
		return backends.Instance{}, false, fmt.Errorf("memory: Docker Compose configurations need the docker backend: %w", backends.ErrNotSupported)
	}
	for {
		b.mu.Lock()
		if in := b.byWS[spec.Workspace]; in != nil {
			if wait := in.pending; wait != nil {
				b.mu.Unlock()
				select {
				case <-wait:
					continue // created, or failed and gone: look again
				case <-ctx.Done():
					return backends.Instance{}, false, fmt.Errorf("memory: ensure %s: %w", spec.Workspace, ctx.Err())
				}
			}
			if in.state != backends.StateRunning {
				in.state = backends.StateRunning
				b.publishLocked(in.event(backends.EventStarted))
			}
			inst := in.info()
			b.mu.Unlock()
			return inst, false, nil
		}
		in, err := b.createLocked(spec)
		b.mu.Unlock()
		if err != nil {
			return backends.Instance{}, false, err
		}
		return b.finishCreate(ctx, in, spec)
	}
}

// createLocked registers a pending instance for spec.
func (b *Backend) createLocked(spec backends.Spec) (*instance, error) {
	name := spec.Name
	if other := b.byName[name]; name != "" && other != nil {
		if !other.managed {
			return nil, fmt.Errorf("memory: instance %s exists but has no %s label; remove or rename it: %w",
				name, backends.LabelManaged, backends.ErrForeign)
		}
		return nil, fmt.Errorf("memory: instance name %s is taken by the instance of workspace %s", name, other.workspace)
	}
	platform, ok := b.platform, true
	if spec.Image == "" {
		ok = false
	} else if b.images != nil {
		platform, ok = b.images[spec.Image]
		if platform == "" {
			platform = b.platform
		}
	}
	if !ok {
		return nil, fmt.Errorf("memory: image %q is not among the backend's images: %w", spec.Image, backends.ErrImageNotFound)
	}
	b.nextID++
	id := fmt.Sprintf("mem-%d", b.nextID)
	if name == "" {
		name = id
	}
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[backends.LabelManaged] = "true"
	labels[backends.LabelWorkspace] = spec.Workspace
	labels[backends.LabelWorkdir] = spec.Workdir
	labels[backends.LabelVersion] = b.version
	in := &instance{
		id: id, name: name, image: spec.Image, platform: platform,
		workspace: spec.Workspace, workdir: spec.Workdir, managed: true,
		mounts: slices.Clone(spec.Mounts), labels: labels, env: slices.Clone(spec.Env),
		init: "berth-keepalive", created: b.now(), fs: newFS(b.now), limits: spec.Limits,
		state: backends.StateStopped, pending: make(chan struct{}),
		execs: map[*process]struct{}{}, pids: map[int]string{}, nextPID: 1,
	}
	if len(spec.Init) > 0 && slices.Contains(spec.InitPlatforms, platform) {
		in.init = strings.Join(spec.Init, " ")
	}
	for _, dir := range append(baseDirs, spec.Workdir) {
		if dir != "" {
			_ = in.fs.MkdirAll(dir, 0o755)
		}
	}
	for _, m := range spec.Mounts {
		if err := in.fs.MkdirAll(m.Container, 0o755); err != nil {
			return nil, fmt.Errorf("memory: mount at %s: %w", m.Container, err)
		}
	}
	b.instances[id] = in
	b.byWS[spec.Workspace] = in
	b.byName[name] = in
	return in, nil
}

// baseDirs are the directories every instance starts with.
var baseDirs = []string{"/bin", "/dev", "/etc", "/home", "/proc", "/root", "/tmp", "/usr/bin", "/usr/local/bin", "/var/tmp"}

// finishCreate extracts spec.Files, outside the lock, and starts the
// pending instance, or drops it when that fails.
func (b *Backend) finishCreate(ctx context.Context, in *instance, spec backends.Spec) (backends.Instance, bool, error) {
	var err error
	if spec.Files != nil && (len(spec.InitPlatforms) == 0 || slices.Contains(spec.InitPlatforms, in.platform)) {
		var r io.Reader
		if r, err = spec.Files(in.platform); err != nil {
			err = fmt.Errorf("memory: files for %s: %w", in.name, err)
		} else if err = in.fs.extract(ctx, "/", r); err != nil {
			err = fmt.Errorf("memory: files for %s: %w", in.name, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	close(in.pending)
	in.pending = nil
	if err != nil {
		b.dropLocked(in)
		return backends.Instance{}, false, err
	}
	in.state = backends.StateRunning
	b.log.Debug("created instance", "instance", in.name, "workspace", in.workspace, "image", in.image)
	b.publishLocked(in.event(backends.EventStarted))
	return in.info(), true, nil
}

func (b *Backend) dropLocked(in *instance) {
	delete(b.instances, in.id)
	delete(b.byName, in.name)
	if b.byWS[in.workspace] == in {
		delete(b.byWS, in.workspace)
	}
}

// Stop implements backends.Backend: the instance's processes end with exit
// code 137, and Stop returns once they have, or when ctx ends.
func (b *Backend) Stop(ctx context.Context, id string) error {
	if err := b.enter(ctx, "Stop"); err != nil {
		return err
	}
	b.mu.Lock()
	in, err := b.lookupLocked("stop", id)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	procs := b.haltLocked(in, backends.EventStopped)
	b.mu.Unlock()
	return endAll(ctx, procs)
}

// Remove implements backends.Backend, stopping the instance first.
func (b *Backend) Remove(ctx context.Context, id string) error {
	if err := b.enter(ctx, "Remove"); err != nil {
		return err
	}
	b.mu.Lock()
	in, err := b.lookupLocked("remove", id)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	procs := b.haltLocked(in, backends.EventStopped)
	b.dropLocked(in)
	b.publishLocked(in.event(backends.EventRemoved))
	b.mu.Unlock()
	return endAll(ctx, procs)
}

// haltLocked marks a running instance stopped, reporting kind, and
// returns its processes, which it has told to end.
func (b *Backend) haltLocked(in *instance, kind backends.EventKind) []*process {
	if in.state != backends.StateRunning {
		return nil
	}
	in.state = backends.StateStopped
	b.publishLocked(in.event(kind))
	procs := slices.Collect(maps.Keys(in.execs))
	for _, p := range procs {
		p.terminate(backends.SIGKILL)
	}
	return procs
}

// endAll waits for procs to be done, or for ctx to end.
func endAll(ctx context.Context, procs []*process) error {
	for _, p := range procs {
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("memory: waiting for processes to end: %w", ctx.Err())
		}
	}
	return nil
}

// CopyTo implements backends.Backend. dir must be an existing directory;
// entries may not climb out of it. Stopped instances accept copies.
func (b *Backend) CopyTo(ctx context.Context, id, dir string, tar io.Reader) error {
	if err := b.enter(ctx, "CopyTo"); err != nil {
		return err
	}
	b.mu.Lock()
	in, err := b.lookupLocked("copy to", id)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := in.fs.extract(ctx, dir, tar); err != nil {
		return fmt.Errorf("memory: copy to %s in %s: %w", dir, in.name, err)
	}
	return nil
}

// CopyFrom implements backends.Backend. The tar names the file, or the
// directory and everything under it, by its base name.
func (b *Backend) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	if err := b.enter(ctx, "CopyFrom"); err != nil {
		return nil, err
	}
	b.mu.Lock()
	in, err := b.lookupLocked("copy from", id)
	b.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rc, err := in.fs.archive(path)
	if err != nil {
		return nil, fmt.Errorf("memory: copy from %s in %s: %w", path, in.name, err)
	}
	return rc, nil
}
