// Package devcontainer finds a workspace's container configuration and reads
// the part of devcontainer.json that berth acts on.
//
// Discover looks, in order, at an explicit config path, at
// .devcontainer/devcontainer.json, at .devcontainer.json, at named configs
// (.devcontainer/<name>/devcontainer.json: the only one, or an error
// listing them), at a Containerfile or Dockerfile in the workspace root and
// finally at a fallback image, and returns the first it finds as a Config. devcontainer.json files are JSONC:
// comments and trailing commas are allowed. Variables such as
// ${localWorkspaceFolder} and ${localEnv:VAR:default} are substituted in every
// string value at parse time; ${containerEnv:VAR} is left for
// Config.ResolveRemoteEnv once the container's environment is known.
//
// The package only reads files on the host; it never runs anything.
package devcontainer

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

var (
	// ErrNoConfig means the workspace has no container configuration and no
	// fallback image was given.
	ErrNoConfig = errors.New("no container config")
	// ErrBadConfig means a configuration file exists but cannot be used:
	// it is not valid JSONC, a value has the wrong type, or a required value
	// is missing. Such errors are *ConfigError values.
	ErrBadConfig = errors.New("bad container config")
	// ErrAmbiguousConfig means the workspace has several named configs
	// (.devcontainer/<name>/devcontainer.json), none at the root, and no
	// choice was made. Such errors are *AmbiguousError values.
	ErrAmbiguousConfig = errors.New("several container configs")
)

// AmbiguousError lists the named configs to choose from. It wraps
// ErrAmbiguousConfig.
type AmbiguousError struct {
	Workspace  string
	Candidates []string // absolute host paths, sorted
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("devcontainer: %s has %d configurations and none was chosen: pick one with --config or initializationOptions.config: %s",
		e.Workspace, len(e.Candidates), strings.Join(e.Candidates, ", "))
}

func (e *AmbiguousError) Unwrap() error { return ErrAmbiguousConfig }

// Source says where a Config came from.
type Source string

const (
	SourceExplicit         Source = "explicit"           // the --config option or initializationOptions.config
	SourceDevcontainerJSON Source = "devcontainer.json"  // .devcontainer/devcontainer.json
	SourceDotDevcontainer  Source = ".devcontainer.json" // .devcontainer.json in the workspace root
	SourceNamed            Source = "named"              // .devcontainer/<name>/devcontainer.json, the only one
	SourceContainerfile    Source = "containerfile"      // a Containerfile or Dockerfile in the workspace root
	SourceImage            Source = "image"              // the image option or BERTH_IMAGE
)

const (
	defaultShutdownAction   = "stopContainer"
	defaultWorkspacesParent = "/workspaces"
)

