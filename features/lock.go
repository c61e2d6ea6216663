package features

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// LockPath is the lock file of the configuration file cfgFile:
// devcontainer-lock.json beside it, or .devcontainer-lock.json beside a
// .devcontainer.json, as the devcontainer CLI names it.
func LockPath(cfgFile string) string {
	name := "devcontainer-lock.json"
	if strings.HasPrefix(filepath.Base(cfgFile), ".") {
		name = ".devcontainer-lock.json"
	}
	return filepath.Join(filepath.Dir(cfgFile), name)
}

// lockFile is devcontainer-lock.json.
type lockFile struct {
	Features map[string]lockEntry `json:"features"`
}

// lockEntry pins one Feature reference.
type lockEntry struct {
	Version   string   `json:"version"`
	Resolved  string   `json:"resolved"`
	Integrity string   `json:"integrity"`
	DependsOn []string `json:"dependsOn,omitempty"`
}

// entry returns the pin of ref; a nil lock has none.
func (l *lockFile) entry(ref string) (lockEntry, bool) {
	if l == nil {
		return lockEntry{}, false
	}
	e, ok := l.Features[ref]
	return e, ok
}

// readLock reads the lock file; a missing one is nil.
func readLock(p string) (*lockFile, error) {
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	var l lockFile
	if err := json.Unmarshal(stripBOM(data), &l); err != nil {
		return nil, fmt.Errorf("features: %s: %w (%w)", p, err, ErrBadFeature)
	}
	return &l, nil
}

// writeLock writes the pins of the fetched Features (local ones have
// none); false when there is nothing to pin.
func writeLock(p string, fs []*Feature) (bool, error) {
	l := lockFile{Features: map[string]lockEntry{}}
	for _, f := range fs {
		if f.Kind == KindLocal {
			continue
		}
		l.Features[f.Ref] = lockEntry{Version: f.Version, Resolved: f.Resolved, Integrity: f.Integrity, DependsOn: sortedDeps(f)}
	}
	if len(l.Features) == 0 {
		return false, nil
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return false, err
	}
	return true, writeAtomic(p, append(data, '\n'))
}
