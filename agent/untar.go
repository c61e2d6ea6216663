package agent

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
)

// ConflictSuffix names the container's copy of a file that changed in the
// container since berth last synced it, and that a host copy replaces.
const ConflictSuffix = ".berth-conflict"

// Untar extracts the tar stream r under dir, for sync mode: quicker than
// the engine's archive API, which starts a helper and mounts the
// container's filesystem for every copy (or, on Incus, makes one request
// per file). Files, directories and symlinks only, each replacing what has
// its name; owners are the agent's. Nothing leaves dir: the names go
// through an os.Root.
func Untar(dir string, r io.Reader) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = untar(root, r, nil)
	return err
}

// FileState is how sync states a regular file it expects to find: "f",
// the octal permission bits, then " SIZE MTIME" (Unix seconds), as
// `berth-agent scan` writes it.
func FileState(fi fs.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return ""
	}
	return "f" + strconv.FormatUint(uint64(fi.Mode().Perm()), 8) + " " + strconv.FormatInt(fi.Size(), 10) + " " + strconv.FormatInt(fi.ModTime().Unix(), 10)
}

// untar extracts r under root. expect holds, by cleaned name, the state
// berth last synced of a regular file: a file there in another state was
// changed inside since, and is renamed NAME.berth-conflict before the new
// copy replaces it. It returns the names so kept.
func untar(root *os.Root, r io.Reader, expect map[string]string) (conflicts []string, err error) {
	tr := tar.NewReader(r)
	// made holds the directories known to exist, so that a tree's files
	// cost no MkdirAll each; anything removed clears it.
	made := map[string]bool{}
	remove := func(name string, all bool) {
		clear(made)
		if all {
			root.RemoveAll(name)
		} else {
			root.Remove(name)
		}
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return conflicts, nil
		}
		if err != nil {
			return conflicts, err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		if dir := path.Dir(name); dir != "." && !made[dir] {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return conflicts, fmt.Errorf("%s: %w", name, err)
			}
			made[dir] = true
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		fi, lerr := root.Lstat(name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if lerr == nil && !fi.IsDir() {
				remove(name, false)
				lerr = fs.ErrNotExist
			}
			if lerr != nil {
				if err := root.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
					return conflicts, fmt.Errorf("%s: %w", name, err)
				}
			}
			if err := root.Chmod(name, mode); err != nil {
				return conflicts, fmt.Errorf("%s: %w", name, err)
			}
			made[name] = true
		case tar.TypeSymlink:
			if lerr == nil {
				remove(name, true)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return conflicts, fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeReg:
			if want, ok := expect[name]; ok && lerr == nil && fi.Mode().IsRegular() && FileState(fi) != want {
				// Changed inside since berth synced it: keep it aside.
				if err := root.Rename(name, name+ConflictSuffix); err == nil {
					conflicts = append(conflicts, name)
					lerr = fs.ErrNotExist
				}
			}
			if lerr == nil && !fi.Mode().IsRegular() {
				remove(name, true)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
			if err != nil {
				return conflicts, fmt.Errorf("%s: %w", name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = root.Chmod(name, mode)
			}
			if err == nil {
				err = root.Chtimes(name, hdr.ModTime, hdr.ModTime)
			}
			if err != nil {
				return conflicts, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}
