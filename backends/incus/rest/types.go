package rest

import (
	"encoding/json"
	"time"
)

// StatusCode is the numeric status of an instance or an operation.
type StatusCode int

// The status codes berth looks at.
const (
	Running StatusCode = 103
	Stopped StatusCode = 102
	Frozen  StatusCode = 110
	Success StatusCode = 200
	Failure StatusCode = 400
)

// IsFinal reports whether an operation with this status has ended.
func (s StatusCode) IsFinal() bool { return s >= 200 }

// Server is GET /1.0, as far as berth reads it.
type Server struct {
	// Auth is "trusted" when the daemon trusts the client; over HTTPS an
	// untrusted client gets "untrusted" and little else.
	Auth          string            `json:"auth"`
	APIExtensions []string          `json:"api_extensions"`
	Environment   ServerEnvironment `json:"environment"`
}

// ServerEnvironment describes the daemon's host.
type ServerEnvironment struct {
	ServerVersion  string            `json:"server_version"`
	KernelFeatures map[string]string `json:"kernel_features"`
	// ServerClustered says the daemon is a cluster member, ServerName
	// which one.
	ServerClustered bool     `json:"server_clustered"`
	Architectures   []string `json:"architectures"` // the host's, its own first
	ServerName      string   `json:"server_name"`
}

// InstancePut is an instance's writable configuration. PUT replaces all of
// it, so it carries every writable field, read or not.
type InstancePut struct {
	Architecture string                       `json:"architecture"`
	Config       map[string]string            `json:"config"`
	Devices      map[string]map[string]string `json:"devices"`
	Ephemeral    bool                         `json:"ephemeral"`
	Profiles     []string                     `json:"profiles"`
	Stateful     bool                         `json:"stateful"`
	Description  string                       `json:"description"`
}

// Instance is an instance as GET /1.0/instances/NAME returns it. Config and
// Devices are the instance's own, not expanded with its profiles'.
type Instance struct {
	InstancePut
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Status     string     `json:"status"`
	StatusCode StatusCode `json:"status_code"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at"`
	Location   string     `json:"location"` // the cluster member it runs on; "none" outside a cluster
}

// InstancesPost creates an instance. Without profiles it gets the
// default profile.
type InstancesPost struct {
	Name    string                       `json:"name"`
	Type    string                       `json:"type"` // container or virtual-machine
	Source  InstanceSource               `json:"source"`
	Config  map[string]string            `json:"config,omitempty"`
	Devices map[string]map[string]string `json:"devices,omitempty"`
}

// InstanceSource says what a new instance is made from.
type InstanceSource struct {
	Type        string `json:"type"` // image, none...
	Alias       string `json:"alias,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// From another server: Mode "pull", its URL, its protocol (incus or
	// simplestreams) and, for a self-signed one, its certificate.
	Mode        string `json:"mode,omitempty"`
	Server      string `json:"server,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	Certificate string `json:"certificate,omitempty"`
}

// InstanceState is an instance's runtime state.
type InstanceState struct {
	Status     string     `json:"status"`
	StatusCode StatusCode `json:"status_code"`
	Pid        int64      `json:"pid"` // of its init, in the host's PID namespace
	Memory     struct {
		Usage int64 `json:"usage"` // bytes
		Total int64 `json:"total"` // bytes the instance may use: its limit, or the host's
	} `json:"memory"`
	CPU struct {
		Usage int64 `json:"usage"` // nanoseconds of CPU time since start
	} `json:"cpu"`
	Processes int `json:"processes"`
}

// InstanceStatePut changes an instance's state.
type InstanceStatePut struct {
	Action   string `json:"action"`  // start, stop, restart, freeze, unfreeze
	Timeout  int    `json:"timeout"` // seconds a clean stop may take
	Force    bool   `json:"force"`
	Stateful bool   `json:"stateful"`
}

// Image is a local image.
type Image struct {
	Fingerprint  string            `json:"fingerprint"`
	Architecture string            `json:"architecture"`
	Properties   map[string]string `json:"properties"`
}

// ImageAlias names an image.
type ImageAlias struct {
	Name   string `json:"name"`
	Target string `json:"target"` // the image's fingerprint
}

// Operation is a background operation.
type Operation struct {
	ID          string         `json:"id"`
	Class       string         `json:"class"` // task, websocket or token
	Description string         `json:"description"`
	Status      string         `json:"status"`
	StatusCode  StatusCode     `json:"status_code"`
	Metadata    map[string]any `json:"metadata"`
	Err         string         `json:"err"`
}

// ExecPost runs a command in an instance.
type ExecPost struct {
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	// WaitForWS makes incusd wait for the stdin, stdout, stderr and control
	// websockets before it starts the command; without it the command runs
	// at once with no input and its output discarded.
	WaitForWS   bool   `json:"wait-for-websocket"`
	Interactive bool   `json:"interactive"`
	User        uint32 `json:"user"`
	Group       uint32 `json:"group"`
	Cwd         string `json:"cwd"`
}

// ExecControl is a message on an exec's control websocket.
type ExecControl struct {
	Command string            `json:"command"` // signal, window-resize
	Args    map[string]string `json:"args,omitempty"`
	Signal  int               `json:"signal,omitempty"`
}

// Event is a message of the events websocket.
type Event struct {
	Type      string          `json:"type"` // lifecycle, logging, operation
	Timestamp time.Time       `json:"timestamp"`
	Metadata  json.RawMessage `json:"metadata"`
	Project   string          `json:"project,omitempty"`
}

// EventLifecycle is the metadata of a lifecycle event.
type EventLifecycle struct {
	Action    string                   `json:"action"` // instance-started...
	Source    string                   `json:"source"` // /1.0/instances/NAME?project=P
	Requestor *EventLifecycleRequestor `json:"requestor,omitempty"`
	Name      string                   `json:"name,omitempty"` // when the daemon sends it
	Project   string                   `json:"project,omitempty"`
}

// EventLifecycleRequestor is who asked for a lifecycle change; absent when
// the instance changed by itself.
type EventLifecycleRequestor struct {
	Username string `json:"username"`
	Protocol string `json:"protocol"`
	Address  string `json:"address,omitempty"`
}

// Event types and lifecycle actions berth follows.
const (
	EventTypeLifecycle = "lifecycle"

	LifecycleInstanceCreated   = "instance-created"
	LifecycleInstanceStarted   = "instance-started"
	LifecycleInstanceRestarted = "instance-restarted"
	LifecycleInstanceShutdown  = "instance-shutdown"
	LifecycleInstanceStopped   = "instance-stopped"
	LifecycleInstanceDeleted   = "instance-deleted"
)

// Resources is the part of /1.0/resources berth reads.
type Resources struct {
	CPU struct {
		Total uint64 `json:"total"`
	} `json:"cpu"`
	Memory struct {
		Total uint64 `json:"total"`
	} `json:"memory"`
	GPU struct {
		Total uint64 `json:"total"`
	} `json:"gpu"`
}

// Profile is the part of a profile berth reads.
type Profile struct {
	Name    string                       `json:"name"`
	Devices map[string]map[string]string `json:"devices"`
}

// StoragePoolResources is a storage pool's space, in bytes.
type StoragePoolResources struct {
	Space struct {
		Used  uint64 `json:"used"`
		Total uint64 `json:"total"`
	} `json:"space"`
}