// Config is the resolved container configuration of one workspace.
type Config struct {
	Source Source
	// File is the absolute host path of the config file: the
	// devcontainer.json, or the Containerfile itself; "" for SourceImage.
	File string
	// Image is the image to run. It is empty when Build or Compose is set.
	Image string
	// Build is nil unless the image is built from a Dockerfile.
	Build *Build
	// WorkspaceFolder is the workspace's path in the container; it defaults
	// to "/workspaces/<basename of the workspace>".
	WorkspaceFolder string
	// WorkspaceMount is nil for the default bind mount of the workspace onto
	// WorkspaceFolder. Type "copy" (from the literal "copy") asks for sync mode.
	WorkspaceMount *Mount
	Mounts         []Mount
	ContainerEnv   map[string]string
	// RemoteEnv values may still hold ${containerEnv:VAR}: see
	// ResolveRemoteEnv.
	RemoteEnv     map[string]string
	RemoteUser    string
	ContainerUser string
	ForwardPorts  []Port
	// Lifecycle commands. OnCreate, UpdateContent and PostCreate run once
	// per container, in that order; PostStart once per start; PostAttach
	// once per editor session.
	OnCreate      *Hook
	UpdateContent *Hook
	PostCreate    *Hook
	PostStart     *Hook
	PostAttach    *Hook
	// ShutdownAction is "none" or "stopContainer" (the default); with
	// Compose it is "none" or "stopCompose" (the default there), which
	// stops every service of the project.
	ShutdownAction string

	// The fields from here on are omitzero so that a config that doesn't
	// use them keeps the hash, and the container, it had before berth
	// knew them.

	// Engine settings, from their own keys and from runArgs.
	CapAdd      []string `json:",omitzero"` // capAdd, runArgs --cap-add, Features
	SecurityOpt []string `json:",omitzero"` // securityOpt, runArgs --security-opt, Features
	Privileged  bool     `json:",omitzero"` // privileged, runArgs --privileged, Features
	// Init asks for an init process that reaps zombies. Docker instances
	// always run docker-init and Incus instances boot the image's own
	// init, so berth satisfies it whatever its value.
	Init        bool     `json:",omitzero"`
	Entrypoints []string `json:",omitzero"` // Features' entrypoint scripts, in install order
	// OverrideCommand is nil for the spec's default (true for image and
	// Dockerfile configs): berth's own main process replaces the image's.
	// false keeps the image's entrypoint and command as the main process.
	OverrideCommand *bool `json:",omitzero"`

	// InitializeCommand runs on the host, in the workspace folder, before
	// anything else of an up.
	InitializeCommand *Hook `json:",omitzero"`
	// WaitFor names the lifecycle command calls other than up wait for
	// before they go on ("" is the spec's default, updateContentCommand);
	// later commands finish in the background.
	WaitFor string `json:",omitzero"`
	// UserEnvProbe is how the remote user's environment is captured, once
	// per container: none, interactiveShell, loginShell or
	// loginInteractiveShell ("" is the spec's default,
	// loginInteractiveShell).
	UserEnvProbe string `json:",omitzero"`
	// UpdateRemoteUserUID, nil for the default (true), matches the remote
	// user's uid and gid to the host user's on Linux hosts.
	UpdateRemoteUserUID *bool `json:",omitzero"`
	// AppPort are ports published on the host, in docker's -p form
	// ("3000", "127.0.0.1:8080:80").
	AppPort              []string                  `json:",omitzero"`
	PortsAttributes      map[string]PortAttributes `json:",omitzero"` // by port, range ("3000-3010") or host:port
	OtherPortsAttributes *PortAttributes           `json:",omitzero"`
	HostRequirements     *HostRequirements         `json:",omitzero"`
	// Run holds what runArgs sets that has no key of its own; its
	// --cap-add and the like land in the fields above, -e in
	// ContainerEnv and -u in ContainerUser.
	Run RunArgs `json:",omitzero"`
	// Features lists the features key's entries, in file order.
	Features []FeatureRef `json:",omitzero"`
	// OverrideFeatureInstallOrder is overrideFeatureInstallOrder: Feature
	// ids installed first, in this order, as far as dependencies allow.
	OverrideFeatureInstallOrder []string `json:",omitzero"`
	// Metadata is what Merge took in: image-metadata entries (the base
	// image's label, then one per Feature), in order. Their lifecycle
	// commands run before the config's own.
	Metadata []Metadata `json:",omitzero"`
	// Compose is set for a Docker Compose configuration, which has no
	// Image or Build of its own.
	Compose *Compose `json:",omitzero"`

	// Berth holds customizations.berth.
	Berth BerthSettings
	// Unknown lists what was ignored, roughly in file order: unknown or
	// unsupported top-level keys ("features", "runArgs"), and ignored keys
	// below them as paths ("build.cacheFrom", "mounts[2].volume-opt"). "image"
	// is listed when a Dockerfile overrides it. The caller logs them once.
	// They do not count towards Hash.
	Unknown []string
	// Hash is the hex SHA-256 of the resolved config (everything above but
	// Unknown) and of the Dockerfile's contents when building. It is stable
	// across runs and formatting, and changes when any input changes.
	Hash string
}

// Build says how to build the image.
type Build struct {
	Dockerfile string // absolute host path
	Context    string // absolute host path
	Args       map[string]string
	Target     string
}

// Mount is one mount into the container.
type Mount struct {
	Type     string // "bind", "volume", "tmpfs", or "copy" (WorkspaceMount only)
	Source   string // host path for bind, volume name for volume, "" for an anonymous volume or tmpfs
	Target   string // container path
	ReadOnly bool
}

// Port is one entry of forwardPorts: 3000, "3000" or "db:5432".
type Port struct {
	Host string // "" means localhost in the container
	Port int
}

