package devcontainer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Config files and build inputs may live anywhere on the host (an explicit
// --config, or a build context of ".." that leaves the workspace), so the
// file system seen by discover is rooted at the host's root: an absolute host
// path becomes an fs.FS name by dropping its leading slash ("/ws/x" is
// "ws/x", and on Windows `C:\ws\x` is "C:/ws/x"). Tests use fstest.MapFS with
// the same names.

// toFSPath names the absolute host path p in a root-based fs.FS.
func toFSPath(p string) string {
	return strings.TrimPrefix(filepath.ToSlash(p), "/")
}

// osFS is the host's file system in toFSPath names.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) {
	p := filepath.FromSlash(name)
	if filepath.VolumeName(p) == "" {
		p = string(filepath.Separator) + p
	}
	return os.Open(p)
}

// readIfExists reads the regular file at the absolute host path p. A missing
// file or a directory is reported as not found rather than as an error, and
// so is a path under a regular file (ENOTDIR: a file named .devcontainer).
func readIfExists(fsys fs.FS, p string) (data []byte, found bool, err error) {
	name := toFSPath(p)
	fi, err := fs.Stat(fsys, name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && fi.IsDir()) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("devcontainer: %w", err)
	}
	data, err = fs.ReadFile(fsys, name)
	if err != nil {
		return nil, false, fmt.Errorf("devcontainer: %w", err)
	}
	return data, true, nil
}
