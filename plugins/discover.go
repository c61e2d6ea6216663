package plugins

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/berthdev/berth/backends"
)

// Container is what plugins need of a running instance.
type Container interface {
	// CopyFrom reads a file or directory out of the instance as a tar
	// stream, as backends.Backend.CopyFrom does; a missing path is an error
	// wrapping backends.ErrNotFound.
	CopyFrom(ctx context.Context, path string) (io.ReadCloser, error)
	// Exec starts a process in the instance as the workspace's user, in
	// the workspace folder. ctx bounds only the start.
	Exec(ctx context.Context, spec backends.ExecSpec) (backends.Process, error)
}

// Set is what an instance's plugin files declare.
type Set struct {
	Plugins []Plugin // by file order, then name; a name appears once
	Errors  []error  // *FileError each: the files or plugins that were skipped
}

// Lookup finds a plugin by name.
func (s Set) Lookup(name string) (Plugin, bool) {
	for _, p := range s.Plugins {
		if p.Name == name {
			return p, true
		}
	}
	return Plugin{}, false
}

// maxFile bounds one plugin file: a declaration is a few lines.
const maxFile = 1 << 20

// Discover reads the instance's plugin files. Only a failure to reach the
// instance is an error; a bad or unreadable file is reported in Set.Errors
// and the other files still count.
func Discover(ctx context.Context, c Container) (Set, error) {
	var set Set
	add := func(file string, data []byte) {
		ps, errs := Parse(file, data)
		set.Errors = append(set.Errors, errs...)
		for _, p := range ps {
			if prev, dup := set.Lookup(p.Name); dup {
				set.Errors = append(set.Errors, &FileError{File: file, Line: headerLine(data, p.Name), Col: 1,
					Msg: fmt.Sprintf("plugin %q: already declared in %s; this one is ignored", p.Name, prev.Source)})
				continue
			}
			set.Plugins = append(set.Plugins, p)
		}
	}
	for _, root := range []string{CoreXFile, Dir} {
		files, err := readTree(ctx, c, root)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil && (ctx.Err() != nil || errors.Is(err, backends.ErrUnavailable) || errors.Is(err, backends.ErrNotRunning)) {
			return Set{}, fmt.Errorf("plugins: read %s: %w", root, err)
		}
		if err != nil {
			// Unreadable (permissions, a broken archive): the other root
			// may still declare plugins.
			set.Errors = append(set.Errors, &FileError{File: root, Msg: "unreadable: " + err.Error()})
			continue
		}
		for _, f := range files {
			if f.err != nil {
				set.Errors = append(set.Errors, &FileError{File: f.name, Msg: f.err.Error()})
				continue
			}
			add(f.name, f.data)
		}
	}
	return set, nil
}

type file struct {
	name string // container path
	data []byte
	err  error
}

// readTree reads root, a file or a directory, and returns the file itself or
// the directory's *.toml files, sorted by name. Subdirectories are not read.
func readTree(ctx context.Context, c Container, root string) ([]file, error) {
	rc, err := c.CopyFrom(ctx, root)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []file
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		// The archive names root by its base name: a file is "x.toml", a
		// directory "plugins.d/" and "plugins.d/x.toml".
		name := strings.TrimPrefix(path.Clean(hdr.Name), "./")
		var full string
		if dir, base, ok := strings.Cut(name, "/"); ok {
			if strings.Contains(base, "/") || dir != path.Base(root) || !strings.HasSuffix(base, ".toml") {
				continue
			}
			full = path.Join(root, base)
		} else if name == path.Base(root) {
			full = root
		} else {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			if hdr.Typeflag != tar.TypeDir {
				out = append(out, file{name: full, err: errors.New("not a regular file (a symbolic link is not followed)")})
			}
			continue
		}
		if hdr.Size > maxFile {
			out = append(out, file{name: full, err: fmt.Errorf("too large: %d bytes, at most %d", hdr.Size, maxFile)})
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, file{name: full, data: data})
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return out, nil
}