// Hook is a lifecycle command in one of the three devcontainer forms.
// Exactly one field is set.
type Hook struct {
	Shell    string           // string form: run with /bin/sh -c
	Argv     []string         // array form: run directly
	Parallel map[string]*Hook // object form: named commands run in parallel, each a Shell or an Argv
}

// FeatureRef is one entry of the features key.
type FeatureRef struct {
	// ID is the reference as written: "./local-folder", an OCI reference
	// such as "registry.example/ns/feature:1", or an https:// tarball URL.
	ID string
	// Options are the user's option values: strings, booleans, or numbers
	// as their JSON text. A string given instead of an object is the
	// "version" option.
	Options map[string]any
	// Where the entry's key, and each option's value, are in the file,
	// for errors. They do not count towards Hash.
	Line, Column int               `json:"-"`
	OptionPos    map[string][2]int `json:"-"`
}

// PortAttributes is one entry of portsAttributes, or otherPortsAttributes.
type PortAttributes struct {
	Label string `json:"label,omitempty"`
	// OnAutoForward is notify (the spec's default), openBrowser,
	// openBrowserOnce, openPreview, silent or ignore. berth reports it;
	// editors act on it.
	OnAutoForward string `json:"onAutoForward,omitempty"`
	// RequireLocalPort makes forwardPorts fail rather than pick another
	// host port when the same one is taken.
	RequireLocalPort bool   `json:"requireLocalPort,omitempty"`
	ElevateIfNeeded  bool   `json:"elevateIfNeeded,omitempty"`
	Protocol         string `json:"protocol,omitempty"` // http or https
}

// HostRequirements is hostRequirements: the least the engine's host must
// have. Zero means no requirement.
type HostRequirements struct {
	CPUs    int
	Memory  int64 // bytes
	Storage int64 // bytes
	// GPU is "" (none asked), "required" or "optional".
	GPU string
}

// RunArgs is the part of runArgs that has no devcontainer key of its own.
type RunArgs struct {
	Devices    []string          // --device, docker's HOST[:CONTAINER[:PERMS]]
	GPUs       string            // --gpus: "all", a count, or "device=0,1"
	EnvFiles   []string          // --env-file: absolute host paths, read at create
	ExtraHosts []string          // --add-host, HOST:IP
	Network    string            // --network
	ShmSize    int64             // --shm-size, bytes
	Ulimits    []Ulimit          // --ulimit
	Labels     map[string]string // --label
	Hostname   string            // --hostname
	// Mounts are -v and --mount. They also count as mounts: they are
	// kept here, not in Config.Mounts, so errors and trust name runArgs.
	Mounts []Mount
}

// Ulimit is one --ulimit NAME=SOFT[:HARD].
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// BerthSettings is customizations.berth.
type BerthSettings struct {
	Backend string
	Test    map[string]any // passed through, e.g. framework and args
	Lint    map[string]any
	Debug   map[string]any
	Agent   *bool         // false disables the agent; nil means the default
	Sync    *SyncSettings // customizations.berth.sync; nil means the defaults
	// Limits are the instance's resource limits; nil sets none.
	Limits *Limits `json:",omitzero"`
	// Lifetime is "", LifetimeWorkspace, LifetimeCommand or
	// LifetimeService (see EffectiveLifetime).
	Lifetime string `json:",omitzero"`
	// Service is set with LifetimeService, the default filled in.
	Service *Service `json:",omitzero"`
	// Unknown lists unknown keys under customizations.berth, in file order.
	Unknown []string
}

// SyncSettings is customizations.berth.sync: how sync mode (workspaceMount
// "copy", or a remote engine) keeps the workspace's copy.
type SyncSettings struct {
	// TwoWay brings files changed in the container back to the host.
	TwoWay bool
	// Back holds gitignore-style patterns, relative to the workspace, of
	// what comes back with TwoWay, even when ignored on the way in (build
	// outputs). Empty means everything that goes in may come back.
	Back []string
	// MaxFiles and MaxBytes override the size limit of a workspace sync
	// copies; 0 keeps the default.
	MaxFiles, MaxBytes int64
}

