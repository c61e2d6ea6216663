package session

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/berthdev/berth/devcontainer"
)

// watchDebounce gathers the burst of events one save makes (an editor's
// atomic save is a create, a write and a rename) into one notification.
const watchDebounce = 250 * time.Millisecond

// configWatcher watches the inputs of each workspace's configuration for a
// client and tells it when the configuration really changed.
//
// Goroutines: run reads fsnotify's events until Close; debounce timers fire
// check on their own goroutine, counted by wg. Close waits for all.
type configWatcher struct {
	c  *Client
	fw *fsnotify.Watcher
	wg sync.WaitGroup

	mu      sync.Mutex // guards the following
	spaces  map[string]*watchedSpace
	dirs    map[string]bool
	closed  bool
	pending map[string]*time.Timer // by workspace
}

// watchedSpace is one workspace's watched inputs.
type watchedSpace struct {
	hash    string          // hash of the config as last seen
	files   map[string]bool // host paths of the inputs
	anyIn   map[string]bool // directories where any file counts (a build context's top level)
	changed map[string]bool // inputs touched since the last notification
}

func newConfigWatcher(c *Client) (*configWatcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &configWatcher{c: c, fw: fw, spaces: map[string]*watchedSpace{}, dirs: map[string]bool{}, pending: map[string]*time.Timer{}}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// watch (re)starts watching ws's configuration inputs as cfg names them,
// plus the places where a new configuration would be discovered.
func (w *configWatcher) watch(ws string, cfg *devcontainer.Config) {
	sp := &watchedSpace{hash: cfg.Hash, files: map[string]bool{}, anyIn: map[string]bool{}, changed: map[string]bool{}}
	for _, f := range []string{
		filepath.Join(ws, ".devcontainer", "devcontainer.json"), filepath.Join(ws, ".devcontainer.json"),
		filepath.Join(ws, "Containerfile"), filepath.Join(ws, "Dockerfile"),
	} {
		sp.files[f] = true
	}
	if cfg.File != "" {
		sp.files[cfg.File] = true
	}
	if cc := cfg.Compose; cc != nil {
		for _, f := range append(append([]string{filepath.Join(cc.Dir, ".env")}, cc.Files...), cc.Dockerfiles...) {
			sp.files[f] = true
		}
	}
	if b := cfg.Build; b != nil {
		sp.files[b.Dockerfile] = true
		sp.files[filepath.Join(b.Context, ".dockerignore")] = true
		sp.anyIn[b.Context] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.spaces[ws] = sp
	dirs := map[string]bool{}
	for f := range sp.files {
		dirs[filepath.Dir(f)] = true
	}
	for d := range sp.anyIn {
		dirs[d] = true
	}
	for d := range dirs {
		if w.dirs[d] {
			continue
		}
		// Watch directories, not files: an atomic save replaces the file.
		if err := w.fw.Add(d); err != nil {
			if !os.IsNotExist(err) {
				w.c.log.Debug("cannot watch", "dir", d, "err", err)
			}
			continue
		}
		w.dirs[d] = true
	}
}

func (w *configWatcher) run() {
	defer w.wg.Done()
	for {
		select {
		case ev, ok := <-w.fw.Events:
			if !ok {
				return
			}
			w.event(ev)
		case err, ok := <-w.fw.Errors:
			if !ok {
				return
			}
			w.c.log.Debug("watch error", "err", err)
		}
	}
}

func (w *configWatcher) event(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if ev.Has(fsnotify.Create) && filepath.Base(name) == ".devcontainer" {
		// A new .devcontainer folder: watch it for devcontainer.json.
		if err := w.fw.Add(name); err == nil {
			w.dirs[name] = true
		}
	}
	for ws, sp := range w.spaces {
		if !sp.files[name] && !sp.anyIn[filepath.Dir(name)] {
			continue
		}
		sp.changed[name] = true
		if t := w.pending[ws]; t != nil {
			t.Reset(watchDebounce)
			continue
		}
		w.wg.Add(1)
		w.pending[ws] = time.AfterFunc(watchDebounce, func() {
			defer w.wg.Done()
			w.check(ws)
		})
	}
}

// check resolves ws's configuration again and notifies the client if its
// hash moved.
func (w *configWatcher) check(ws string) {
	w.mu.Lock()
	sp := w.spaces[ws]
	delete(w.pending, ws)
	if sp == nil || w.closed {
		w.mu.Unlock()
		return
	}
	files := make([]string, 0, len(sp.changed))
	for f := range sp.changed {
		if _, err := os.Stat(f); err != nil && !sp.files[f] {
			continue // an editor's temp file, renamed away by now
		}
		files = append(files, f)
	}
	sp.changed = map[string]bool{}
	old := sp.hash
	w.mu.Unlock()
	sort.Strings(files)

	hash := ""
	cfg, err := w.c.m.Workspace(ws).Config(w.c.ConfigPath(), "")
	if err == nil {
		hash = cfg.Hash
	}
	if hash == old {
		return
	}
	w.mu.Lock()
	sp.hash = hash
	w.mu.Unlock()
	if cfg != nil {
		w.watch(ws, cfg) // the inputs themselves may have moved
	}
	w.c.log.Info("configuration changed", "workspace", ws, "files", files)
	w.c.sink.ConfigChanged(ws, files)
}

// Close stops watching and waits for pending checks.
func (w *configWatcher) Close() {
	w.mu.Lock()
	w.closed = true
	for ws, t := range w.pending {
		if t.Stop() {
			w.wg.Done() // its function will never run
		}
		delete(w.pending, ws)
	}
	w.mu.Unlock()
	w.fw.Close()
	w.wg.Wait()
}
