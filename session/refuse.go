package session

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrRefusedPath means berth refuses a host path as a workspace, or as a
// bind-mount source of an untrusted workspace: the filesystem root, a
// system directory, the user's home directory itself, or a directory that
// another user owns.
var ErrRefusedPath = errors.New("refused host path")

// Host directories berth never takes as a workspace: these themselves,
// and everything under the second list.
var (
	refusedDirs  = []string{"/", "/etc", "/usr", "/var", "/boot", "/proc", "/sys", "/dev", "/run"}
	refusedTrees = []string{"/etc", "/proc", "/sys", "/dev", "/boot"}
)

// hostPolicy is what the rules compare a path with: the home directory
// and the uid of the user who runs berth.
type hostPolicy struct {
	home string // resolved; "" when unknown
	uid  int    // -1: don't check owners (no such notion on this host)
}

// currentPolicy is the policy of this process.
func currentPolicy() hostPolicy {
	p := hostPolicy{uid: processUID()}
	if h, err := os.UserHomeDir(); err == nil && filepath.IsAbs(h) {
		p.home = resolved(h)
	}
	return p
}

// resolved resolves a path's symlinks as far as it exists, keeping the
// rest: on macOS /etc is /private/etc, and a link to /etc is /etc.
func resolved(p string) string {
	return realHostPath(filepath.Clean(p))
}

// why says why the policy refuses the resolved host path p, or "" when it
// doesn't. owner is p's owner, or -1 when p doesn't exist or has none.
func (hp hostPolicy) why(p string, owner int) string {
	p = filepath.Clean(p)
	for _, d := range refusedDirs {
		if p == d || p == resolved(d) {
			if d == "/" {
				return "it is the filesystem root"
			}
			return "it is the system directory " + d
		}
	}
	for _, d := range refusedTrees {
		for _, root := range []string{d, resolved(d)} {
			if strings.HasPrefix(p, root+string(filepath.Separator)) {
				return "it is inside the system directory " + d
			}
		}
	}
	if hp.home != "" && p == hp.home {
		return "it is your home directory itself; open a project folder inside it instead"
	}
	if hp.uid >= 0 && owner >= 0 && owner != hp.uid {
		return fmt.Sprintf("it is owned by uid %d, not by uid %d, which runs berth", owner, hp.uid)
	}
	return ""
}

// checkHostPath returns an error wrapping ErrRefusedPath when the policy
// refuses the host path p (resolved first) as a what ("workspace",
// "mounts[0] source"). A path that doesn't exist passes: whoever needs it
// reports that.
func (hp hostPolicy) checkHostPath(what, p string) error {
	real := resolved(p)
	owner := -1
	if fi, err := os.Stat(real); err == nil {
		owner = fileOwner(fi)
	}
	if why := hp.why(real, owner); why != "" {
		if real != filepath.Clean(p) {
			return fmt.Errorf("%w: %s %s (%s): %s", ErrRefusedPath, what, p, real, why)
		}
		return fmt.Errorf("%w: %s %s: %s", ErrRefusedPath, what, p, why)
	}
	return nil
}

// CheckHostPath returns an error wrapping ErrRefusedPath when berth refuses
// the host path p as a workspace or as an untrusted bind-mount source. what
// names p in the message.
func CheckHostPath(what, p string) error {
	return currentPolicy().checkHostPath(what, p)
}
