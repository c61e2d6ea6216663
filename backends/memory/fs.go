package memory

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"testing/fstest"
	"time"
)

// FS is an instance's filesystem: a map from absolute, cleaned paths to
// files, directories and symlinks (which are stored but never followed).
// Its methods take absolute container paths, are safe for concurrent use,
// and return *fs.PathError errors that wrap fs.ErrNotExist, fs.ErrExist
// and the like.
type FS struct {
	now func() time.Time

	mu    sync.Mutex // guards nodes
	nodes map[string]*node
}

type node struct {
	mode  fs.FileMode // type bits and permissions
	data  []byte      // a file's content, a symlink's target
	mtime time.Time
}

func newFS(now func() time.Time) *FS {
	return &FS{now: now, nodes: map[string]*node{"/": {mode: fs.ModeDir | 0o755, mtime: now()}}}
}

var errNotDir = errors.New("not a directory")
var errIsDir = errors.New("is a directory")
var errNotEmpty = errors.New("directory not empty")

// clean makes name absolute and cleaned, or reports that it is relative.
func clean(op, name string) (string, error) {
	if !strings.HasPrefix(name, "/") {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return path.Clean(name), nil
}

// parentLocked checks that p's parent is a directory.
func (f *FS) parentLocked(op, p string) error {
	dir := path.Dir(p)
	n := f.nodes[dir]
	if n == nil {
		return &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist}
	}
	if !n.mode.IsDir() {
		return &fs.PathError{Op: op, Path: p, Err: errNotDir}
	}
	return nil
}

