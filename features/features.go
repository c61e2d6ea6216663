// Package features resolves the dev container Features a configuration
// asks for: it fetches them (local folders, HTTPS tarballs, OCI artifacts),
// caches them for offline use, checks and fills in their options, follows
// dependsOn, orders them (installsAfter, dependsOn,
// overrideFeatureInstallOrder), keeps devcontainer-lock.json, and writes
// what installs them: a Docker build context of layers on a base image, or
// a tar of scripts to run in an instance that cannot be built (Incus).
//
// Resolve never runs anything. With Options.Offline it touches no network
// and lists what it could not find in the lock file and the cache.
package features

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berthdev/berth/devcontainer"
)

// Sentinel errors. Errors about an entry of devcontainer.json are also
// *devcontainer.ConfigError values that name its file, line and column.
var (
	// ErrUnresolved means a Feature could not be fetched: a missing
	// folder, an unreachable registry or URL, a reference that does not
	// exist, and nothing in the cache.
	ErrUnresolved = errors.New("feature not resolved")
	// ErrBadFeature means a Feature is malformed, or used wrongly: its
	// devcontainer-feature.json, an option of the wrong type, a
	// dependency cycle.
	ErrBadFeature = errors.New("bad feature")
)

// Kinds of Feature sources.
const (
	KindLocal   = "local"   // a folder next to the configuration
	KindTarball = "tarball" // an https:// URL of a .tgz
	KindOCI     = "oci"     // an OCI artifact in a registry
)

// Feature is one resolved Feature, ready to install.
type Feature struct {
	// Ref is the reference as devcontainer.json (or a dependsOn) wrote it.
	Ref  string
	Kind string
	// Resource is Ref without its tag or digest: what installsAfter and
	// overrideFeatureInstallOrder name.
	Resource string
	// Resolved pins the content: registry/repo@sha256:… for OCI, the URL
	// for a tarball, the folder for a local Feature.
	Resolved string
	// Integrity is "sha256:…" of the content (the OCI manifest, the
	// tarball, or the local folder's files).
	Integrity string
	// ID and Version are devcontainer-feature.json's.
	ID, Version string
	// Dir is the host folder that holds its files (install.sh, …).
	Dir string
	// Options are the option values it gets, defaults filled in, by
	// option id; Env are the same as environment variables for install.sh.
	Options map[string]string
	Env     map[string]string
	// Meta is what it brings to the container besides its install:
	// containerEnv, mounts, capAdd, lifecycle commands, ….
	Meta devcontainer.Metadata

	user          map[string]any // the options the user gave
	installsAfter []string
	dependsOn     []depRef
	legacyIDs     []string
	ref           *devcontainer.FeatureRef // the devcontainer.json entry, for errors; nil for dependencies
}

type depRef struct {
	ref     string
	options map[string]any
}

// Unresolved is a Feature that Resolve could not fetch.
type Unresolved struct {
	Ref string
	Err error
}

// Set is a configuration's Features, resolved and in install order.
type Set struct {
	Features   []*Feature
	Unresolved []Unresolved // only with Options.Offline
	// LockFile is the path of devcontainer-lock.json; Locked says it
	// existed, or was written.
	LockFile string
	Locked   bool
}

// Options are the parameters of Resolve.
type Options struct {
	// Offline never touches the network: the lock file and the cache
	// only. Features found in neither are listed in Set.Unresolved, not
	// returned as errors.
	Offline bool
	// CacheDir holds fetched Features; "" is DefaultCacheDir.
	CacheDir string
	// HTTP fetches tarballs and talks to registries; nil is a client
	// with the environment's proxy and the system's certificates
	// (SSL_CERT_FILE included).
	HTTP *http.Client
	// WriteLock writes devcontainer-lock.json when it is missing.
	WriteLock bool
	Log       *slog.Logger
}

// DefaultCacheDir is berth's Features cache in the user's cache directory
// ($XDG_CACHE_HOME/berth/features).
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("features: no cache directory: %w", err)
	}
	return filepath.Join(dir, "berth", "features"), nil
}

