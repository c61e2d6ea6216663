// Package backends defines the contract between berth's session layer and a
// container engine: the Backend interface, the types it trades in, and the
// sentinel errors every implementation maps its engine's failures onto.
//
// Implementations live in sub-packages (backends/docker, backends/incus) and
// must pass the conformance suite in backends/backendtest.
package backends

import (
	"context"
	"errors"
	"io"
	"time"
)

// Labels berth puts on every instance it manages. An instance without
// LabelManaged is never touched.
const (
	LabelManaged   = "berth.managed"   // always "true"
	LabelWorkspace = "berth.workspace" // absolute host path of the workspace
	LabelWorkdir   = "berth.workdir"   // container path the workspace is mounted at
	LabelVersion   = "berth.version"   // berth version that created the instance
	// LabelCompose is set on an instance that is a Docker Compose dev
	// service: the project's name.
	LabelCompose = "berth.compose"
	// LabelComposeService is Compose's own label of a container's service.
	LabelComposeService = "com.docker.compose.service"
)

// Sentinel errors. Backends wrap them with %w and context; callers test with
// errors.Is. The rpc package maps each one to a JSON-RPC error code.
var (
	// ErrUnavailable means the engine's daemon could not be reached.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrNotFound means no berth instance exists for the given workspace or id.
	ErrNotFound = errors.New("instance not found")
	// ErrImageNotFound means the image is neither local nor obtainable.
	ErrImageNotFound = errors.New("image not found")
	// ErrNotRunning means the operation needs a running instance.
	ErrNotRunning = errors.New("instance not running")
	// ErrForeign means an instance with berth's name exists but lacks berth's
	// labels, so berth refuses to touch it.
	ErrForeign = errors.New("instance not managed by berth")
	// ErrCommandNotFound means the executable of an exec does not exist in
	// the instance (or is not executable).
	ErrCommandNotFound = errors.New("command not found")
	// ErrNotExecutable means the executable of an exec exists but cannot be
	// run: a directory, no execute permission, or not a program.
	ErrNotExecutable = errors.New("command cannot be invoked")
	// ErrBadUser means an exec's user is unknown in the instance.
	ErrBadUser = errors.New("unknown user")
	// ErrBadCwd means an exec's working directory does not exist in the
	// instance.
	ErrBadCwd = errors.New("no such working directory")
	// ErrNotSupported means the backend cannot do this operation.
	ErrNotSupported = errors.New("not supported by backend")
	// ErrComposeConfig means Docker Compose can't use a project's files as
	// they are: Compose rejected them, or a service binds a host path that
	// a remote engine can't see.
	ErrComposeConfig = errors.New("compose configuration rejected")
	// ErrCompose means the Compose CLI failed to bring a project up; the
	// error carries the end of its output.
	ErrCompose = errors.New("docker compose failed")
)

// State is an instance's coarse run state.
type State string

// Instance states.
const (
	StateRunning State = "running"
	StateStopped State = "stopped"
)

