package session

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/berthdev/berth/backends"
)

// syncDebounce batches the events of a burst of edits into one copy.
const syncDebounce = 100 * time.Millisecond

// SyncStats counts what a sync moved.
type SyncStats struct {
	Copied  int // files, links and directories written into the instance
	Deleted int // paths removed from the instance
}

// syncer keeps one workspace's copy inside its instance up to date: a full
// copy on start, then the changes fsnotify reports, batched.
//
// Goroutines: run reads fsnotify events and flushes batches after a quiet
// spell; Close stops it and waits.
type syncer struct {
	c      *Client // nil for a one-off copy
	b      backends.Backend
	ws     string
	image  string
	ignore *patternmatcher.PatternMatcher
	fw     *fsnotify.Watcher
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	flushMu   sync.Mutex // serialises flushes, and guards flushedAt
	flushedAt time.Time  // when the last flush took its set of changes

	mu      sync.Mutex      // guards changed
	changed map[string]bool // workspace-relative slash paths
}

// ignorePatterns reads .gitignore and .dockerignore at the workspace root.
// .git itself never goes in: it is large and the host owns it.
func ignorePatterns(ws string) ([]string, error) {
	patterns := []string{".git"}
	for _, name := range []string{".gitignore", ".dockerignore"} {
		data, err := os.ReadFile(filepath.Join(ws, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ps, err := ignorefile.ReadAll(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, p := range ps {
			patterns = append(patterns, p)
			// gitignore's "name" matches at any depth; dockerignore's only
			// at the root.
			if name == ".gitignore" && !strings.Contains(strings.Trim(p, "/"), "/") && !strings.HasPrefix(p, "!") {
				patterns = append(patterns, "**/"+strings.Trim(p, "/"))
			}
		}
	}
	return patterns, nil
}

// startSync copies the workspace into its instance and keeps it in sync
// while the client lives.
func (c *Client) startSync(ctx context.Context, ws, image string, inst backends.Instance, copied bool) error {
	c.mu.Lock()
	if s := c.syncers[ws]; s != nil {
		c.mu.Unlock()
		_, err := s.flush(ctx)
		return err
	}
	c.mu.Unlock()
	patterns, err := ignorePatterns(ws)
	if err != nil {
		return err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("sync: ignore patterns: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	s := &syncer{c: c, b: c.m.backend, ws: ws, image: image, ignore: pm, fw: fw, done: make(chan struct{}), changed: map[string]bool{}, flushedAt: time.Now()}
	// Watch first, so nothing changed during the full copy is missed.
	if err := s.watchTree(ws); err != nil {
		fw.Close()
		return err
	}
	if !copied {
		backends.Report(ctx, "copying the workspace into %s", inst.Name)
		n, err := s.copyPaths(ctx, inst, []string{"."})
		if err != nil {
			fw.Close()
			return err
		}
		c.log.Info("workspace copied in", "workspace", ws, "instance", inst.Name, "entries", n)
	}
	c.mu.Lock()
	if c.closed || c.syncers[ws] != nil {
		c.mu.Unlock()
		fw.Close()
		return nil
	}
	c.syncers[ws] = s
	c.mu.Unlock()
	s.wg.Add(1)
	go s.run()
	return nil
}

func (s *syncer) ignored(rel string) bool {
	if rel == "." {
		return false
	}
	ok, _ := s.ignore.MatchesOrParentMatches(rel)
	return ok
}

// watchTree adds every directory under root that isn't ignored.
func (s *syncer) watchTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished meanwhile
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(s.ws, p)
		if s.ignored(filepath.ToSlash(rel)) {
			return filepath.SkipDir
		}
		if err := s.fw.Add(p); err != nil {
			return fmt.Errorf("sync: watch %s: %w", p, err)
		}
		return nil
	})
}

func (s *syncer) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-s.done:
			timer.Stop()
			return
		case ev, ok := <-s.fw.Events:
			if !ok {
				return
			}
			rel, err := filepath.Rel(s.ws, ev.Name)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			rel = filepath.ToSlash(rel)
			if s.ignored(rel) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					_ = s.watchTree(ev.Name) // a new directory: watch inside it
				}
			}
			s.mu.Lock()
			s.changed[rel] = true
			s.mu.Unlock()
			timer.Reset(syncDebounce)
		case <-timer.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			_, _ = s.flush(ctx)
			cancel()
		case err, ok := <-s.fw.Errors:
			if !ok {
				return
			}
			s.c.log.Warn("sync: watch error; next flush copies everything", "workspace", s.ws, "err", err)
			s.mu.Lock()
			s.changed["."] = true
			s.mu.Unlock()
			timer.Reset(syncDebounce)
		}
	}
}

