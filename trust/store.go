package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// FileName is the store's file in berth's config directory.
const FileName = "trust.json"

// keep bounds the configurations remembered per workspace: switching
// branches back and forth shouldn't ask each time, and the file shouldn't
// grow without end.
const keep = 16

// Store keeps trust decisions in one JSON file, written atomically and
// under a lock file, so that several berth processes share it safely.
// Only "trust" is kept: a decline is the user's answer for the moment and
// asks again next time.
type Store struct {
	path string
}

// record is one trusted configuration of a workspace.
type record struct {
	Hash      string    `json:"hash"`
	TrustedAt time.Time `json:"trustedAt"`
}

// file is the store's content.
type file struct {
	Version    int                 `json:"version"`
	Workspaces map[string][]record `json:"workspaces"` // by resolved host path; newest last
}

const fileVersion = 1

// DefaultPath is the store of the user who runs berth:
// os.UserConfigDir()/berth/trust.json.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("trust: no config directory for the trust store: %w", err)
	}
	return filepath.Join(dir, "berth", FileName), nil
}

// NewStore returns the store kept in the file at path; the file and its
// directory are made on the first decision.
func NewStore(path string) *Store { return &Store{path: path} }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// Trusted reports whether the user trusted the configuration of hash for
// the workspace ws.
func (s *Store) Trusted(ws, hash string) (bool, error) {
	f, err := s.read()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(f.Workspaces[ws], func(r record) bool { return r.Hash == hash }), nil
}

// Trust records that the user trusts the configuration of hash for the
// workspace ws.
func (s *Store) Trust(ws, hash string) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return fmt.Errorf("trust: lock %s: %w", s.path, err)
	}
	defer unlock()
	f, err := s.read()
	if err != nil {
		return err
	}
	recs := slices.DeleteFunc(f.Workspaces[ws], func(r record) bool { return r.Hash == hash })
	recs = append(recs, record{Hash: hash, TrustedAt: time.Now().UTC().Truncate(time.Second)})
	if len(recs) > keep {
		recs = recs[len(recs)-keep:]
	}
	f.Workspaces[ws] = recs
	return s.write(f)
}

// read loads the file; a missing file is an empty store. A file that
// others may write is refused: its records could be anyone's.
func (s *Store) read() (file, error) {
	f := file{Version: fileVersion, Workspaces: map[string][]record{}}
	fh, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("trust: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return f, fmt.Errorf("trust: %w", err)
	}
	if err := private(fi); err != nil {
		return f, fmt.Errorf("trust: %s: %w; fix its owner and mode (0600) or delete it", s.path, err)
	}
	if err := json.NewDecoder(fh).Decode(&f); err != nil {
		return f, fmt.Errorf("trust: %s is damaged (%v); delete it to start over", s.path, err)
	}
	if f.Version != fileVersion {
		return f, fmt.Errorf("trust: %s has version %d; this berth reads version %d", s.path, f.Version, fileVersion)
	}
	if f.Workspaces == nil {
		f.Workspaces = map[string][]record{}
	}
	return f, nil
}

// write replaces the file atomically: readers see the old file or the new
// one, never a part.
func (s *Store) write(f file) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), "."+FileName+".*")
	if err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("trust: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("trust: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("trust: %w", err)
	}
	return nil
}
