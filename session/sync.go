package session

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// syncDebounce batches the events of a burst of edits into one copy. It
// is most of the latency of an edit, so it stays short: a burst that
// outlasts it is sent in two copies, which is fine.
const syncDebounce = 20 * time.Millisecond

// The default size limit of a synced workspace (customizations.berth.sync
// maxFiles and maxBytes override it). Sync mode copies the whole
// workspace at every up; past this it is the wrong tool.
const (
	DefaultSyncMaxFiles = 100_000
	DefaultSyncMaxBytes = 2 << 30
)

// ErrSyncTooLarge is a workspace over sync mode's size limit.
var ErrSyncTooLarge = errors.New("workspace too large to sync")

// conflictSuffix names the container's copy of a file both sides changed;
// pullSuffix, a file two-way sync is writing. Neither travels.
const (
	conflictSuffix = ".berth-conflict"
	pullSuffix     = ".berth-pull"
)

// SyncStats counts what a sync moved.
type SyncStats struct {
	Copied    int // files, links and directories written into the instance
	Deleted   int // paths removed from the instance
	Pulled    int // two-way: files, links and directories written to the host
	Removed   int // two-way: paths removed from the host
	Conflicts int // two-way: container copies saved as NAME.berth-conflict
}

func (s *SyncStats) add(o SyncStats) {
	s.Copied += o.Copied
	s.Deleted += o.Deleted
	s.Pulled += o.Pulled
	s.Removed += o.Removed
	s.Conflicts += o.Conflicts
}

// syncOptions is a workspace's customizations.berth.sync, resolved.
type syncOptions struct {
	maxFiles, maxBytes int64
	twoWay             bool
	back               []string // gitignore patterns of what comes back even if ignored
}

func syncOptionsOf(cfg *devcontainer.Config) syncOptions {
	o := syncOptions{maxFiles: DefaultSyncMaxFiles, maxBytes: DefaultSyncMaxBytes}
	if cfg == nil || cfg.Berth.Sync == nil {
		return o
	}
	s := cfg.Berth.Sync
	if s.MaxFiles > 0 {
		o.maxFiles = s.MaxFiles
	}
	if s.MaxBytes > 0 {
		o.maxBytes = s.MaxBytes
	}
	o.twoWay, o.back = s.TwoWay, s.Back
	return o
}

// syncer keeps one workspace's copy inside its instance up to date: a full
// copy on start, then the changes fsnotify reports, batched. With two-way
// sync it also scans the container (see twoway.go) and brings changes back.
//
// Goroutines: run reads fsnotify events and flushes batches after a quiet
// spell; with two-way sync, poll scans the container. Close stops both and
// waits.
type syncer struct {
	c     *Client // nil for a one-off copy
	log   *slog.Logger
	b     backends.Backend
	ws    string
	image string
	opts  syncOptions
	fw    *fsnotify.Watcher
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup
	// life ends with Close, and a two-way scan under way with it.
	life context.Context
	stop context.CancelFunc
	// agentOf returns the instance's agent, started if need be; nil
	// without one.
	agentOf func(ctx context.Context) *agent.Client

	flushMu   sync.Mutex // serialises flushes and scans; guards the following
	flushedAt time.Time  // when the last flush took its set of changes
	// base holds, for two-way sync, each path's state when it was last
	// synced in either direction.
	base map[string]fileState
	// stream is the agent's sync stream, which takes the batches of
	// edits, and streamOf the agent it belongs to.
	stream   *agent.SyncStream
	streamOf *agent.Client
	// bulkExec says a full copy goes through `berth-agent untar` started
	// with the backend's exec: the instance has the agent as its init.
	bulkExec bool

	mu      sync.Mutex      // guards the following
	ignore  *syncIgnore     // reloaded when an ignore file changes
	dirs    map[string]bool // directories synced in, so a deleted one is known as one
	changed map[string]bool // workspace-relative slash paths
}

func newSyncer(c *Client, log *slog.Logger, b backends.Backend, ws, image string, opts syncOptions) (*syncer, error) {
	ig, err := loadSyncIgnore(ws)
	if err != nil {
		return nil, err
	}
	return &syncer{c: c, log: log, b: b, ws: ws, image: image, opts: opts, ignore: ig, dirs: map[string]bool{},
		changed: map[string]bool{}, base: map[string]fileState{}, flushedAt: time.Now()}, nil
}