// flush applies every change seen so far to the instance.
func (s *syncer) flush(ctx context.Context) (SyncStats, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.flushedAt = time.Now()
	s.mu.Lock()
	changed := s.changed
	s.changed = map[string]bool{}
	s.mu.Unlock()
	if len(changed) == 0 {
		return SyncStats{}, nil
	}
	r, err := s.c.ensure(ctx, s.c.Workspace(s.ws), s.image)
	if err != nil {
		return SyncStats{}, err
	}
	inst := r.Instance.Instance
	var present, gone []string
	for rel := range changed {
		if _, err := os.Lstat(filepath.Join(s.ws, filepath.FromSlash(rel))); err == nil {
			present = append(present, rel)
		} else {
			gone = append(gone, rel)
		}
	}
	sort.Strings(present)
	sort.Strings(gone)
	var st SyncStats
	if len(gone) > 0 {
		argv := []string{"rm", "-rf", "--"}
		for _, rel := range gone {
			argv = append(argv, path.Join(inst.Workdir, rel))
		}
		res, err := s.c.Run(ctx, ExecOptions{Workspace: s.ws, Image: s.image, Argv: argv, Internal: true}, time.Minute)
		if err != nil {
			return st, err
		}
		if res.Status.Code != 0 {
			return st, fmt.Errorf("sync: removing in the container: %s", strings.TrimSpace(res.Stderr))
		}
		st.Deleted = len(gone)
	}
	if len(present) > 0 {
		n, err := s.copyPaths(ctx, inst, present)
		if err != nil {
			return st, err
		}
		st.Copied = n
	}
	s.c.log.Debug("synced", "workspace", s.ws, "copied", st.Copied, "deleted", st.Deleted)
	return st, nil
}

// copyPaths streams the given workspace-relative paths (directories
// recursively) into the instance as one tar, honouring the ignore patterns.
func (s *syncer) copyPaths(ctx context.Context, inst backends.Instance, rels []string) (int, error) {
	pr, pw := io.Pipe()
	prefix := strings.TrimPrefix(inst.Workdir, "/")
	count := 0
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tw := tar.NewWriter(pw)
		err := func() error {
			seen := map[string]bool{}
			for _, rel := range rels {
				root := filepath.Join(s.ws, filepath.FromSlash(rel))
				err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
					if err != nil {
						return nil // gone meanwhile: the next event deletes it
					}
					r, _ := filepath.Rel(s.ws, p)
					r = filepath.ToSlash(r)
					if s.ignored(r) {
						if d.IsDir() {
							return filepath.SkipDir
						}
						return nil
					}
					if seen[r] {
						return nil
					}
					seen[r] = true
					n, err := writeTarEntry(tw, p, path.Join(prefix, r))
					count += n
					return err
				})
				if err != nil {
					return err
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	err := s.b.CopyTo(ctx, inst.ID, "/", pr)
	pr.CloseWithError(err) // unblocks the writer if the copy failed
	wg.Wait()
	if err != nil {
		return count, fmt.Errorf("sync: copy into %s: %w", inst.Name, err)
	}
	return count, nil
}

// writeTarEntry writes one file, directory or symlink.
func writeTarEntry(tw *tar.Writer, p, name string) (int, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, nil
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return 0, nil
		}
	} else if !fi.Mode().IsRegular() && !fi.IsDir() {
		return 0, nil // sockets, devices and pipes don't travel
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return 0, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return 0, err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(p)
		if err != nil {
			return 0, nil
		}
		defer f.Close()
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err != nil {
			return 0, err
		}
		// It shrank since Lstat: pad, to keep the tar whole; the write
		// that shrank it is an event of its own, synced next.
		if _, err := io.CopyN(tw, zeros{}, hdr.Size-n); err != nil {
			return 0, err
		}
	}
	return 1, nil
}

// Close stops syncing.
// copyIn copies the whole workspace into a synced instance, once: a new
// container's create hooks need the workspace in place before they run.
func (w *Workspace) copyIn(ctx context.Context, inst backends.Instance) error {
	patterns, err := ignorePatterns(w.path)
	if err != nil {
		return err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("sync: ignore patterns: %w", err)
	}
	s := &syncer{b: w.m.backend, ws: w.path, ignore: pm}
	backends.Report(ctx, "copying the workspace into %s", inst.Name)
	n, err := s.copyPaths(ctx, inst, []string{"."})
	if err != nil {
		return err
	}
	w.log.Info("workspace copied in", "instance", inst.Name, "entries", n)
	return nil
}

func (s *syncer) Close() {
	close(s.done)
	s.fw.Close()
	s.wg.Wait()
}

// Sync applies every pending change of ws to its instance now and waits.
// It returns what moved; without sync mode it does nothing.
func (c *Client) Sync(ctx context.Context, ws string) (SyncStats, bool, error) {
	c.mu.Lock()
	s := c.syncers[ws]
	c.mu.Unlock()
	if s == nil {
		return SyncStats{}, false, nil
	}
	// Let fsnotify deliver what the kernel already has.
	select {
	case <-time.After(2 * syncDebounce):
	case <-ctx.Done():
		return SyncStats{}, true, ctx.Err()
	}
	// On a loaded machine events may still be on their way: files written
	// since the last flush began go too.
	s.markWrittenSince()
	st, err := s.flush(ctx)
	return st, true, err
}

// markWrittenSince marks every file modified since the last flush took
// its changes (with a second's slack for coarse clocks) as changed.
func (s *syncer) markWrittenSince() {
	s.flushMu.Lock()
	since := s.flushedAt.Add(-time.Second)
	s.flushMu.Unlock()
	var found []string
	_ = filepath.WalkDir(s.ws, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished meanwhile
		}
		rel, _ := filepath.Rel(s.ws, p)
		rel = filepath.ToSlash(rel)
		if rel != "." && s.ignored(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && !fi.ModTime().Before(since) {
				found = append(found, rel)
			}
		}
		return nil
	})
	s.mu.Lock()
	for _, rel := range found {
		s.changed[rel] = true
	}
	s.mu.Unlock()
}

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
