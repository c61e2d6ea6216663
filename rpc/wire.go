package rpc

import (
	"encoding/json"
	"time"

	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/session"
)

// Wire types. Field names are protocol (docs/protocol.md): renaming one
// breaks editors.

// InitializeParams are the parts of LSP's initialize params berth reads.
type InitializeParams struct {
	ProcessID             *int                       `json:"processId,omitempty"`
	ClientInfo            *protocol.ClientInfo       `json:"clientInfo,omitempty"`
	RootURI               string                     `json:"rootUri,omitempty"`
	RootPath              string                     `json:"rootPath,omitempty"`
	WorkspaceFolders      []protocol.WorkspaceFolder `json:"workspaceFolders,omitempty"`
	InitializationOptions *InitializationOptions     `json:"initializationOptions,omitempty"`
	Capabilities          *ClientCapabilities        `json:"capabilities,omitempty"`
}

// ClientCapabilities is the part of LSP's client capabilities berth reads.
type ClientCapabilities struct {
	Window *WindowClientCapabilities `json:"window,omitempty"`
}

// WindowClientCapabilities is the part of LSP's window capabilities berth
// reads: showMessage says the client answers window/showMessageRequest,
// which berth uses to ask for workspace trust.
type WindowClientCapabilities struct {
	ShowMessage *protocol.ShowMessageRequestClientCapabilities `json:"showMessage,omitempty"`
}

// InitializationOptions are berth's own initialize options.
type InitializationOptions struct {
	Backend string `json:"backend,omitempty"`
	// IncusRemote names an Incus remote of the incus client's
	// configuration (as --incus-remote does); it implies backend incus.
	IncusRemote string `json:"incusRemote,omitempty"`
	Image       string `json:"image,omitempty"`
	Config      string `json:"config,omitempty"` // explicit devcontainer.json or Containerfile
	// Secrets are environment variables for every process of the
	// client; never logged, traced or reported.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Token authenticates a client of `berth --tcp` (see ConnOptions);
	// berth never logs it.
	Token string `json:"token,omitempty"`
	// Trust says the user trusts the configurations of this client's
	// workspaces (VS Code's workspace trust, berth --trust); berth
	// records it and asks nothing.
	Trust bool `json:"trust,omitempty"`
	// Limits bound the client's instances; each field set wins over
	// customizations.berth.limits. Its workspace is unused.
	Limits *LimitsParams `json:"limits,omitempty"`
}

// InitializeResult answers initialize.
type InitializeResult struct {
	ServerInfo   ServerInfo   `json:"serverInfo"`
	Capabilities Capabilities `json:"capabilities"`
}

// ServerInfo names the server.
type ServerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Capabilities holds berth's capabilities under the "berth" key, beside
// which an LSP client finds no LSP features.
type Capabilities struct {
	Berth BerthCapabilities `json:"berth"`
}

// BerthCapabilities lists what this server offers.
type BerthCapabilities struct {
	Backends         []string `json:"backends"`
	Backend          string   `json:"backend"`
	Methods          []string `json:"methods"`
	DefaultWorkspace string   `json:"defaultWorkspace,omitempty"`
	Agent            bool     `json:"agent"`
	AgentReason      string   `json:"agentReason,omitempty"`
	// Agents are the builds berth installs, one per platform, sorted.
	Agents []AgentBuild `json:"agents,omitempty"`
	// Engine is the default backend's engine.
	Engine Engine `json:"engine"`
}

// Engine says where the backend's engine is reached and which of the
// capabilities that need a local engine berth uses with it.
type Engine struct {
	Endpoint   string `json:"endpoint,omitempty"` // e.g. unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host
	Remote     bool   `json:"remote"`             // tcp, ssh and https are remote, even on 127.0.0.1
	BindMounts bool   `json:"bindMounts"`         // false: the workspace is synced
	FastPath   bool   `json:"fastPath"`           // false: everything rides the agent's exec stream
	NetNS      bool   `json:"netns"`              // false: tunnels don't enter the network namespace from the host
}