// ConfigError is a problem in a configuration file. It wraps ErrBadConfig.
type ConfigError struct {
	File string
	// Line and Column are 1-based; Column counts characters. Both are 0 when
	// the problem has no single position; Column alone is 0 when only the
	// line is known (YAML compose files).
	Line, Column int
	// Field is the path of the offending value, such as "forwardPorts[1]";
	// "" for syntax errors.
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ConfigError) Unwrap() error { return ErrBadConfig }

// Discover finds and reads the container configuration of the workspace ws,
// an absolute host path. explicit, if not empty, is a config path (absolute
// or relative to ws) that must exist; it may name a devcontainer.json or a
// Containerfile. fallbackImage is the image option or BERTH_IMAGE. env looks
// up host environment variables for ${localEnv:VAR}; nil means none are set.
//
// A config file that exists but is broken is an error wrapping ErrBadConfig;
// Discover does not fall through to the next candidate. When nothing is found
// the error wraps ErrNoConfig and lists every path looked at.
func Discover(ws, explicit, fallbackImage string, env func(string) (string, bool)) (*Config, error) {
	ws, err := filepath.Abs(ws)
	if err != nil {
		return nil, fmt.Errorf("devcontainer: workspace %s: %w", ws, err)
	}
	return discover(osFS{}, ws, explicit, fallbackImage, env)
}

// discover is Discover on fsys, which holds host paths as toFSPath names them.
func discover(fsys fs.FS, ws, explicit, fallbackImage string, env func(string) (string, bool)) (*Config, error) {
	ws = filepath.Clean(ws)
	if explicit != "" {
		p := hostPath(ws, explicit)
		data, found, err := readIfExists(fsys, p)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("devcontainer: no config file at %s: %w", p, ErrNoConfig)
		}
		if isContainerfileName(filepath.Base(p)) {
			return containerfileConfig(SourceExplicit, p, filepath.Dir(p), ws, data), nil
		}
		return finishJSON(fsys, SourceExplicit, p, ws, data, env)
	}

	jsons := []struct {
		rel string
		src Source
	}{
		{".devcontainer/devcontainer.json", SourceDevcontainerJSON},
		{".devcontainer.json", SourceDotDevcontainer},
	}
	var looked []string
	for _, j := range jsons {
		p := filepath.Join(ws, filepath.FromSlash(j.rel))
		looked = append(looked, p)
		data, found, err := readIfExists(fsys, p)
		if err != nil {
			return nil, err
		}
		if found {
			return finishJSON(fsys, j.src, p, ws, data, env)
		}
	}
	named, err := namedConfigs(fsys, ws)
	if err != nil {
		return nil, err
	}
	switch len(named) {
	case 0:
		looked = append(looked, filepath.Join(ws, ".devcontainer", "*", "devcontainer.json"))
	case 1:
		data, _, err := readIfExists(fsys, named[0])
		if err != nil {
			return nil, err
		}
		return finishJSON(fsys, SourceNamed, named[0], ws, data, env)
	default:
		return nil, &AmbiguousError{Workspace: ws, Candidates: named}
	}
	// Containerfile first: it is the name podman and buildah prefer, and a
	// repository with both most likely keeps Dockerfile for older tooling.
	for _, name := range []string{"Containerfile", "Dockerfile"} {
		p := filepath.Join(ws, name)
		looked = append(looked, p)
		data, found, err := readIfExists(fsys, p)
		if err != nil {
			return nil, err
		}
		if found {
			return containerfileConfig(SourceContainerfile, p, ws, ws, data), nil
		}
	}
	if img := strings.TrimSpace(fallbackImage); img != "" {
		c := &Config{
			Source:          SourceImage,
			Image:           img,
			WorkspaceFolder: defaultWorkspaceFolder(ws),
			ShutdownAction:  defaultShutdownAction,
		}
		c.Hash = computeHash(c)
		return c, nil
	}
	return nil, fmt.Errorf("devcontainer: looked for %s, and neither the image option nor BERTH_IMAGE is set: %w",
		strings.Join(looked, ", "), ErrNoConfig)
}

