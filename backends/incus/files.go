package incus

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/internal/sftp"
)

// Files move over Incus's SFTP endpoint, which offers what the plain file
// API lacks: rename, hard links and ownership changes. It works on stopped
// instances too.

// CopyTo implements backends.Backend.
func (b *Backend) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return err
	}
	return b.extractInto(ctx, in.Name, dir, r)
}

func (b *Backend) extractInto(ctx context.Context, name, dir string, r io.Reader) error {
	c, done, err := b.sftp(ctx, name)
	if err != nil {
		return err
	}
	defer done()
	if err := extract(sftpFS{c}, dir, r); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("incus: copy to %s:%s: %w", name, dir, err)
	}
	return nil
}

// CopyFrom implements backends.Backend. The stream is read from the
// instance as it is consumed; ctx cancels it, as it would a Docker copy.
func (b *Backend) CopyFrom(ctx context.Context, id, p string) (io.ReadCloser, error) {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return nil, err
	}
	c, done, err := b.sftp(ctx, in.Name)
	if err != nil {
		return nil, err
	}
	fi, err := c.Lstat(p)
	if err != nil {
		done()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("incus: copy from %s:%s: no such file or directory: %w", in.Name, p, backends.ErrNotFound)
		}
		return nil, fmt.Errorf("incus: copy from %s:%s: %w", in.Name, p, err)
	}
	pr, pw := io.Pipe()
	t := &tarStream{pr: pr, done: make(chan struct{}), release: done}
	go func() {
		defer close(t.done)
		pw.CloseWithError(archive(sftpFS{c}, p, fi, pw))
	}()
	return t, nil
}

// tarStream is CopyFrom's reader. Goroutine: the archiver writes the tar
// into the pipe until done or the reader is closed; Close waits for it.
type tarStream struct {
	pr      *io.PipeReader
	done    chan struct{} // closed when the archiver returned
	release func()        // closes the SFTP session
	once    sync.Once
}

func (t *tarStream) Read(p []byte) (int, error) { return t.pr.Read(p) }

func (t *tarStream) Close() error {
	t.once.Do(func() {
		_ = t.pr.Close()
		<-t.done
		t.release()
	})
	return nil
}

// sftp opens an SFTP session to the instance. ctx ending closes it. done
// closes it and waits for the client's goroutine.
func (b *Backend) sftp(ctx context.Context, name string) (c *sftp.Client, done func(), err error) {
	// incusd forks an SFTP server per connection; under load one can die
	// during the handshake. Such a failure is transient: try again.
	for attempt := 0; ; attempt++ {
		c, done, err = b.sftpOnce(ctx, name)
		if err == nil || attempt == 2 || ctx.Err() != nil || errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrUnavailable) {
			return c, done, err
		}
		b.log.Debug("sftp handshake failed; retrying", "instance", name, "err", err)
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
}

func (b *Backend) sftpOnce(ctx context.Context, name string) (c *sftp.Client, done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	conn, err := b.c.SFTP(ctx, name)
	if err != nil {
		return nil, nil, b.mapErr("sftp to "+name, err, backends.ErrNotFound)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, err = sftp.NewClient(conn)
	if err != nil {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, fmt.Errorf("incus: sftp to %s: %w", name, err)
	}
	return c, func() {
		stop()
		_ = c.Close() // closes conn and waits for the client's reader
	}, nil
}

// fileSystem is what extract and archive need of the instance's files.
type fileSystem interface {
	Stat(p string) (fs.FileInfo, error)
	Lstat(p string) (fs.FileInfo, error)
	ReadDir(p string) ([]fs.FileInfo, error)
	ReadLink(p string) (string, error)
	Open(p string) (io.ReadCloser, error)
	MkdirAll(p string) error
	// CreateExcl creates a new file, failing if p exists.
	CreateExcl(p string) (io.WriteCloser, error)
	Chmod(p string, mode fs.FileMode) error
	Chown(p string, uid, gid int) error
	Chtimes(p string, atime, mtime time.Time) error
	Symlink(target, link string) error
	Link(oldname, newname string) error
	// Rename moves oldname over newname atomically.
	Rename(oldname, newname string) error
	Remove(p string) error
}

type sftpFS struct{ c *sftp.Client }

func (s sftpFS) Stat(p string) (fs.FileInfo, error)          { return s.c.Stat(p) }
func (s sftpFS) Lstat(p string) (fs.FileInfo, error)         { return s.c.Lstat(p) }
func (s sftpFS) ReadDir(p string) ([]fs.FileInfo, error)     { return s.c.ReadDir(p) }
func (s sftpFS) ReadLink(p string) (string, error)           { return s.c.ReadLink(p) }
func (s sftpFS) Open(p string) (io.ReadCloser, error)        { return s.c.Open(p) }
func (s sftpFS) MkdirAll(p string) error                     { return s.c.MkdirAll(p) }
func (s sftpFS) CreateExcl(p string) (io.WriteCloser, error) { return s.c.CreateExcl(p) }
func (s sftpFS) Chmod(p string, m fs.FileMode) error         { return s.c.Chmod(p, m) }
func (s sftpFS) Chown(p string, uid, gid int) error          { return s.c.Chown(p, uid, gid) }
func (s sftpFS) Chtimes(p string, a, m time.Time) error      { return s.c.Chtimes(p, a, m) }
func (s sftpFS) Symlink(target, link string) error           { return s.c.Symlink(target, link) }
func (s sftpFS) Link(oldname, newname string) error          { return s.c.Link(oldname, newname) }
func (s sftpFS) Rename(oldname, newname string) error        { return s.c.PosixRename(oldname, newname) }
func (s sftpFS) Remove(p string) error                       { return s.c.Remove(p) }

func ownerOf(fi fs.FileInfo) (uid, gid int, ok bool) {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return int(st.UID), int(st.GID), true
	}
	return 0, 0, false
}