// Resolve fetches, checks and orders cfg's Features. cfg.File locates
// local Features and the lock file. A configuration without Features
// gives an empty Set.
func Resolve(ctx context.Context, cfg *devcontainer.Config, opts Options) (*Set, error) {
	set := &Set{}
	if cfg == nil || len(cfg.Features) == 0 {
		return set, nil
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.CacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		opts.CacheDir = dir
	}
	if opts.HTTP == nil {
		// An address that never answers must fail, not hang: the
		// cache may still serve.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		tr.ResponseHeaderTimeout = 30 * time.Second
		opts.HTTP = &http.Client{Transport: tr}
	}
	set.LockFile = LockPath(cfg.File)
	lock, err := readLock(set.LockFile)
	if err != nil {
		return nil, err
	}
	set.Locked = lock != nil
	r := &resolver{opts: opts, cfg: cfg, lock: lock, set: set, dir: filepath.Dir(cfg.File)}

	// The user's Features, then their dependencies, breadth first; a
	// Feature asked for twice with the same options is installed once.
	type item struct {
		ref  string
		opts map[string]any
		user *devcontainer.FeatureRef
	}
	var queue []item
	for i := range cfg.Features {
		f := &cfg.Features[i]
		queue = append(queue, item{ref: f.ID, opts: f.Options, user: f})
	}
	seen := map[string]*Feature{}
	var all []*Feature
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		f, err := r.fetch(ctx, it.ref, it.user)
		if err != nil {
			if opts.Offline && errors.Is(err, ErrUnresolved) {
				set.Unresolved = append(set.Unresolved, Unresolved{Ref: it.ref, Err: err})
				continue
			}
			return nil, err
		}
		f.user = it.opts
		f.ref = it.user
		if err := r.options(f); err != nil {
			return nil, err
		}
		key := f.identity()
		if prev, ok := seen[key]; ok {
			if prev.ref == nil && it.user != nil {
				prev.ref = it.user // a user's entry names it better in errors
			}
			continue
		}
		seen[key] = f
		all = append(all, f)
		for _, d := range f.dependsOn {
			queue = append(queue, item{ref: d.ref, opts: d.options})
		}
	}
	ordered, err := order(all, cfg)
	if err != nil {
		return nil, err
	}
	set.Features = ordered
	if lock == nil && opts.WriteLock && len(set.Unresolved) == 0 {
		if wrote, err := writeLock(set.LockFile, set.Features); err != nil {
			opts.Log.Warn("could not write the lock file", "file", set.LockFile, "err", err)
		} else if wrote {
			set.Locked = true
			opts.Log.Info("wrote the Features lock file", "file", set.LockFile)
		}
	}
	return set, nil
}

// identity tells Features apart: the same content with the same options
// is one Feature; every local Feature is its own.
func (f *Feature) identity() string {
	b, _ := json.Marshal(f.Options)
	return f.Kind + "\x00" + f.Resolved + "\x00" + f.Integrity + "\x00" + string(b)
}

// Metadata is one image-metadata entry per Feature, in install order.
func (s *Set) Metadata() []devcontainer.Metadata {
	if s == nil {
		return nil
	}
	out := make([]devcontainer.Metadata, 0, len(s.Features))
	for _, f := range s.Features {
		m := f.Meta
		m.ID = f.ID
		if m.ID == "" {
			m.ID = f.Ref
		}
		out = append(out, m)
	}
	return out
}

