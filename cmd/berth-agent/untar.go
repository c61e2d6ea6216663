package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// untar extracts the tar stream r under dir, for sync mode: quicker than
// the engine's archive API, which starts a helper and mounts the
// container's filesystem for every copy. Files, directories and symlinks
// only, each replacing what has its name; owners are the agent's. Nothing
// leaves dir: the names go through an os.Root.
func untar(dir string, r io.Reader) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			continue
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		fi, lerr := root.Lstat(name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if lerr == nil && !fi.IsDir() {
				root.Remove(name)
				lerr = fs.ErrNotExist
			}
			if lerr != nil {
				if err := root.Mkdir(name, mode); err != nil && !errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			if err := root.Chmod(name, mode); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeSymlink:
			if lerr == nil {
				root.RemoveAll(name)
			}
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		case tar.TypeReg:
			if lerr == nil && !fi.Mode().IsRegular() {
				root.RemoveAll(name)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
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
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
}