// finishJSON parses a devcontainer.json and hashes it with its Dockerfile.
func finishJSON(fsys fs.FS, src Source, file, ws string, data []byte, env func(string) (string, bool)) (*Config, error) {
	c, err := Parse(data, file, ws, env)
	if err != nil {
		return nil, err
	}
	c.Source = src
	// Local Features are build inputs too: editing one makes the
	// container stale.
	inputs := localFeatureInputs(fsys, filepath.Dir(file), c.Features)
	if c.Compose != nil {
		more, err := finishCompose(fsys, c, ws, env)
		if err != nil {
			return nil, err
		}
		c.Hash = computeHash(c, append(inputs, more...)...)
		return c, nil
	}
	if c.Build == nil {
		if len(inputs) > 0 {
			c.Hash = computeHash(c, inputs...)
		}
		return c, nil
	}
	df, found, err := readIfExists(fsys, c.Build.Dockerfile)
	if err != nil {
		return nil, err
	}
	if !found {
		// Caught here rather than at build time: the hash needs the contents,
		// and the user gets the config file named.
		return nil, &ConfigError{File: file, Field: "build.dockerfile", Msg: c.Build.Dockerfile + " does not exist"}
	}
	c.Hash = computeHash(c, append([][]byte{df}, inputs...)...)
	return c, nil
}

// localFeatureInputs lists the files of the local Features (./path), as
// name and contents, for the hash. A folder that can't be read adds
// nothing: resolving the Features reports it.
func localFeatureInputs(fsys fs.FS, dir string, refs []FeatureRef) [][]byte {
	var out [][]byte
	for _, f := range refs {
		if !strings.HasPrefix(f.ID, "./") && !strings.HasPrefix(f.ID, "../") {
			continue
		}
		root := toFSPath(hostPath(dir, f.ID))
		_ = fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			data, err := fs.ReadFile(fsys, p)
			if err != nil {
				return nil
			}
			out = append(out, []byte(p), data)
			return nil
		})
	}
	return out
}

func containerfileConfig(src Source, file, context, ws string, data []byte) *Config {
	c := &Config{
		Source:          src,
		File:            file,
		Build:           &Build{Dockerfile: file, Context: context},
		WorkspaceFolder: defaultWorkspaceFolder(ws),
		ShutdownAction:  defaultShutdownAction,
	}
	c.Hash = computeHash(c, data)
	return c
}

// isContainerfileName reports whether an explicit config names a
// Containerfile rather than a devcontainer.json, using the usual naming
// conventions: Dockerfile, Dockerfile.dev, dev.Dockerfile and the same with
// Containerfile.
func isContainerfileName(base string) bool {
	for _, n := range []string{"Containerfile", "Dockerfile"} {
		if base == n || strings.HasPrefix(base, n+".") || strings.HasSuffix(base, "."+n) {
			return true
		}
	}
	return false
}

// hostPath resolves p, absolute or relative to dir, to a clean host path.
// devcontainer.json uses forward slashes on every host.
func hostPath(dir, p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func defaultWorkspaceFolder(ws string) string {
	base := filepath.Base(ws)
	if base == "." || base == string(filepath.Separator) || base == "" {
		return defaultWorkspacesParent
	}
	return path.Join(defaultWorkspacesParent, base)
}

// Candidates lists every devcontainer.json of the workspace ws that
// --config may name: .devcontainer/devcontainer.json, .devcontainer.json
// and the named ones, in the order Discover prefers them.
func Candidates(ws string) ([]string, error) {
	ws, err := filepath.Abs(ws)
	if err != nil {
		return nil, fmt.Errorf("devcontainer: workspace %s: %w", ws, err)
	}
	return candidates(osFS{}, ws)
}

func candidates(fsys fs.FS, ws string) ([]string, error) {
	var out []string
	for _, rel := range []string{".devcontainer/devcontainer.json", ".devcontainer.json"} {
		p := filepath.Join(ws, filepath.FromSlash(rel))
		_, found, err := readIfExists(fsys, p)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, p)
		}
	}
	named, err := namedConfigs(fsys, ws)
	return append(out, named...), err
}

// namedConfigs lists .devcontainer/<name>/devcontainer.json, sorted by name.
func namedConfigs(fsys fs.FS, ws string) ([]string, error) {
	dir := filepath.Join(ws, ".devcontainer")
	entries, err := fs.ReadDir(fsys, toFSPath(dir))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devcontainer: %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name(), "devcontainer.json")
		if _, found, err := readIfExists(fsys, p); err != nil {
			return nil, err
		} else if found {
			out = append(out, p)
		}
	}
	return out, nil
}