// Hash is the hex SHA-256 of every install input: each Feature's content,
// options and place in the order.
func (s *Set) Hash() string {
	h := sha256.New()
	h.Write([]byte("berth features v1\x00"))
	for _, f := range s.Features {
		keys := slices.Sorted(maps.Keys(f.Env))
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00", f.Ref, f.Resolved, f.Integrity)
		for _, k := range keys {
			fmt.Fprintf(h, "%s=%s\x00", k, f.Env[k])
		}
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Refs lists the user's references of the set's Features, for messages.
func (s *Set) Refs() []string {
	out := make([]string, 0, len(s.Features))
	for _, f := range s.Features {
		out = append(out, f.Ref)
	}
	return out
}

// resolver is one Resolve call's state.
type resolver struct {
	opts Options
	cfg  *devcontainer.Config
	lock *lockFile
	set  *Set
	dir  string // the configuration's folder
}

// configErr is an error about a devcontainer.json entry, at its key (or
// at the option named, when it has a position), that also wraps kind.
func (r *resolver) configErr(ref *devcontainer.FeatureRef, option string, kind error, format string, args ...any) error {
	e := &devcontainer.ConfigError{File: r.cfg.File, Msg: fmt.Sprintf(format, args...)}
	if ref != nil {
		e.Field = fmt.Sprintf("features[%q]", ref.ID)
		e.Line, e.Column = ref.Line, ref.Column
		if pos, ok := ref.OptionPos[option]; ok {
			e.Field += "." + option
			e.Line, e.Column = pos[0], pos[1]
		}
	}
	return &entryError{e, kind}
}

// entryError is a ConfigError that also wraps one of the package's
// sentinels, without repeating it in the message.
type entryError struct {
	cfg  *devcontainer.ConfigError
	kind error
}

func (e *entryError) Error() string   { return e.cfg.Error() }
func (e *entryError) Unwrap() []error { return []error{e.cfg, e.kind} }

// envName is an option's environment variable, as the spec makes it:
// non-word characters become '_', leading digits and underscores one '_',
// and the rest upper case.
func envName(option string) string {
	var b strings.Builder
	for _, r := range option {
		if r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	trimmed := strings.TrimLeft(s, "0123456789_")
	if len(trimmed) != len(s) {
		s = "_" + trimmed
	}
	return strings.ToUpper(s)
}

// featureJSON is the part of devcontainer-feature.json that is not image
// metadata.
type featureJSON struct {
	ID            string                     `json:"id"`
	Version       string                     `json:"version"`
	Options       map[string]optionSpec      `json:"options"`
	InstallsAfter []string                   `json:"installsAfter"`
	DependsOn     map[string]json.RawMessage `json:"dependsOn"`
	LegacyIDs     []string                   `json:"legacyIds"`
}

type optionSpec struct {
	Type    string `json:"type"`
	Default any    `json:"default"`
	Enum    []any  `json:"enum"`
}

// options checks the user's option values against the Feature's and fills
// in defaults.
func (r *resolver) options(f *Feature) error {
	spec, err := readFeatureJSON(f.Dir)
	if err != nil {
		return r.configErr(f.ref, "", ErrBadFeature, "%s: %v", f.Ref, err)
	}
	f.Options, f.Env = map[string]string{}, map[string]string{}
	for id, o := range spec.Options {
		if o.Default != nil {
			f.Options[id] = scalar(o.Default)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(f.user)) {
		v := f.user[id]
		o, known := spec.Options[id]
		if !known {
			r.opts.Log.Warn("unknown Feature option passed on as is", "feature", f.Ref, "option", id)
		}
		s := scalar(v)
		switch {
		case known && o.Type == "boolean":
			if _, isBool := v.(bool); !isBool && s != "true" && s != "false" {
				return r.configErr(f.ref, id, ErrBadFeature, "option %q of %s is a boolean, got %q", id, f.Ref, s)
			}
		case known && o.Type == "string":
			if _, isBool := v.(bool); isBool {
				return r.configErr(f.ref, id, ErrBadFeature, "option %q of %s is a string, got the boolean %v", id, f.Ref, v)
			}
			if len(o.Enum) > 0 && !slices.ContainsFunc(o.Enum, func(e any) bool { return scalar(e) == s }) {
				allowed := make([]string, len(o.Enum))
				for i, e := range o.Enum {
					allowed[i] = scalar(e)
				}
				return r.configErr(f.ref, id, ErrBadFeature, "option %q of %s must be one of %s, got %q", id, f.Ref, strings.Join(allowed, ", "), s)
			}
		}
		f.Options[id] = s
	}
	for id, v := range f.Options {
		f.Env[envName(id)] = v
	}
	return nil
}

// scalar is an option value as install.sh sees it.
func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case bool:
		if t {
			return "true"
		}
		return "false"
	case float64:
		b, _ := json.Marshal(t)
		return string(b)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// readFeatureJSON reads dir's devcontainer-feature.json.
func readFeatureJSON(dir string) (*featureJSON, error) {
	data, err := os.ReadFile(filepath.Join(dir, "devcontainer-feature.json"))
	if err != nil {
		return nil, err
	}
	var fj featureJSON
	if err := json.Unmarshal(stripBOM(data), &fj); err != nil {
		return nil, fmt.Errorf("devcontainer-feature.json: %w", err)
	}
	if fj.ID == "" {
		return nil, errors.New("devcontainer-feature.json has no id")
	}
	for id, o := range fj.Options {
		switch o.Type {
		case "string", "boolean":
		default:
			return nil, fmt.Errorf("devcontainer-feature.json: option %q has type %q (want string or boolean)", id, o.Type)
		}
	}
	return &fj, nil
}

func stripBOM(b []byte) []byte { return []byte(strings.TrimPrefix(string(b), "\xef\xbb\xbf")) }

// load reads a fetched Feature's devcontainer-feature.json into f.
func load(f *Feature) error {
	fj, err := readFeatureJSON(f.Dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(f.Dir, "install.sh")); err != nil {
		return fmt.Errorf("no install.sh: %w", err)
	}
	data, _ := os.ReadFile(filepath.Join(f.Dir, "devcontainer-feature.json"))
	md, err := devcontainer.ParseMetadata(stripBOM(data), filepath.Join(f.Dir, "devcontainer-feature.json"))
	if err != nil {
		return err
	}
	f.ID, f.Version, f.installsAfter, f.legacyIDs = fj.ID, fj.Version, fj.InstallsAfter, fj.LegacyIDs
	f.Meta = md[0]
	f.dependsOn = nil
	for _, ref := range slices.Sorted(maps.Keys(fj.DependsOn)) {
		var opts map[string]any
		if raw := fj.DependsOn[ref]; len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &opts); err != nil {
				return fmt.Errorf("dependsOn %q: want an object of options: %w", ref, err)
			}
		}
		f.dependsOn = append(f.dependsOn, depRef{ref: ref, options: opts})
	}
	return nil
}

// sortedDeps is for tests and messages.
func sortedDeps(f *Feature) []string {
	out := make([]string, len(f.dependsOn))
	for i, d := range f.dependsOn {
		out[i] = d.ref
	}
	sort.Strings(out)
	return out
}

// Merged is cfg after its Features, as `berth config` reports it
// (mergedConfiguration): Resolve with opts, then devcontainer.Merge of
// image (the base image's entries, when the caller has read its label;
// nil otherwise) and the Features' metadata. With opts.Offline it never
// touches the network, and the Features it could not resolve are
// returned, not an error.
func Merged(ctx context.Context, cfg *devcontainer.Config, image []devcontainer.Metadata, opts Options) (*devcontainer.Config, []Unresolved, error) {
	set, err := Resolve(ctx, cfg, opts)
	if err != nil {
		return nil, nil, err
	}
	entries := append(slices.Clone(image), set.Metadata()...)
	return devcontainer.Merge(cfg, entries), set.Unresolved, nil
}
