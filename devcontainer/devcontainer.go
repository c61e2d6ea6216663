// Package devcontainer finds a workspace's container configuration and reads
// the part of devcontainer.json that berth acts on.
//
// Discover looks, in order, at an explicit config path, at
// .devcontainer/devcontainer.json, at .devcontainer.json, at a Containerfile
// or Dockerfile in the workspace root and finally at a fallback image, and
// returns the first it finds as a Config. devcontainer.json files are JSONC:
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
)

var (
	// ErrNoConfig means the workspace has no container configuration and no
	// fallback image was given.
	ErrNoConfig = errors.New("no container config")
	// ErrBadConfig means a configuration file exists but cannot be used:
	// it is not valid JSONC, a value has the wrong type, or a required value
	// is missing. Such errors are *ConfigError values.
	ErrBadConfig = errors.New("bad container config")
)

// Source says where a Config came from.
type Source string

const (
	SourceExplicit         Source = "explicit"           // the --config option or initializationOptions.config
	SourceDevcontainerJSON Source = "devcontainer.json"  // .devcontainer/devcontainer.json
	SourceDotDevcontainer  Source = ".devcontainer.json" // .devcontainer.json in the workspace root
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
	// Engine settings, from the config's own keys and, after Merge, from
	// image metadata and Features.
	CapAdd      []string `json:",omitempty"` // capAdd, runArgs --cap-add, Features
	SecurityOpt []string `json:",omitempty"` // securityOpt, runArgs --security-opt, Features
	Privileged  bool     `json:",omitempty"` // privileged, runArgs --privileged, Features
	Init        bool     `json:",omitempty"` // init, runArgs --init, Features
	// Entrypoints are Features' entrypoint scripts, in install order.
	Entrypoints []string `json:",omitempty"`
	// OverrideCommand is overrideCommand; nil means the spec's default.
	OverrideCommand *bool `json:",omitempty"`
	// Features lists the features key's entries, in file order.
	Features []FeatureRef `json:",omitempty"`
	// OverrideFeatureInstallOrder is overrideFeatureInstallOrder: Feature
	// ids installed first, in this order, as far as dependencies allow.
	OverrideFeatureInstallOrder []string `json:",omitempty"`
	// Metadata is what Merge took in: image-metadata entries (the base
	// image's label, then one per Feature), in order. Their lifecycle
	// commands run before the config's own.
	Metadata []Metadata `json:",omitempty"`
	// Keys that image metadata also carries.
	UserEnvProbe        string                    `json:",omitempty"`
	UpdateRemoteUserUID *bool                     `json:",omitempty"`
	WaitFor             string                    `json:",omitempty"`
	PortsAttributes     map[string]PortAttributes `json:",omitempty"`
	// Compose is set for a Docker Compose configuration, which has no
	// Image or Build of its own.
	Compose *Compose `json:",omitempty"`
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

// PortAttributes is one entry of portsAttributes.
type PortAttributes struct {
	Label            string `json:"label,omitempty"`
	OnAutoForward    string `json:"onAutoForward,omitempty"`
	Protocol         string `json:"protocol,omitempty"`
	RequireLocalPort *bool  `json:"requireLocalPort,omitempty"`
	ElevateIfNeeded  *bool  `json:"elevateIfNeeded,omitempty"`
}

// BerthSettings is customizations.berth.
type BerthSettings struct {
	Backend string
	Test    map[string]any // passed through, e.g. framework and args
	Lint    map[string]any
	Debug   map[string]any
	Agent   *bool // false disables the agent; nil means the default
	// Unknown lists unknown keys under customizations.berth, in file order.
	Unknown []string
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