// ReadFile returns the content of the regular file name.
func (f *FS) ReadFile(name string) ([]byte, error) {
	p, err := clean("open", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n.mode.IsDir():
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	return slices.Clone(n.data), nil
}

// WriteFile creates or replaces the file name; its directory must exist.
func (f *FS) WriteFile(name string, data []byte, perm fs.FileMode) error {
	return f.write("write", name, data, perm, false)
}

// appendFile appends data to name, creating it when missing.
func (f *FS) appendFile(name string, data []byte) error {
	return f.write("append", name, data, 0o644, true)
}

func (f *FS) write(op, name string, data []byte, perm fs.FileMode, appending bool) error {
	p, err := clean(op, name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.parentLocked(op, p); err != nil {
		return err
	}
	n := f.nodes[p]
	switch {
	case n != nil && n.mode.IsDir():
		return &fs.PathError{Op: op, Path: name, Err: errIsDir}
	case n != nil && appending:
		n.data = append(n.data, data...)
		n.mtime = f.now()
		return nil
	}
	f.nodes[p] = &node{mode: perm.Perm(), data: slices.Clone(data), mtime: f.now()}
	return nil
}

// Mkdir creates the directory name; its parent must exist.
func (f *FS) Mkdir(name string, perm fs.FileMode) error {
	p, err := clean("mkdir", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.parentLocked("mkdir", p); err != nil {
		return err
	}
	if f.nodes[p] != nil {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	f.nodes[p] = &node{mode: fs.ModeDir | perm.Perm(), mtime: f.now()}
	return nil
}

// MkdirAll creates the directory name and any missing parents.
func (f *FS) MkdirAll(name string, perm fs.FileMode) error {
	p, err := clean("mkdir", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mkdirAllLocked(p, perm)
}

func (f *FS) mkdirAllLocked(p string, perm fs.FileMode) error {
	if n := f.nodes[p]; n != nil {
		if !n.mode.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: p, Err: errNotDir}
		}
		return nil
	}
	if err := f.mkdirAllLocked(path.Dir(p), perm); err != nil {
		return err
	}
	f.nodes[p] = &node{mode: fs.ModeDir | perm.Perm(), mtime: f.now()}
	return nil
}

// Remove removes the file or empty directory name.
func (f *FS) Remove(name string) error {
	p, err := clean("remove", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.mode.IsDir() && len(f.childrenLocked(p)) > 0 || p == "/" {
		return &fs.PathError{Op: "remove", Path: name, Err: errNotEmpty}
	}
	delete(f.nodes, p)
	return nil
}

// RemoveAll removes name and everything under it; a missing name is not
// an error.
func (f *FS) RemoveAll(name string) error {
	p, err := clean("removeall", name)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for q := range f.nodes {
		if q != "/" && (q == p || under(q, p)) {
			delete(f.nodes, q)
		}
	}
	return nil
}

// under reports whether q is strictly below directory p.
func under(q, p string) bool {
	if p == "/" {
		return q != "/"
	}
	return strings.HasPrefix(q, p+"/")
}

// childrenLocked returns the paths directly in directory p, sorted.
func (f *FS) childrenLocked(p string) []string {
	var out []string
	for q := range f.nodes {
		if q != "/" && path.Dir(q) == p {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}

// Stat describes name without following a symlink.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	p, err := clean("stat", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return info(p, n), nil
}

// ReadDir lists directory name, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := clean("readdir", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[p]
	switch {
	case n == nil:
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	case !n.mode.IsDir():
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	var out []fs.DirEntry
	for _, q := range f.childrenLocked(p) {
		out = append(out, fs.FileInfoToDirEntry(info(q, f.nodes[q])))
	}
	return out, nil
}

// Snapshot copies the whole tree into an fstest.MapFS, keyed the io/fs way
// (no leading slash; the root itself is left out), for comparisons and
// fs.WalkDir.
func (f *FS) Snapshot() fstest.MapFS {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := fstest.MapFS{}
	for p, n := range f.nodes {
		if p != "/" {
			out[p[1:]] = &fstest.MapFile{Data: slices.Clone(n.data), Mode: n.mode, ModTime: n.mtime}
		}
	}
	return out
}

// isDir reports whether name is a directory.
func (f *FS) isDir(name string) bool {
	fi, err := f.Stat(name)
	return err == nil && fi.IsDir()
}

// fileInfo is a node's fs.FileInfo.
type fileInfo struct {
	name string
	n    node
}

func info(p string, n *node) fileInfo { return fileInfo{name: path.Base(p), n: *n} }

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return int64(len(i.n.data)) }
func (i fileInfo) Mode() fs.FileMode  { return i.n.mode }
func (i fileInfo) ModTime() time.Time { return i.n.mtime }
func (i fileInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

// extract writes a tar stream under dir, which must be a directory. It
// creates missing parents, replaces files, and refuses entries that climb
// out of dir. Each entry's data is read before the lock is taken, so a
// slow stream does not hold up the instance's commands.
func (f *FS) extract(ctx context.Context, dir string, r io.Reader) error {
	root, err := clean("extract", dir)
	if err != nil {
		return err
	}
	if !f.isDir(root) {
		return &fs.PathError{Op: "extract", Path: dir, Err: fs.ErrNotExist}
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return fmt.Errorf("tar entry %q is outside %s", hdr.Name, dir)
		}
		p := path.Join(root, rel)
		var data []byte
		if hdr.Typeflag == tar.TypeReg {
			if data, err = io.ReadAll(tr); err != nil {
				return fmt.Errorf("read tar entry %s: %w", hdr.Name, err)
			}
		}
		if err := f.put(hdr, p, root, data); err != nil {
			return err
		}
	}
}

// put applies one tar entry at p.
func (f *FS) put(hdr *tar.Header, p, root string, data []byte) error {
	perm := fs.FileMode(hdr.Mode).Perm()
	f.mu.Lock()
	defer f.mu.Unlock()
	mtime := hdr.ModTime
	if mtime.IsZero() {
		mtime = f.now()
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := f.mkdirAllLocked(p, perm); err != nil {
			return err
		}
		f.nodes[p].mode = fs.ModeDir | perm
		return nil
	case tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil // devices, fifos: nothing to model
	}
	if p == "/" {
		return &fs.PathError{Op: "extract", Path: p, Err: errIsDir}
	}
	if err := f.mkdirAllLocked(path.Dir(p), 0o755); err != nil {
		return err
	}
	if n := f.nodes[p]; n != nil && n.mode.IsDir() {
		return &fs.PathError{Op: "extract", Path: p, Err: errIsDir}
	}
	n := &node{mode: perm, data: data, mtime: mtime}
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		n.mode, n.data = fs.ModeSymlink|0o777, []byte(hdr.Linkname)
	case tar.TypeLink:
		target := f.nodes[path.Join(root, path.Clean(strings.TrimPrefix(hdr.Linkname, "/")))]
		if target == nil || target.mode.IsDir() {
			return &fs.PathError{Op: "link", Path: hdr.Linkname, Err: fs.ErrNotExist}
		}
		n.mode, n.data = target.mode, slices.Clone(target.data)
	}
	f.nodes[p] = n
	return nil
}

// archive returns a tar of the file or directory at name: the entry for
// name is its base name, and a directory's entries follow under it.
func (f *FS) archive(name string) (io.ReadCloser, error) {
	p, err := clean("archive", name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	top := f.nodes[p]
	if top == nil {
		return nil, &fs.PathError{Op: "archive", Path: name, Err: fs.ErrNotExist}
	}
	paths := []string{p}
	if top.mode.IsDir() {
		for q := range f.nodes {
			if under(q, p) {
				paths = append(paths, q)
			}
		}
		slices.Sort(paths[1:])
	}
	base := path.Base(p)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, q := range paths {
		n := f.nodes[q]
		entry := base
		if q != p {
			entry = path.Join(base, strings.TrimPrefix(q, strings.TrimSuffix(p, "/")+"/"))
		}
		if p == "/" {
			if q == p {
				continue // the root has no name of its own
			}
			entry = q[1:]
		}
		hdr := &tar.Header{Name: entry, Mode: int64(n.mode.Perm()), ModTime: n.mtime, Format: tar.FormatPAX}
		switch {
		case n.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, entry+"/"
		case n.mode&fs.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(n.data)
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(n.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(n.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}
