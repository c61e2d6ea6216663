package lsp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/pathmap"
)

// maxMirrored bounds one mirrored file: bigger ones stay container URIs.
const maxMirrored = 64 << 20

// fetchers is how many files the mirror copies at once.
const fetchers = 4

// mirrorTimeout bounds one round of stats and copies.
const mirrorTimeout = 30 * time.Second

// ExecFunc starts a process in the container. ctx bounds the start only.
type ExecFunc func(ctx context.Context, spec backends.ExecSpec) (backends.Process, error)

// A Mirror is a read-only copy, on the host, of the container files a
// language server pointed the editor at (the standard library,
// site-packages, GOROOT, /usr/include): container path P is the host file
// Root+P. It is filled lazily, one file at a time, through the agent, and
// each file is checked again (size and mtime) whenever a message names it,
// so that a `pip install` in the container shows. A mirror file carries
// the container file's size and mtime, which is how it is checked.
//
// Ensure may be called from several goroutines; it serialises them.
type Mirror struct {
	root string
	m    *pathmap.Mapper // root <-> /
	exec ExecFunc
	log  *slog.Logger

	mu sync.Mutex // serialises Ensure
}

// MirrorDir is where the mirror of an instance lives under cacheDir: one
// directory per instance name, and below it one per instance id and image,
// so that a new container or image starts afresh.
func MirrorDir(cacheDir, instance, id, image string) string {
	sum := sha256.Sum256([]byte(id + "\x00" + image))
	return filepath.Join(cacheDir, safeName(instance), hex.EncodeToString(sum[:8]))
}

// NewMirror returns the mirror rooted at dir (see MirrorDir), removing
// the mirrors of the instance's earlier containers and images beside it.
func NewMirror(dir string, exec ExecFunc, log *slog.Logger) (*Mirror, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lsp: mirror: %w", err)
	}
	if old, err := os.ReadDir(filepath.Dir(dir)); err == nil {
		for _, e := range old {
			if e.Name() != filepath.Base(dir) {
				_ = removeTree(filepath.Join(filepath.Dir(dir), e.Name()))
			}
		}
	}
	m, err := pathmap.New(pathmap.HostFlavor(), []pathmap.Mount{{Host: dir, Container: "/"}})
	if err != nil {
		return nil, err
	}
	return &Mirror{root: dir, m: m, exec: exec, log: log}, nil
}

// Root is the mirror's host directory.
func (mr *Mirror) Root() string { return mr.root }

// removeTree removes a mirror, whose read-only files need their
// directories writable, which they are.
func removeTree(dir string) error { return os.RemoveAll(dir) }

// stamp is what a mirror file is checked by.
type stamp struct {
	size  int64
	mtime int64 // seconds
}

// Ensure brings the mirror copies of the container files paths up to
// date and reports which of them the mirror now holds: regular files no
// bigger than maxMirrored that the server's user can read.
func (mr *Mirror) Ensure(ctx context.Context, paths []string) map[string]bool {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, mirrorTimeout)
	defer cancel()
	seen := map[string]bool{}
	var uniq []string
	for _, p := range paths {
		if !seen[p] && strings.HasPrefix(p, "/") && !strings.ContainsAny(p, "\n\x00") {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	have := map[string]bool{}
	if len(uniq) == 0 {
		return have
	}
	stamps, err := mr.stat(ctx, uniq)
	if err != nil {
		mr.log.Warn("lsp: mirror: stat in the container failed", "err", err)
		return have
	}
	var fetch []string
	for _, p := range uniq {
		st, ok := stamps[p]
		if !ok || st.size > maxMirrored {
			continue
		}
		if fi, err := os.Stat(mr.hostPath(p)); err == nil && fi.Mode().IsRegular() && fi.Size() == st.size && fi.ModTime().Unix() == st.mtime {
			have[p] = true
			continue
		}
		fetch = append(fetch, p)
	}
	// A result can name many files (references into a library): copy a
	// few at a time. Ensure waits for every copier.
	var (
		wg  sync.WaitGroup
		hmu sync.Mutex // guards have
		sem = make(chan struct{}, fetchers)
	)
	for _, p := range fetch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := mr.fetch(ctx, p, mr.hostPath(p), stamps[p]); err != nil {
				mr.log.Warn("lsp: mirror: copy failed", "path", p, "err", err)
				return
			}
			hmu.Lock()
			have[p] = true
			hmu.Unlock()
		}()
	}
	wg.Wait()
	return have
}

func (mr *Mirror) hostPath(p string) string {
	return filepath.Join(mr.root, filepath.FromSlash(path.Clean(p)))
}

// stat asks the container for the size, mtime and type of paths, in one
// process; paths that aren't regular files, or can't be read, are left out.
func (mr *Mirror) stat(ctx context.Context, paths []string) (map[string]stamp, error) {
	argv := append([]string{"stat", "-L", "-c", "%s %Y %f %n", "--"}, paths...)
	var out bytes.Buffer
	if _, err := mr.run(ctx, argv, &out); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	stamps := map[string]stamp{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 || !want[f[3]] {
			continue
		}
		size, err1 := strconv.ParseInt(f[0], 10, 64)
		mtime, err2 := strconv.ParseInt(f[1], 10, 64)
		mode, err3 := strconv.ParseUint(f[2], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || mode&0o170000 != 0o100000 {
			continue
		}
		stamps[f[3]] = stamp{size: size, mtime: mtime}
	}
	return stamps, nil
}

// fetch copies container file p to host, read-only, with st's mtime.
func (mr *Mirror) fetch(ctx context.Context, p, host string, st stamp) error {
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(host), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	code, err := mr.run(ctx, []string{"cat", "--", p}, &limitWriter{w: tmp, n: maxMirrored})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("cat exited with %d", code)
	}
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return err
	}
	if fi.Size() != st.size {
		// Changed while it was copied: the next message that names it
		// fetches it again.
		return fmt.Errorf("size changed while copying: %d, not %d", fi.Size(), st.size)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	mt := time.Unix(st.mtime, 0)
	if err := os.Chtimes(tmp.Name(), mt, mt); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), host)
}

// run runs argv to its end with stdout going to out.
func (mr *Mirror) run(ctx context.Context, argv []string, out io.Writer) (int, error) {
	p, err := mr.exec(ctx, backends.ExecSpec{Argv: argv, Stdout: out, Stderr: io.Discard})
	if err != nil {
		return 0, err
	}
	st, err := p.Wait(ctx)
	if err != nil {
		_ = p.Kill(context.WithoutCancel(ctx))
		return 0, err
	}
	return st.Code, nil
}

// limitWriter fails past n bytes.
type limitWriter struct {
	w io.Writer
	n int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if int64(len(b)) > l.n {
		return 0, fmt.Errorf("file over %d bytes", maxMirrored)
	}
	l.n -= int64(len(b))
	return l.w.Write(b)
}

// safeName keeps a name usable as one path component.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "_" + string(b)
	}
	return string(b)
}