func toEngine(e session.Engine) Engine {
	return Engine{Endpoint: e.Endpoint, Remote: e.Remote, BindMounts: e.BindMounts, FastPath: e.FastPath, NetNS: e.NetNS}
}

// WorkspaceParams names a workspace; empty means the client's default.
type WorkspaceParams struct {
	Workspace string `json:"workspace,omitempty"`
}

// StatusParams are berth/status's params.
type StatusParams struct {
	Workspace string `json:"workspace,omitempty"`
	// Usage asks for the instance's usage, which takes a second or two to
	// measure.
	Usage bool `json:"usage,omitempty"`
}

// UpParams are berth/up's params.
type UpParams struct {
	Workspace string `json:"workspace,omitempty"`
	Image     string `json:"image,omitempty"`
	Recreate  bool   `json:"recreate,omitempty"`
}

// DownParams are berth/down's params.
type DownParams struct {
	Workspace string `json:"workspace,omitempty"`
	Remove    bool   `json:"remove,omitempty"`
}

// Instance is a container as clients see it.
type Instance struct {
	Workspace string           `json:"workspace"`
	Backend   string           `json:"backend"`
	ID        string           `json:"id"`
	Name      string           `json:"name"`
	Image     string           `json:"image"`
	State     backends.State   `json:"state"`
	Workdir   string           `json:"workdir"`
	Mounts    []backends.Mount `json:"mounts"`
	Created   bool             `json:"created"`
	Agent     AgentStatus      `json:"agent"`
	// Sync says the workspace is copied in and kept in sync rather than
	// bind-mounted (a remote engine, or workspaceMount type copy).
	Sync bool `json:"sync,omitempty"`
	// Stale says the workspace's configuration changed since the instance
	// was created; berth/up {recreate: true} rebuilds it.
	Stale        bool   `json:"stale"`
	ConfigSource string `json:"configSource,omitempty"` // explicit, devcontainer.json, .devcontainer.json, containerfile, image
	ConfigFile   string `json:"configFile,omitempty"`
	// HookError says why the container's create hooks failed, with the
	// end of their output; berth doesn't run them again on its own.
	HookError string `json:"hookError,omitempty"`
	// Compose is set when the instance is the dev service of a Docker
	// Compose project.
	Compose *ComposeInfo `json:"compose,omitempty"`
	// Health is a service's health (berth's own check), or the engine's
	// own health check's (a Docker HEALTHCHECK): starting, healthy or
	// unhealthy; omitted when there is none.
	Health      string `json:"health,omitempty"`
	HealthError string `json:"healthError,omitempty"` // why a service is unhealthy
	// Usage is set by berth/status {usage: true} on a running instance.
	Usage *Usage `json:"usage,omitempty"`
	// Engine is where the instance's engine is and what berth uses of it.
	Engine *Engine `json:"engine,omitempty"`

	// berth/up only.
	// Warnings name what berth leaves out of the configuration, and where
	// the engine's host falls short of hostRequirements; each was also
	// sent as window/showMessage.
	Warnings  []string        `json:"warnings,omitempty"`
	BuildPID  string          `json:"buildPid,omitempty"` // pseudo-pid of the image build's log
	Hooks     []HookRun       `json:"hooks,omitempty"`
	Forwarded []ForwardResult `json:"forwarded,omitempty"` // forwardPorts
}

