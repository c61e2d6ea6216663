package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// Source says where berth found an agent build.
type Source string

// The places an agent build comes from, in the order berth looks.
const (
	SourceEnv      Source = "env"      // the file $BERTH_AGENT names
	SourceBeside   Source = "beside"   // a berth-agent file beside the berth executable
	SourceEmbedded Source = "embedded" // carried in berth itself
	SourceInstance Source = "instance" // running in the instance, left there by another berth build
)

// Platform is the build's GOOS/GOARCH, such as "linux/amd64".
func (b *Binary) Platform() string { return b.GOOS + "/" + b.GOARCH }

// Lazy returns a build whose bytes come from load, called once, on first
// use, so that carrying a build costs nothing until an instance needs it.
// The bytes must hash to hash.
func Lazy(goos, goarch, hash string, src Source, load func() ([]byte, error)) *Binary {
	once := sync.OnceValues(func() ([]byte, error) {
		data, err := load()
		if err != nil {
			return nil, err
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hash {
			return nil, fmt.Errorf("agent: the %s/%s build is corrupt: sha256 %x, want %s", goos, goarch, sum, hash)
		}
		return data, nil
	})
	return &Binary{Hash: hash, GOOS: goos, GOARCH: goarch, Source: src, load: once}
}

// Set is the agent builds berth can put into instances, by platform
// ("linux/amd64").
type Set map[string]*Binary

// SetOf returns a set of bins; a later build replaces an earlier one of
// its platform.
func SetOf(bins ...*Binary) Set {
	s := Set{}
	for _, b := range bins {
		s[b.Platform()] = b
	}
	return s
}

// Platforms returns the set's platforms, sorted.
func (s Set) Platforms() []string {
	return slices.Sorted(maps.Keys(s))
}

// ErrNoBuild means berth has no agent build for an instance's platform.
var ErrNoBuild = errors.New("no agent build for this platform")

// For returns the build for platform, such as "linux/arm64".
func (s Set) For(platform string) (*Binary, error) {
	if b := s[platform]; b != nil {
		return b, nil
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("%w: the container is %s and berth has no agent builds", ErrNoBuild, platform)
	}
	return nil, fmt.Errorf("%w: the container is %s but berth has agents for %s only", ErrNoBuild, platform, strings.Join(s.Platforms(), ", "))
}

// EnvBinary names the environment variable that points at the agent.
const EnvBinary = "BERTH_AGENT"

// Locate returns the agent builds berth installs: builtin (those berth
// carries), where $BERTH_AGENT, or else a berth-agent file beside the
// running executable, replaces the build of its platform. A $BERTH_AGENT
// that is not a static Linux executable is an error; such a file beside
// berth is passed over, with a warning on log, since a plain
// `go install ./cmd/...` puts a host build of the agent there.
func Locate(builtin Set, log *slog.Logger) (Set, error) {
	set := maps.Clone(builtin)
	if set == nil {
		set = Set{}
	}
	if p := os.Getenv(EnvBinary); p != "" {
		b, err := Open(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvBinary, err)
		}
		b.Source = SourceEnv
		set[b.Platform()] = b
		return set, nil
	}
	p, err := besidePath()
	if err != nil {
		return nil, err
	}
	b, err := Open(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		log.Warn("not using the berth-agent beside berth", "path", p, "err", err)
	default:
		b.Source = SourceBeside
		set[b.Platform()] = b
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("agent: this berth carries no agent, and there is none at %s (build it with `make build`, or set %s)", p, EnvBinary)
	}
	return set, nil
}

// executable is os.Executable; tests replace it.
var executable = os.Executable

// besidePath is where a berth-agent beside the running executable lives.
func besidePath() (string, error) {
	exe, err := executable()
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Join(filepath.Dir(exe), "berth-agent"), nil
}

// Builds returns the set's builds, sorted by platform.
func (s Set) Builds() []*Binary {
	out := make([]*Binary, 0, len(s))
	for _, p := range s.Platforms() {
		out = append(out, s[p])
	}
	return out
}