// Mount binds a host directory into the instance.
type Mount struct {
	Host      string `json:"host"`      // host path; a volume's name for volumes; unused for tmpfs
	Container string `json:"container"` // absolute container path
	// Type is "" or "bind" for a bind mount, "volume" or "tmpfs". Only
	// bind mounts map paths. Backends that can't make a type skip it with
	// a log line.
	Type     string `json:"type,omitempty"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// IsBind reports whether m binds a host path.
func (m Mount) IsBind() bool { return m.Type == "" || m.Type == "bind" }

// Spec describes the instance berth wants for a workspace.
type Spec struct {
	Workspace string            // absolute, cleaned host path; the identity
	Name      string            // deterministic instance name
	Image     string            // image reference, alias or fingerprint
	Workdir   string            // container path of the workspace
	Mounts    []Mount           // at least the workspace mount
	Labels    map[string]string // extra labels; berth's own are added by the backend
	Env       []string          // KEY=VALUE for the whole instance
	// Engine settings from the configuration (capAdd, runArgs, Features).
	// A backend that can't honour one names it in Unsupported (Checker).
	CapAdd      []string
	SecurityOpt []string
	Privileged  bool
	// Entrypoint are shell lines (Features' entrypoint scripts) run, in
	// order, before the main process, which they must not block.
	Entrypoint []string
	// KeepCommand runs the image's own entrypoint and command as the main
	// process (overrideCommand: false) instead of Init or the keep-alive.
	KeepCommand bool
	User        string        // the main process's user, with KeepCommand
	Devices     []string      // host devices, docker's HOST[:CONTAINER[:PERMS]]
	GPUs        string        // "all", a count, or "device=ID,..."; "" for none
	ExtraHosts  []string      // HOST:IP entries for /etc/hosts
	Network     string        // the network to join; "" for the engine's default
	ShmSize     int64         // bytes of /dev/shm; 0 for the engine's default
	Ulimits     []Ulimit      // resource limits of the main process
	Hostname    string        // "" for the engine's default
	Publish     []PortPublish // ports published on the engine's host (appPort)
	// Command, with KeepCommand, replaces the image's entrypoint and
	// command as the main process (a service's command). Backends that
	// can't run it name it in Unsupported.
	Command []string
	// Limits bound the instance's memory, CPU and processes; a backend
	// that can't apply them names them in Unsupported (Checker).
	Limits Limits
	// RemoteUser is the user tools run as (remoteUser, else
	// containerUser), for engines that map the host user's ids to it
	// (rootless Podman's keep-id); "" for the image's.
	RemoteUser string

	// Init, when set, is the instance's main process in place of the
	// backend's own keep-alive: it must stay up and exit promptly on
	// SIGTERM. Backends whose instances boot their own init ignore it.
	Init []string
	// InitPlatforms are the GOOS/GOARCH pairs Init is built for; a backend
	// uses Init only for an image of one of them, and its keep-alive
	// otherwise.
	InitPlatforms []string
	// Files, when set, returns a tar stream for the image's platform
	// (GOOS/GOARCH) that is extracted at / after the instance is created
	// and before it first starts, so that Init can live there even in an
	// image that has nothing else. A backend calls it only for one of
	// InitPlatforms.
	Files func(platform string) (io.Reader, error)

	// Compose, when set, makes the instance the dev service of a Docker
	// Compose project, which the backend brings up with the user's Compose
	// CLI; Image is then unused. The rest of Spec applies to the dev
	// service. Backends without Compose fail with ErrNotSupported.
	Compose *ComposeSpec
}

// ComposeSpec is the Docker Compose part of a Spec.
type ComposeSpec struct {
	Files       []string // compose files' host paths, in order
	Service     string   // the dev service: the instance
	RunServices []string // services to start; nil starts them all
	Project     string   // the project name (-p)
	Dir         string   // the project directory, where Compose reads .env
	// Env is added to the Compose CLI's environment (berth's own is
	// passed on, COMPOSE_PROFILES included).
	Env []string
	// KeepCommand keeps the service's own entrypoint and command
	// (overrideCommand: false): Init is then unused.
	KeepCommand bool
	// StateDir is a host directory of berth's own where the backend keeps
	// the override file that makes the service berth's instance.
	StateDir string
}

// Downer is implemented by backends whose instance may be one service of
// a project (Docker Compose). Down stops, or removes, the instance with
// every service of its project; for an instance of its own it is Stop or
// Remove. Stop and Remove act on the instance alone.
type Downer interface {
	Down(ctx context.Context, id string, remove bool) error
}

// Ulimit is one resource limit; -1 is unlimited.
type Ulimit struct {
	Name       string // as docker names them: nofile, nproc, core...
	Soft, Hard int64
}

// Limits are an instance's resource limits. A zero field is no limit in a
// Spec, and left as it is in Limiter.SetLimits.
type Limits struct {
	Memory int64   // bytes
	CPUs   float64 // CPUs' worth of time, such as 1.5
	Pids   int64   // processes
}

// IsZero reports whether l sets nothing.
func (l Limits) IsZero() bool { return l == Limits{} }

// Usage is what an instance uses now and the limits it runs under.
type Usage struct {
	// Memory is the bytes in use; page cache the kernel can drop is left
	// out where the engine tells it apart, as docker stats does.
	Memory int64
	// CPUPercent is the CPU time used over the last second or so, as a
	// percentage of one CPU: 150 is one and a half CPUs busy.
	CPUPercent float64
	Processes  int
	// Limits are those in effect; a zero field is unlimited.
	Limits Limits
}

// Limiter is implemented by backends that can change the limits of a
// running instance without restarting it, and read its usage. Both need
// a running instance (ErrNotRunning otherwise).
type Limiter interface {
	// SetLimits changes the non-zero fields of l and returns the limits
	// now in effect.
	SetLimits(ctx context.Context, id string, l Limits) (Limits, error)
	// Usage may take a second or two: CPU use is measured over an
	// interval.
	Usage(ctx context.Context, id string) (Usage, error)
}

// OOMMark is where an instance's record of OOM kills stood at a moment,
// in whichever of its fields the backend uses.
type OOMMark struct {
	At    time.Time
	Kills int64
}

// OOMReporter is implemented by backends that can tell whether the kernel
// killed a process in an instance for its memory limit: a process that
// died of SIGKILL after Mark, when Since then reports a kill. Mark is
// cheap and may be taken before every process; Since may wait a moment
// for the engine to hear of a kill.
type OOMReporter interface {
	OOMMark(ctx context.Context, id string) (OOMMark, error)
	OOMSince(ctx context.Context, id string, mark OOMMark) (bool, error)
}

// PortPublish publishes a container port on the engine's host.
type PortPublish struct {
	HostIP        string // "" for every address
	HostPort      string // "" lets the engine pick
	ContainerPort string
	Proto         string // tcp or udp
}

// Checker is implemented by backends that can't honour every field of a
// Spec. Unsupported names each one that Ensure would leave out, with what
// it asked for, in words for a warning; none means all are honoured.
// It asks the engine at most once in the backend's life.
type Checker interface {
	Unsupported(spec Spec) []string
}

// IDMapper is implemented by backends whose engine may map the host
// user's ids into instances itself (user namespace remapping, Podman's
// keep-id), where updateRemoteUserUID must not.
type IDMapper interface {
	MapsIDs() bool
}

// HostResources is what the engine's host offers, for hostRequirements.
type HostResources struct {
	CPUs    int
	Memory  int64 // bytes
	Storage int64 // bytes free where instances live; 0 when unknown
	GPU     bool  // a GPU is available to instances
	// GPUKnown says GPU was checked; false when the engine can't tell.
	GPUKnown bool
}

// Resourcer is implemented by backends that can tell what their engine's
// host offers. The host may be remote: this is the engine's, not berth's.
type Resourcer interface {
	Resources(ctx context.Context) (HostResources, error)
}

// Instance is a berth-managed container as the engine reports it.
type Instance struct {
	ID        string
	Name      string
	Image     string
	Workspace string
	Workdir   string
	State     State
	Mounts    []Mount
	Labels    map[string]string
	Created   time.Time
	// User is whom the instance's processes run as when an exec names no
	// user: the image's USER, or the container's own user on Docker; ""
	// for root, or when the backend has no such notion (Incus).
	User string
	// Health is the engine's own health check's verdict (a Docker
	// HEALTHCHECK): HealthStarting, HealthHealthy or HealthUnhealthy; ""
	// when the image has none or the backend can't tell.
	Health string
	// Started is when the instance last started; zero when it is stopped
	// or the backend can't tell. It tells one start from the next, so
	// postStart hooks run once per start.
	Started time.Time
}

// Health verdicts, of an engine's health check or berth's own.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// ExecSpec describes one process to run in an instance.
type ExecSpec struct {
	Argv []string
	Cwd  string   // container path; empty means the instance default
	Env  []string // KEY=VALUE, added to the instance environment
	User string   // user name or uid[:gid]; empty means the image default

	// Stdin, when non-nil, is copied to the process; its EOF closes the
	// process's stdin. When nil the process gets no stdin.
	Stdin io.Reader
	// Direct runs Argv as is, without the backend's process-group
	// bookkeeping: Signal is unsupported, Kill only drops the stream, and a
	// missing executable shows up however the engine reports it. berth
	// starts its agent this way, because the agent needs nothing in the
	// image, not even a shell.
	Direct bool
	// Helper marks berth's own process (a probe, a plugin host), which the
	// agent leaves out of its count of the instance's processes. Backends
	// ignore it.
	Helper bool

	// Stdout and Stderr receive the process's output, demultiplexed.
	// Neither may be nil. They are written from one goroutine each and are
	// done being written when Wait returns.
	Stdout, Stderr io.Writer
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int    // exit code; 128+n when killed by signal n
	Signal string // signal name when the code says the process was signalled
	// OOM says the kernel killed the process for the instance's memory
	// limit. Backends leave it false; the session finds it out with an
	// OOMReporter.
	OOM bool
}

// Process is a running exec.
type Process interface {
	// Wait blocks until the process has exited and all of its output has
	// been written to the ExecSpec's writers. It may be called once.
	Wait(ctx context.Context) (ExitStatus, error)
	// Signal delivers sig to the process's whole process group inside the
	// instance. It is safe to call concurrently with Wait.
	Signal(ctx context.Context, sig int) error
	// Kill ends the process group and unblocks Wait. Safe to call more than
	// once and concurrently with Wait.
	Kill(ctx context.Context) error
}

// Platformer is implemented by backends that can tell an instance's
// operating system and architecture, in GOOS/GOARCH terms.
type Platformer interface {
	Platform(ctx context.Context, id string) (goos, goarch string, err error)
}

// BuildSpec describes an image build from a Containerfile or Dockerfile.
type BuildSpec struct {
	Context    string            // host directory sent as the build context
	Dockerfile string            // host path of the Dockerfile, inside Context
	Args       map[string]string // build arguments
	Target     string            // multi-stage target, or ""
	Tag        string            // the image reference to produce
	Labels     map[string]string
}

// Builder is implemented by backends that can build images. Build writes
// the engine's build log to log as it goes; a failed build's error names
// the failing step. ImageExists lets callers skip a build whose tag is
// already there.
type Builder interface {
	Build(ctx context.Context, spec BuildSpec, log io.Writer) error
	ImageExists(ctx context.Context, ref string) (bool, error)
}

// ImageInfo is what berth reads of an image without running it.
type ImageInfo struct {
	ID     string            // the engine's id (digest or fingerprint)
	User   string            // the image's default user; "" for root
	Labels map[string]string // Docker labels, or Incus image properties
	// Ports are the TCP ports the image EXPOSEs, sorted.
	Ports []int
}

// ImageInspector is implemented by backends that can read an image's
// labels (devcontainer.metadata among them), fetching the image first when
// the engine can.
type ImageInspector interface {
	InspectImage(ctx context.Context, ref string) (ImageInfo, error)
}

// ErrBuild means an image build failed; the error says at which step.
var ErrBuild = errors.New("image build failed")

// Localer is implemented by backends that can tell whether their engine
// runs on this host, so that host directories berth creates can be
// bind-mounted into instances.
type Localer interface {
	Local() bool
}

// Booter is implemented by backends whose instances boot the image's own
// init (Incus system containers), so that Spec.Command and KeepCommand
// have no effect: berth runs a service's command itself, through the
// agent.
type Booter interface {
	BootsInit() bool
}

// Endpointer is implemented by backends that can name where their engine
// is reached, e.g. unix:///var/run/docker.sock or ssh://user@host.
type Endpointer interface {
	Endpoint() string
}

// NetNSer is implemented by local backends that can name an instance's
// network namespace as a host path (/proc/PID/ns/net), so that a privileged
// berth can open sockets inside it directly.
type NetNSer interface {
	NetNS(ctx context.Context, id string) (string, error)
}

// Resizer is implemented by processes that run on a terminal.
type Resizer interface {
	Resize(ctx context.Context, cols, rows uint16) error
}

// Backend is a container engine. All methods are safe for concurrent use.
// Methods that take a workspace use its absolute host path as the key.
type Backend interface {
	// Name is the backend's short name, e.g. "docker".
	Name() string
	// Ping checks that the engine answers. Its error wraps ErrUnavailable
	// and says how to start the daemon.
	Ping(ctx context.Context) error
	// Ensure returns the running instance for spec.Workspace, creating it
	// or starting it when needed. created reports whether it was created by
	// this call. Concurrent calls for one workspace, even from different
	// processes, yield one instance.
	Ensure(ctx context.Context, spec Spec) (inst Instance, created bool, err error)
	// Find returns the instance for a workspace, or ErrNotFound.
	Find(ctx context.Context, workspace string) (Instance, error)
	// List returns every berth-managed instance.
	List(ctx context.Context) ([]Instance, error)
	// Stop stops an instance. Stopping a stopped instance is not an error.
	Stop(ctx context.Context, id string) error
	// Remove deletes an instance, stopping it first. Removing a missing
	// instance returns ErrNotFound.
	Remove(ctx context.Context, id string) error
	// Exec starts a process in a running instance. ctx bounds the start
	// only; the process lives until it exits or is killed.
	Exec(ctx context.Context, id string, spec ExecSpec) (Process, error)
	// CopyTo writes a tar stream into the instance, extracted at dir.
	CopyTo(ctx context.Context, id, dir string, tar io.Reader) error
	// CopyFrom reads path (file or directory) from the instance as a tar stream.
	CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// EventKind says what happened to an instance, or to the engine.
type EventKind string

// Event kinds. Instance events carry the instance; engine events don't.
const (
	EventStarted EventKind = "started" // the instance started (or restarted)
	EventStopped EventKind = "stopped" // it was stopped cleanly
	EventKilled  EventKind = "killed"  // its main process died or was killed
	EventRemoved EventKind = "removed" // it was deleted
	// EventHealth means the engine's own health check (a Docker
	// HEALTHCHECK) reached a new verdict, in Event.Health.
	EventHealth EventKind = "health"

	// EventDaemonLost means the event stream broke: the engine is down,
	// frozen or unreachable. The watcher keeps trying to reconnect.
	EventDaemonLost EventKind = "daemon-lost"
	// EventDaemonBack follows EventDaemonLost once the engine answers
	// again. Events in between were missed: callers re-read their state.
	EventDaemonBack EventKind = "daemon-back"
	// EventDaemonShutdown means the engine announced a graceful shutdown
	// and waits for open execs to end: callers let go of long-lived
	// streams and reattach after EventDaemonBack.
	EventDaemonShutdown EventKind = "daemon-shutdown"
)

// Event is one lifecycle event of a berth-managed instance or its engine.
type Event struct {
	Kind      EventKind
	ID        string // instance id; "" for engine events
	Name      string // instance name, when known
	Workspace string // the instance's workspace label, when known
	Health    string // with EventHealth: HealthHealthy or HealthUnhealthy
}

// Watcher is implemented by backends that can stream lifecycle events of
// berth-managed instances (Docker's events API, Incus's events websocket).
type Watcher interface {
	// Watch calls fn, from one goroutine and in order, for every event
	// until ctx ends, then returns ctx.Err(). It never gives up on a lost
	// engine: it reports EventDaemonLost, reconnects with backoff, and
	// reports EventDaemonBack. It returns early only when the backend can't
	// watch at all.
	Watch(ctx context.Context, fn func(Event)) error
}