// startSync copies the workspace into its instance and keeps it in sync
// while the client lives. copied says the copy is in already.
func (c *Client) startSync(ctx context.Context, ws, image string, cfg *devcontainer.Config, inst backends.Instance, copied bool) error {
	c.mu.Lock()
	if s := c.syncers[ws]; s != nil {
		c.mu.Unlock()
		_, err := s.flush(ctx)
		return err
	}
	c.mu.Unlock()
	s, err := newSyncer(c, c.log, c.m.backend, ws, image, syncOptionsOf(cfg))
	if err != nil {
		return err
	}
	s.bulkExec = c.m.bulkExec(cfg)
	s.agentOf = func(ctx context.Context) *agent.Client {
		w := c.Workspace(ws)
		r, err := c.ensure(ctx, w, image)
		if err != nil {
			return nil
		}
		ac, _ := w.agent(ctx, r)
		return ac
	}
	if s.fw, err = fsnotify.NewWatcher(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	// Watch first, so nothing changed during the full copy is missed.
	if err := s.watchTree(ws); err != nil {
		s.fw.Close()
		return err
	}
	if !copied {
		n, err := s.copyAll(ctx, inst)
		if err != nil {
			s.fw.Close()
			return err
		}
		c.log.Info("workspace copied in", "workspace", ws, "instance", inst.Name, "entries", n)
	}
	c.mu.Lock()
	if c.closed || c.syncers[ws] != nil {
		c.mu.Unlock()
		s.fw.Close()
		return nil
	}
	c.syncers[ws] = s
	c.mu.Unlock()
	s.life, s.stop = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	if s.opts.twoWay {
		s.wg.Add(1)
		go s.poll()
	}
	return nil
}

// copyIn copies the whole workspace into a synced instance, once: a new
// container's create hooks need the workspace in place before they run.
func (w *Workspace) copyIn(ctx context.Context, cfg *devcontainer.Config, r Ready) error {
	s, err := newSyncer(nil, w.log, w.m.backend, w.path, "", syncOptionsOf(cfg))
	if err != nil {
		return err
	}
	s.bulkExec = w.m.bulkExec(cfg)
	inst := r.Instance.Instance
	n, err := s.copyAll(ctx, inst)
	if err != nil {
		return err
	}
	w.log.Info("workspace copied in", "instance", inst.Name, "entries", n)
	return nil
}

// bulkExec says whether a full copy into an instance made for cfg goes
// through `berth-agent untar` started with the backend's exec: whenever
// the agent is the instance's init (Manager.spec).
func (m *Manager) bulkExec(cfg *devcontainer.Config) bool {
	if len(m.agents) == 0 {
		return false
	}
	return cfg == nil || cfg.Berth.Agent == nil || *cfg.Berth.Agent
}

// ignored says whether rel stays on the host.
func (s *syncer) ignored(rel string, isDir bool) bool {
	if strings.HasSuffix(rel, conflictSuffix) || strings.HasSuffix(rel, pullSuffix) {
		return true
	}
	s.mu.Lock()
	ig := s.ignore
	s.mu.Unlock()
	return ig.ignored(rel, isDir)
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
		if s.ignored(filepath.ToSlash(rel), true) {
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
			fi, err := os.Lstat(ev.Name)
			isDir := err == nil && fi.IsDir()
			if err != nil {
				s.mu.Lock()
				isDir = s.dirs[rel]
				s.mu.Unlock()
			}
			if s.ignored(rel, isDir) {
				continue
			}
			if isIgnoreFile(rel) {
				// New rules: what they let in now comes in.
				if ig, err := loadSyncIgnore(s.ws); err == nil {
					s.mu.Lock()
					s.ignore = ig
					s.mu.Unlock()
					_ = s.watchTree(filepath.Join(s.ws, filepath.FromSlash(path.Dir(rel))))
					s.mark(path.Dir(rel))
				} else {
					s.c.log.Warn("sync: ignore rules unreadable; keeping the old ones", "workspace", s.ws, "err", err)
				}
			}
			if ev.Has(fsnotify.Create) && isDir {
				_ = s.watchTree(ev.Name) // a new directory: watch inside it
			}
			s.mark(rel)
			timer.Reset(syncDebounce)
		case <-timer.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			if _, err := s.flush(ctx); err != nil {
				s.c.log.Warn("sync: flush failed", "workspace", s.ws, "err", err)
			}
			cancel()
		case err, ok := <-s.fw.Errors:
			if !ok {
				return
			}
			s.c.log.Warn("sync: watch error; next flush copies everything", "workspace", s.ws, "err", err)
			s.mark(".")
			timer.Reset(syncDebounce)
		}
	}
}