// HookRun is one lifecycle command berth/up ran.
type HookRun struct {
	Hook  string `json:"hook"`
	Name  string `json:"name,omitempty"`
	PID   string `json:"pid,omitempty"`
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// AgentStatus says whether processes and tunnels go through the agent,
// and which build of it.
type AgentStatus struct {
	Enabled bool   `json:"enabled"`
	Reason  string `json:"reason,omitempty"`
	AgentBuild
	// Connected says this berth has the build running in the instance now.
	Connected bool `json:"connected,omitempty"`
}

// AgentBuild names one agent build; its fields are empty when berth has
// chosen none.
type AgentBuild struct {
	Build    string `json:"build,omitempty"`    // sha256 of the executable, hex
	Platform string `json:"platform,omitempty"` // GOOS/GOARCH it runs on
	Source   string `json:"source,omitempty"`   // env, beside or embedded
}

func toAgentBuild(b *agent.Binary) AgentBuild {
	if b == nil {
		return AgentBuild{}
	}
	return AgentBuild{Build: b.Hash, Platform: b.Platform(), Source: string(b.Source)}
}

func toAgentStatus(st session.AgentStatus) AgentStatus {
	return AgentStatus{Enabled: st.Enabled, Reason: st.Reason, AgentBuild: toAgentBuild(st.Build), Connected: st.Connected}
}

// ComposeInfo names an instance's Compose project and service.
type ComposeInfo struct {
	Project string `json:"project"`
	Service string `json:"service"`
}

// toInstance reports an instance; a hook's failure may quote its output,
// so secrets are masked in it.
func (c *conn) toInstance(in session.Instance) Instance {
	mounts := session.UserMounts(session.MountsOf(in.Instance))
	out := Instance{
		Workspace: in.Workspace, Backend: in.Backend, ID: in.ID, Name: in.Name,
		Image: in.Image, State: in.State, Workdir: in.Workdir, Mounts: mounts,
		Created: in.Created, Stale: in.Stale, HookError: c.s.mask(in.HookError),
		Agent: toAgentStatus(in.Agent), Health: in.Health, HealthError: in.HealthError,
		Sync: in.Labels[session.LabelSync] == "true",
	}
	// The client's manager (an Incus remote it named, say), unless the
	// instance is another backend's (berth/list all).
	mgr, _, _ := c.session()
	if mgr == nil || mgr.Backend().Name() != in.Backend {
		mgr = c.s.opts.Managers[in.Backend]
	}
	if mgr != nil {
		e := toEngine(mgr.Engine())
		out.Engine = &e
	}
	if in.Config != nil {
		out.ConfigSource, out.ConfigFile = string(in.Config.Source), in.Config.File
	}
	if p := in.Labels[backends.LabelCompose]; p != "" {
		out.Compose = &ComposeInfo{Project: p, Service: in.Labels[backends.LabelComposeService]}
	}
	return out
}

// ExecParams are berth/exec's and berth/run's params.
type ExecParams struct {
	Workspace string            `json:"workspace,omitempty"`
	Argv      []string          `json:"argv"`
	Cwd       string            `json:"cwd,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	User      string            `json:"user,omitempty"`
	Stdin     bool              `json:"stdin,omitempty"`
	Kind      string            `json:"kind,omitempty"`
	MapPaths  *bool             `json:"mapPaths,omitempty"` // default true
	TimeoutMs int64             `json:"timeoutMs,omitempty"`
	TTY       bool              `json:"tty,omitempty"`
	Cols      uint16            `json:"cols,omitempty"`
	Rows      uint16            `json:"rows,omitempty"`
}

// ListParams are berth/list's params.
type ListParams struct {
	All bool `json:"all,omitempty"` // every backend that answers, not only the connection's
}

// ResizeParams are berth/resize's params.
type ResizeParams struct {
	PID  string `json:"pid"`
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// ForwardParams are berth/forward's params.
type ForwardParams struct {
	Workspace     string `json:"workspace,omitempty"`
	ContainerPort int    `json:"containerPort"`
	ContainerHost string `json:"containerHost,omitempty"` // default 127.0.0.1
	HostPort      int    `json:"hostPort,omitempty"`      // 0: any free port
	// HostSocket, instead of a port, is a host path where berth makes a
	// unix socket only the user can connect to.
	HostSocket string `json:"hostSocket,omitempty"`
}

// ForwardResult answers berth/forward: host and hostPort, or hostSocket.
type ForwardResult struct {
	TunnelID   string `json:"tunnelId"`
	Host       string `json:"host,omitempty"`
	HostPort   int    `json:"hostPort,omitempty"`
	HostSocket string `json:"hostSocket,omitempty"`
}

// ReverseParams are berth/reverse's params.
type ReverseParams struct {
	Workspace     string `json:"workspace,omitempty"`
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort,omitempty"` // 0: any free port
}

// ReverseResult answers berth/reverse.
type ReverseResult struct {
	TunnelID      string `json:"tunnelId"`
	ContainerHost string `json:"containerHost"`
	ContainerPort int    `json:"containerPort"`
}

// CloseTunnelParams are berth/closeTunnel's params.
type CloseTunnelParams struct {
	TunnelID string `json:"tunnelId"`
}

// TunnelInfo is an entry of berth/tunnels.
type TunnelInfo struct {
	TunnelID      string `json:"tunnelId"`
	Workspace     string `json:"workspace"`
	Direction     string `json:"direction"`
	Host          string `json:"host,omitempty"`
	HostPort      int    `json:"hostPort,omitempty"`
	HostSocket    string `json:"hostSocket,omitempty"`
	ContainerHost string `json:"containerHost"`
	ContainerPort int    `json:"containerPort"`
	Active        int    `json:"active"`
	Auto          bool   `json:"auto,omitempty"` // an auto-forward of a detected port (berth/ports)
}

// ExecResult answers berth/exec.
type ExecResult struct {
	PID string `json:"pid"`
}

// RunResult answers berth/run.
type RunResult struct {
	Code      int    `json:"code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Signal    string `json:"signal,omitempty"`
	TimedOut  bool   `json:"timedOut,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// OOM says the kernel killed the process for the container's memory
	// limit.
	OOM bool `json:"oom,omitempty"`
}

// ReasonOOM is berth/exit's reason for a process the kernel killed for the
// container's memory limit.
const ReasonOOM = "out of memory (OOM): killed by the kernel for the container's memory limit"

// OutputParams is the berth/output notification.
type OutputParams struct {
	PID    string `json:"pid"`
	Stream string `json:"stream"`
	Text   string `json:"text"`
}

// ExitParams is the berth/exit notification.
type ExitParams struct {
	PID    string `json:"pid"`
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// StdinParams are berth/stdin's params.
type StdinParams struct {
	PID   string `json:"pid"`
	Text  string `json:"text,omitempty"`
	Close bool   `json:"close,omitempty"`
}

// SignalParams are berth/signal's params. Signal is a name (TERM, SIGTERM)
// or a number, as a JSON string or number.
type SignalParams struct {
	PID    string          `json:"pid"`
	Signal json.RawMessage `json:"signal"`
}

// ProcessInfo is an entry of berth/processes.
type ProcessInfo struct {
	PID        string     `json:"pid"`
	Workspace  string     `json:"workspace"`
	Argv       []string   `json:"argv"`
	Kind       string     `json:"kind"`
	State      string     `json:"state"`
	Code       *int       `json:"code,omitempty"`
	Signal     string     `json:"signal,omitempty"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// PathsParams are berth/toContainer's and berth/toHost's params.
type PathsParams struct {
	Workspace string   `json:"workspace,omitempty"`
	Paths     []string `json:"paths"`
}

// PathsResult answers them; a path no mount covers is null.
type PathsResult struct {
	Paths []*string `json:"paths"`
}

// ConfigChangedParams is the berth/configChanged notification: the
// workspace's configuration changed, so its instance is stale.
type ConfigChangedParams struct {
	Workspace string   `json:"workspace"`
	Files     []string `json:"files"` // host paths of the inputs that changed
}

// InstanceChangedParams is the berth/instanceChanged notification: a
// workspace's instance changed outside the client's own calls.
type InstanceChangedParams struct {
	Workspace string `json:"workspace"`
	State     string `json:"state"`  // running, stopped or removed
	Reason    string `json:"reason"` // killed, stopped outside berth, removed, daemon lost, daemon back, health, …
	// With reason "health": a service's new health, and why when unhealthy.
	Health      string `json:"health,omitempty"`
	HealthError string `json:"healthError,omitempty"`
}

// ProcessesParams are berth/processes's params.
type ProcessesParams struct {
	Workspace string `json:"workspace,omitempty"`
	State     string `json:"state,omitempty"` // running or exited; "" for both
	Limit     int    `json:"limit,omitempty"` // the newest N; 0 for all
}