// entryPath places a tar entry under dir. Leading slashes and ".." cannot
// climb out of dir: the name is cleaned as if rooted at dir.
func entryPath(dir, name string) string {
	return path.Join(dir, path.Clean("/"+name))
}

// extract writes the tar stream r into dir, which must exist. Files and
// links are written under a temporary name and renamed into place, which
// also replaces an executable that is running (writing over it in place
// fails with "text file busy"). Owners and modes come from the headers.
func extract(fsys fileSystem, dir string, r io.Reader) error {
	if fi, err := fsys.Stat(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no such directory: %w", backends.ErrNotFound)
		}
		return err
	} else if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	made := map[string]bool{dir: true}
	mkdirs := func(p string) error {
		if made[p] {
			return nil
		}
		if err := fsys.MkdirAll(p); err != nil {
			return err
		}
		made[p] = true
		return nil
	}
	// Directory times go last: creating entries inside changes them.
	type dirTime struct {
		path         string
		atime, mtime time.Time
	}
	var dirTimes []dirTime
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			for i := len(dirTimes) - 1; i >= 0; i-- {
				d := dirTimes[i]
				if err := fsys.Chtimes(d.path, d.atime, d.mtime); err != nil {
					return fmt.Errorf("%s: %w", d.path, err)
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		target := entryPath(dir, hdr.Name)
		if hdr.Typeflag == tar.TypeXGlobalHeader || target == dir {
			continue // metadata, or the "./" entry: dir itself is left as is
		}
		if err := mkdirs(path.Dir(target)); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = mkdirs(target)
			if err == nil {
				err = setOwnerMode(fsys, target, hdr, mode)
			}
			if !hdr.ModTime.IsZero() {
				dirTimes = append(dirTimes, dirTime{target, accessTime(hdr), hdr.ModTime})
			}
		case tar.TypeReg:
			err = replace(fsys, target, func(tmp string) error {
				w, err := fsys.CreateExcl(tmp)
				if err != nil {
					return err
				}
				_, err = io.Copy(w, tr)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
				if err == nil {
					err = setOwnerMode(fsys, tmp, hdr, mode)
				}
				if err == nil && !hdr.ModTime.IsZero() {
					err = fsys.Chtimes(tmp, accessTime(hdr), hdr.ModTime)
				}
				return err
			})
		case tar.TypeSymlink:
			err = replace(fsys, target, func(tmp string) error { return fsys.Symlink(hdr.Linkname, tmp) })
		case tar.TypeLink:
			old := entryPath(dir, hdr.Linkname)
			err = replace(fsys, target, func(tmp string) error { return fsys.Link(old, tmp) })
		default:
			err = fmt.Errorf("entry type %q: %w", hdr.Typeflag, backends.ErrNotSupported)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

// replace makes a new entry at a temporary name beside target with create,
// then renames it over target.
func replace(fsys fileSystem, target string, create func(tmp string) error) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(path.Dir(target), ".berth-"+hex.EncodeToString(rnd[:])+"-"+path.Base(target))
	if err := create(tmp); err != nil {
		_ = fsys.Remove(tmp)
		return err
	}
	if err := fsys.Rename(tmp, target); err != nil {
		_ = fsys.Remove(tmp)
		return err
	}
	return nil
}

func setOwnerMode(fsys fileSystem, p string, hdr *tar.Header, mode fs.FileMode) error {
	if err := fsys.Chown(p, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	return fsys.Chmod(p, mode) // after chown, which clears setuid bits
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// archive writes p (whose Lstat is fi) as a tar stream named by its base
// name, as `docker cp` does: a file becomes one entry, a directory its
// tree. Devices, fifos and sockets are left out.
func archive(fsys fileSystem, p string, fi fs.FileInfo, w io.Writer) error {
	tw := tar.NewWriter(w)
	name := path.Base(path.Clean(p))
	if name == "/" {
		name = "."
	}
	if err := archiveEntry(fsys, tw, p, name, fi); err != nil {
		return err
	}
	return tw.Close()
}

func archiveEntry(fsys fileSystem, tw *tar.Writer, p, name string, fi fs.FileInfo) error {
	link := ""
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		var err error
		if link, err = fsys.ReadLink(p); err != nil {
			return err
		}
	case fi.IsDir(), fi.Mode().IsRegular():
	default:
		return nil
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	if uid, gid, ok := ownerOf(fi); ok {
		hdr.Uid, hdr.Gid = uid, gid
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	switch {
	case fi.Mode().IsRegular():
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// The header promised fi.Size() bytes; a file that changes while
		// being read must not break the stream.
		n, err := io.Copy(tw, io.LimitReader(f, fi.Size()))
		if err != nil {
			return err
		}
		if n < fi.Size() {
			return fmt.Errorf("%s: shrank while being read", p)
		}
	case fi.IsDir():
		kids, err := fsys.ReadDir(p)
		if err != nil {
			return err
		}
		sort.Slice(kids, func(i, j int) bool { return kids[i].Name() < kids[j].Name() })
		for _, k := range kids {
			if err := archiveEntry(fsys, tw, path.Join(p, k.Name()), path.Join(name, k.Name()), k); err != nil {
				return err
			}
		}
	}
	return nil
}