func (s *syncer) mark(rel string) {
	s.mu.Lock()
	s.changed[rel] = true
	s.mu.Unlock()
}

// flush applies every change seen so far to the instance.
func (s *syncer) flush(ctx context.Context) (SyncStats, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	return s.flushLocked(ctx)
}

func (s *syncer) flushLocked(ctx context.Context) (SyncStats, error) {
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
		st, ok := hostState(filepath.Join(s.ws, filepath.FromSlash(rel)))
		switch {
		case !ok:
			gone = append(gone, rel)
		case s.opts.twoWay && st.typ != 'd' && s.base[rel] == st:
			// What two-way sync just brought back: the container has it.
		default:
			present = append(present, rel)
		}
	}
	sort.Strings(present)
	sort.Strings(gone)
	var st SyncStats
	s.mu.Lock()
	for _, rel := range gone {
		delete(s.dirs, rel)
	}
	s.mu.Unlock()
	for _, rel := range gone {
		s.forget(rel)
	}
	n, conflicts, err := s.copyPaths(ctx, inst, present, gone, false)
	if err != nil {
		// What this flush took goes with the next one.
		s.mu.Lock()
		for rel := range changed {
			s.changed[rel] = true
		}
		s.mu.Unlock()
		return st, err
	}
	st.Copied, st.Deleted = n, len(gone)
	if len(conflicts) > 0 {
		c, err := s.keepConflicts(ctx, inst, conflicts)
		st.Conflicts += c
		if err != nil {
			return st, err
		}
	}
	s.c.log.Debug("synced", "workspace", s.ws, "copied", st.Copied, "deleted", st.Deleted)
	return st, nil
}

// keepConflicts brings back, as NAME.berth-conflict, the container's copies
// of rels that a flush found changed inside and kept aside there, then
// removes them inside. Callers hold flushMu.
func (s *syncer) keepConflicts(ctx context.Context, inst backends.Instance, rels []string) (int, error) {
	root, err := os.OpenRoot(s.ws)
	if err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	defer root.Close()
	n := 0
	var inside []string
	for _, rel := range rels {
		name := rel + conflictSuffix
		if err := s.fetch(ctx, root, inst, name, name, fileState{typ: 'f'}); err != nil {
			return n, err
		}
		s.c.log.Info("sync: changed on both sides; the container's copy is kept beside the host's", "workspace", s.ws, "path", name)
		inside = append(inside, name)
		n++
	}
	_, _, err = s.copyPaths(ctx, inst, nil, inside, false)
	return n, err
}

// forget drops rel and what is under it from base. Callers hold flushMu.
func (s *syncer) forget(rel string) {
	if !s.opts.twoWay {
		return
	}
	delete(s.base, rel)
	prefix := rel + "/"
	for p := range s.base {
		if strings.HasPrefix(p, prefix) {
			delete(s.base, p)
		}
	}
}

// syncEntry is one path a copy sends.
type syncEntry struct {
	rel  string
	size int64
}

// collect lists what copying rels sends, honouring the ignore rules, and
// counts its files and bytes. With limit it stops, with ErrSyncTooLarge,
// once either count passes the limit.
func (s *syncer) collect(rels []string, limit bool) ([]syncEntry, int64, int64, error) {
	var (
		out          []syncEntry
		files, bytes int64
		seen         = map[string]bool{}
		dirs         []string
	)
	for _, rel := range rels {
		root := filepath.Join(s.ws, filepath.FromSlash(rel))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone meanwhile: the next event deletes it
			}
			r, _ := filepath.Rel(s.ws, p)
			r = filepath.ToSlash(r)
			if r != "." && s.ignored(r, d.IsDir()) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if seen[r] {
				return nil
			}
			seen[r] = true
			e := syncEntry{rel: r}
			switch t := d.Type(); {
			case t.IsDir():
				dirs = append(dirs, r)
			case t.IsRegular():
				if fi, err := d.Info(); err == nil {
					e.size = fi.Size()
				}
				files++
				bytes += e.size
			case t&fs.ModeSymlink != 0:
				files++
			default:
				return nil // sockets, devices and pipes don't travel
			}
			out = append(out, e)
			if limit && (files > s.opts.maxFiles || bytes > s.opts.maxBytes) {
				return fmt.Errorf("%w: %s holds more than %d files or %s, sync mode's limit: "+
					"leave out what the container doesn't need (.gitignore, .dockerignore) or raise "+
					"customizations.berth.sync.maxFiles and maxBytes", ErrSyncTooLarge, s.ws, s.opts.maxFiles, megabytes(s.opts.maxBytes))
			}
			return nil
		})
		if err != nil {
			return nil, files, bytes, err
		}
	}
	s.mu.Lock()
	for _, d := range dirs {
		s.dirs[d] = true
	}
	s.mu.Unlock()
	return out, files, bytes, nil
}

func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }

// copyAll copies the whole workspace in, within the size limit, reporting
// progress as it goes.
func (s *syncer) copyAll(ctx context.Context, inst backends.Instance) (int, error) {
	n, _, err := s.copyPaths(ctx, inst, []string{"."}, nil, true)
	return n, err
}

// syncProgressEvery is how often a full copy reports how far it got.
const syncProgressEvery = 500 * time.Millisecond

// copyPaths removes the workspace-relative paths gone from the instance,
// then streams the paths rels (directories recursively) into it as one
// tar, honouring the ignore rules. full is the whole workspace: it is held
// to the size limit and reports progress. With two-way sync, a file
// changed inside since it was last synced is kept aside as
// NAME.berth-conflict in the container when the agent's sync stream
// takes the batch: conflicts lists those. With two-way sync, callers hold
// flushMu or own s alone.
func (s *syncer) copyPaths(ctx context.Context, inst backends.Instance, rels, gone []string, full bool) (int, []string, error) {
	if len(rels) == 0 && len(gone) == 0 {
		return 0, nil, nil
	}
	start := time.Now()
	entries, files, bytes, err := s.collect(rels, full)
	if err != nil {
		return 0, nil, err
	}
	if full {
		backends.Report(ctx, "sync: copying %d files (%s) into %s", files, megabytes(bytes), inst.Name)
	}
	prefix := strings.TrimPrefix(inst.Workdir, "/")
	b := agent.Batch{}
	for _, rel := range gone {
		b.Remove = append(b.Remove, path.Join(prefix, rel))
	}
	if s.opts.twoWay && !full {
		b.Expect = map[string]string{}
		for _, e := range entries {
			if st, ok := s.base[e.rel]; ok && st.typ == 'f' {
				b.Expect[path.Join(prefix, e.rel)] = st.agentState()
			}
		}
	}
	pr, pw := io.Pipe()
	var (
		count            int
		sentFiles, sentB atomic.Int64
		wg               sync.WaitGroup
		states           = map[string]fileState{}
		stopProgress     = make(chan struct{})
		twoWay           = s.opts.twoWay
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Batched: a pipe hands over each write on its own, and a tar
		// writes a 512-byte header per file.
		bw := bufio.NewWriterSize(pw, 1<<20)
		tw := tar.NewWriter(bw)
		err := func() error {
			for _, e := range entries {
				st, n, err := writeTarEntry(tw, filepath.Join(s.ws, filepath.FromSlash(e.rel)), path.Join(prefix, e.rel))
				if err != nil {
					return err
				}
				count += n
				if n > 0 && twoWay {
					states[e.rel] = st
				}
				if st.typ != 'd' {
					sentFiles.Add(1)
					sentB.Add(st.size)
				}
			}
			if err := tw.Close(); err != nil {
				return err
			}
			return bw.Flush()
		}()
		pw.CloseWithError(err)
	}()
	if full {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(syncProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					backends.Report(ctx, "sync: copied %d of %d files (%s of %s)", sentFiles.Load(), files, megabytes(sentB.Load()), megabytes(bytes))
				}
			}
		}()
	}
	var conflicts []string
	if full {
		err = s.copyAllTo(ctx, inst, pr)
	} else {
		conflicts, err = s.copyTo(ctx, inst, pr, b)
	}
	pr.CloseWithError(err) // unblocks the writer if the copy failed
	close(stopProgress)
	wg.Wait()
	if err != nil {
		return count, nil, fmt.Errorf("sync: copy into %s: %w", inst.Name, err)
	}
	for rel, st := range states {
		s.base[rel] = st
	}
	if full {
		backends.Report(ctx, "sync: copied %d files (%s) in %s", files, megabytes(bytes), time.Since(start).Round(time.Millisecond))
	}
	// The agent names conflicts as the tar did: back to workspace paths.
	var kept []string
	for _, c := range conflicts {
		if rel, ok := strings.CutPrefix(c, prefix+"/"); ok {
			kept = append(kept, rel)
		} else if prefix == "" {
			kept = append(kept, c)
		}
	}
	return count, kept, nil
}

// copyAllTo extracts a full copy's tar stream r at the instance's root:
// into the agent's `untar` started with the engine's exec, as `tar c |
// incus exec -- tar x` does, when the agent is the instance's init; else
// through the engine's archive API. The exec is the quicker: Incus's
// archive API (SFTP) makes a request per file, and Docker's took 1.66×
// the time of the agent's in the same minutes (docs/benchmarks.md). No
// agent process is needed: up starts none.
func (s *syncer) copyAllTo(ctx context.Context, inst backends.Instance, r io.Reader) error {
	if !s.bulkExec {
		return s.b.CopyTo(ctx, inst.ID, "/", r)
	}
	var stderr capped
	w := writerFunc(func(p []byte) (int, error) { stderr.add(p); return len(p), nil })
	in := &readCounter{r: r}
	p, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{agent.InitPath, "untar", "/"}, User: "0:0", Helper: true, Direct: true, Stdin: in, Stdout: io.Discard, Stderr: w})
	if err == nil {
		var st backends.ExitStatus
		if st, err = p.Wait(ctx); err == nil && st.Code != 0 {
			err = fmt.Errorf("agent untar exited %d: %s", st.Code, strings.TrimSpace(stderr.String()))
		}
	}
	if err != nil && in.n.Load() == 0 && ctx.Err() == nil {
		// No agent at InitPath (an instance an older berth made): the
		// stream is still whole.
		s.log.Debug("sync: no agent untar; copying through the archive API", "instance", inst.Name, "err", err)
		return s.b.CopyTo(ctx, inst.ID, "/", r)
	}
	return err
}

// copyTo applies one batch of edits: b's removals, then the tar stream r
// extracted at the instance's root. The agent's sync stream takes it when
// the agent has one, with no process start; an older agent's `untar`
// process otherwise, and with no agent the engine's archive API. It
// returns the names the sync stream kept as NAME.berth-conflict. Callers
// hold flushMu or own s alone.
func (s *syncer) copyTo(ctx context.Context, inst backends.Instance, r io.Reader, b agent.Batch) ([]string, error) {
	if ss := s.syncStream(ctx); ss != nil {
		b.Tar = func(w io.Writer) error {
			_, err := io.Copy(w, r)
			return err
		}
		conflicts, err := ss.Apply(ctx, b)
		if err != nil && ss.Err() != nil {
			s.dropStream()
		}
		return conflicts, err
	}
	if len(b.Remove) > 0 {
		argv := append([]string{"rm", "-rf", "--"}, b.Remove...)
		for i := 3; i < len(argv); i++ {
			argv[i] = "/" + argv[i]
		}
		res, err := s.c.Run(ctx, ExecOptions{Workspace: s.ws, Image: s.image, Argv: argv, Internal: true}, time.Minute)
		if err != nil {
			return nil, err
		}
		if res.Status.Code != 0 {
			return nil, fmt.Errorf("sync: removing in the container: %s", strings.TrimSpace(res.Stderr))
		}
	}
	var ac *agent.Client
	if s.agentOf != nil {
		ac = s.agentOf(ctx)
	}
	if ac == nil {
		return nil, s.b.CopyTo(ctx, inst.ID, "/", r)
	}
	var stderr capped
	w := writerFunc(func(p []byte) (int, error) { stderr.add(p); return len(p), nil })
	in := &readCounter{r: r}
	p, err := ac.Exec(ctx, backends.ExecSpec{Argv: []string{agent.InitPath, "untar", "/"}, User: "0:0", Helper: true, Stdin: in, Stdout: io.Discard, Stderr: w}, nil)
	if err != nil {
		if in.n.Load() == 0 {
			// An agent without untar (an instance an older berth made):
			// the stream is still whole.
			return nil, s.b.CopyTo(ctx, inst.ID, "/", r)
		}
		return nil, err
	}
	st, err := p.Wait(ctx)
	if err != nil {
		return nil, err
	}
	if st.Code != 0 {
		return nil, fmt.Errorf("agent untar exited %d: %s", st.Code, strings.TrimSpace(stderr.String()))
	}
	return nil, nil
}

// syncStream returns the agent's sync stream, opened if need be; nil
// without an agent that has one. Callers hold flushMu or own s alone.
func (s *syncer) syncStream(ctx context.Context) *agent.SyncStream {
	if s.agentOf == nil {
		return nil
	}
	ac := s.agentOf(ctx)
	if ac == nil || ac.Proto() < agent.ProtoSyncStream {
		s.dropStream()
		return nil
	}
	if s.stream != nil && s.streamOf == ac {
		return s.stream
	}
	s.dropStream()
	ss, err := ac.SyncStream(ctx, "/")
	if err != nil {
		s.log.Debug("sync: no sync stream; using untar", "workspace", s.ws, "err", err)
		return nil
	}
	s.stream, s.streamOf = ss, ac
	return ss
}

// dropStream closes the sync stream, if any. Callers hold flushMu or own
// s alone.
func (s *syncer) dropStream() {
	if s.stream != nil {
		_ = s.stream.Close()
		s.stream, s.streamOf = nil, nil
	}
}

// readCounter counts what was read through it.
type readCounter struct {
	r io.Reader
	n atomic.Int64
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// writerFunc is an io.Writer made of a function.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// fileState is what sync compares of a path: two states are equal when
// the path needs no copy. Times are whole seconds, as tar keeps them.
type fileState struct {
	typ   byte // 'f', 'd' or 'l'
	perm  fs.FileMode
	size  int64  // files only
	mtime int64  // files only, Unix seconds
	link  string // symlinks only
}

func stateOf(fi fs.FileInfo, link string) (fileState, bool) {
	st := fileState{perm: fi.Mode().Perm()}
	switch m := fi.Mode(); {
	case m.IsRegular():
		st.typ, st.size, st.mtime = 'f', fi.Size(), fi.ModTime().Unix()
	case m.IsDir():
		st.typ = 'd'
	case m&fs.ModeSymlink != 0:
		st.typ, st.link, st.perm = 'l', link, 0
	default:
		return fileState{}, false
	}
	return st, true
}

// agentState is st as the agent states a regular file (agent.FileState).
func (st fileState) agentState() string {
	return fmt.Sprintf("f%o %d %d", uint32(st.perm), st.size, st.mtime)
}

// hostState is p's state; false when it is missing or of no type sync moves.
func hostState(p string) (fileState, bool) {
	fi, err := os.Lstat(p)
	if err != nil {
		return fileState{}, false
	}
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		link, _ = os.Readlink(p)
	}
	return stateOf(fi, link)
}

// writeTarEntry writes one file, directory or symlink, and returns the
// state it sent; n is 0 when p is gone or of no type sync moves.
func writeTarEntry(tw *tar.Writer, p, name string) (st fileState, n int, err error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return st, 0, nil
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return st, 0, nil
		}
	}
	st, ok := stateOf(fi, link)
	if !ok {
		return st, 0, nil // sockets, devices and pipes don't travel
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return st, 0, err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	// Whole seconds keep the header in plain ustar, and are what the
	// other side reports back.
	hdr.ModTime = time.Unix(st.mtime, 0)
	if !fi.Mode().IsRegular() {
		hdr.ModTime = fi.ModTime().Truncate(time.Second)
	}
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := tw.WriteHeader(hdr); err != nil {
		return st, 0, err
	}
	if fi.Mode().IsRegular() {
		f, err := os.Open(p)
		if err != nil {
			return st, 1, zeroFill(tw, hdr.Size)
		}
		defer f.Close()
		n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
		if err != nil {
			return st, 0, err
		}
		// It shrank since Lstat: pad, to keep the tar whole; the write
		// that shrank it is an event of its own, synced next.
		if err := zeroFill(tw, hdr.Size-n); err != nil {
			return st, 0, err
		}
	}
	return st, 1, nil
}

func zeroFill(w io.Writer, n int64) error {
	_, err := io.CopyN(w, zeros{}, n)
	return err
}

// Close stops syncing.
func (s *syncer) Close() {
	s.stop()
	close(s.done)
	s.fw.Close()
	s.wg.Wait()
	s.flushMu.Lock()
	s.dropStream()
	s.flushMu.Unlock()
}

// Sync applies every pending change of ws to its instance now and waits;
// with two-way sync it then brings the container's changes back. It
// returns what moved; without sync mode it does nothing.
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
	if err != nil || !s.opts.twoWay {
		return st, true, err
	}
	back, err := s.pull(ctx)
	st.add(back)
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
		if rel != "." && s.ignored(rel, d.IsDir()) {
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
