package session

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
)

// This file holds the fixtures of the daemon-less tests: a Manager on the
// in-memory backend, a workspace folder on the host, and a Sink that
// records what a client hears.

// testImage is the image every in-memory workspace runs unless a test
// says otherwise.
const testImage = "img:1"

// memEnvOptions configure newMemEnv.
type memEnvOptions struct {
	// Files are written into the workspace, by slash path.
	Files map[string]string
	// Memory configures the backend. Local defaults to true (bind mounts);
	// set Sync to get the backend's default, a remote engine, which syncs.
	Memory memory.Options
	Sync   bool
	// Clock makes the backend report Instance.Started (see startClock).
	Clock bool
	// Image is the manager's default image; "" means testImage, "-" none.
	Image string
	// NoWatch hides the backend's Watcher, so that berth hears of no
	// change made behind its back.
	NoWatch bool
}

// memEnv is one Manager on an in-memory backend and one workspace.
type memEnv struct {
	t     *testing.T
	mem   *memory.Backend
	clock *startClock      // nil unless Clock
	b     backends.Backend // what the manager uses
	m     *Manager
	ws    string // the workspace, resolved
	log   *slog.Logger
}

// newMemEnv returns a fresh environment; the test's cleanup closes its
// manager after every client.
func newMemEnv(t *testing.T, o memEnvOptions) *memEnv {
	t.Helper()
	dir := t.TempDir()
	ws, err := ResolveWorkspace(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range o.Files {
		writeHostFile(t, filepath.Join(ws, filepath.FromSlash(name)), body)
	}
	mo := o.Memory
	if !o.Sync {
		mo.Local = true
	}
	e := &memEnv{t: t, mem: memory.New(mo), ws: ws, log: slog.New(slog.DiscardHandler)}
	e.b = e.mem
	if o.Clock {
		e.clock = &startClock{Backend: e.mem, starts: map[string]time.Time{}}
		e.b = e.clock
	}
	if o.NoWatch {
		e.b = noWatch{e.b}
	}
	image := o.Image
	switch image {
	case "":
		image = testImage
	case "-":
		image = ""
	}
	e.m = NewManager(e.b, e.log, image)
	t.Cleanup(func() {
		e.mem.Thaw()
		e.mem.SetDown(false)
		e.m.Close()
	})
	return e
}

// manager returns another Manager on the same backend: a second berth
// process, or berth restarted.
func (e *memEnv) manager(image string) *Manager {
	m := NewManager(e.b, e.log, image)
	e.t.Cleanup(m.Close)
	return m
}

// client returns a client of m (the env's manager when nil) and what it
// hears; editor says whether it counts as an editor session. The test's
// cleanup closes it.
func (e *memEnv) client(m *Manager, editor bool) (*Client, *recSink) {
	if m == nil {
		m = e.m
	}
	s := newRecSink()
	c := NewClient(m, e.log, s)
	c.SetEditor(editor)
	// The tests' configurations are their own: trust_test.go tests trust.
	c.SetTrust(TrustPolicy{Trusted: true})
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c, s
}

// workdir is the workspace's container path.
func (e *memEnv) workdir() string { return Workdir(e.ws) }

// fs returns the instance's filesystem.
func (e *memEnv) fs() *memory.FS {
	e.t.Helper()
	f, err := e.mem.FS(e.ws)
	if err != nil {
		e.t.Fatalf("the workspace has no instance: %v", err)
	}
	return f
}

// file reads a file of the instance, "" when it is missing.
func (e *memEnv) file(p string) string {
	e.t.Helper()
	data, err := e.fs().ReadFile(p)
	if err != nil {
		return ""
	}
	return string(data)
}

// state returns the instance's run state, or "none".
func (e *memEnv) state() string {
	e.t.Helper()
	inst, err := e.mem.Find(testCtx(e.t), e.ws)
	if err != nil {
		return "none"
	}
	return string(inst.State)
}

// run runs argv through c and fails the test when it can't.
func (e *memEnv) run(c *Client, argv ...string) RunResult {
	e.t.Helper()
	res, err := c.Run(testCtx(e.t), ExecOptions{Workspace: e.ws, Argv: argv}, 10*time.Second)
	if err != nil {
		e.t.Fatalf("Run %q: %v", argv, err)
	}
	return res
}

// startExternally starts the stopped instance behind berth's back.
func (e *memEnv) startExternally() {
	e.t.Helper()
	var err error
	if e.clock != nil {
		err = e.clock.StartExternally(e.ws)
	} else {
		err = e.mem.StartExternally(e.ws)
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// waitWatchers waits until the manager's event watcher is subscribed,
// so that a change made next is seen.
func (e *memEnv) waitWatchers() {
	e.t.Helper()
	e.m.Workspace(e.ws) // the first handle starts the watcher
	if err := e.mem.WaitWatchers(testCtx(e.t), 1); err != nil {
		e.t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeHostFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dcFiles returns the files of a workspace whose
// .devcontainer/devcontainer.json has the given top-level members (JSON,
// without the braces) besides the test image.
func dcFiles(members string) map[string]string {
	body := `{"image": "` + testImage + `"`
	if members != "" {
		body += ", " + members
	}
	return map[string]string{".devcontainer/devcontainer.json": body + "}"}
}

// startClock gives the in-memory backend what it does not model:
// Instance.Started, the time of the instance's current start, which
// postStartCommand's bookkeeping keys on. Every start through Ensure or
// StartExternally is a new time.
type startClock struct {
	*memory.Backend

	mu     sync.Mutex // guards starts
	starts map[string]time.Time
}

func (c *startClock) stamp(inst backends.Instance) backends.Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	if inst.State == backends.StateRunning {
		inst.Started = c.starts[inst.ID]
	}
	return inst
}

func (c *startClock) started(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Strictly later than any start before: the token is the time.
	t := time.Now()
	for _, s := range c.starts {
		if !t.After(s) {
			t = s.Add(time.Microsecond)
		}
	}
	c.starts[id] = t
}

func (c *startClock) Ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	prior, err := c.Backend.Find(ctx, spec.Workspace)
	wasRunning := err == nil && prior.State == backends.StateRunning
	inst, created, err := c.Backend.Ensure(ctx, spec)
	if err != nil {
		return inst, created, err
	}
	if created || !wasRunning {
		c.started(inst.ID)
	}
	return c.stamp(inst), created, nil
}

func (c *startClock) Find(ctx context.Context, ws string) (backends.Instance, error) {
	inst, err := c.Backend.Find(ctx, ws)
	if err != nil {
		return inst, err
	}
	return c.stamp(inst), nil
}

func (c *startClock) List(ctx context.Context) ([]backends.Instance, error) {
	list, err := c.Backend.List(ctx)
	for i := range list {
		list[i] = c.stamp(list[i])
	}
	return list, err
}

func (c *startClock) StartExternally(ref string) error {
	if err := c.Backend.StartExternally(ref); err != nil {
		return err
	}
	inst, err := c.Backend.Find(context.Background(), ref)
	if err != nil {
		return err
	}
	c.started(inst.ID)
	return nil
}

// noWatch hides every optional interface of a backend, Watcher above all.
type noWatch struct{ backends.Backend }

// recSink is a Sink that records what a client hears.
type recSink struct {
	mu      sync.Mutex    // guards the following
	changed chan struct{} // closed and replaced on every event
	out     map[string]map[string]string
	exits   map[string]recExit
	inst    []string // "state/reason" of berth/instanceChanged, in order
	configs [][]string
}

type recExit struct {
	Status backends.ExitStatus
	Reason string
}

func newRecSink() *recSink {
	return &recSink{changed: make(chan struct{}), out: map[string]map[string]string{}, exits: map[string]recExit{}}
}

func (s *recSink) event(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *recSink) Output(pid, stream string, text []byte) {
	s.event(func() {
		if s.out[pid] == nil {
			s.out[pid] = map[string]string{}
		}
		s.out[pid][stream] += string(text)
	})
}

func (s *recSink) Exit(pid string, st backends.ExitStatus, reason string) {
	s.event(func() { s.exits[pid] = recExit{st, reason} })
}

func (s *recSink) ConfigChanged(ws string, files []string) {
	s.event(func() { s.configs = append(s.configs, files) })
}

func (s *recSink) InstanceChanged(ws, state, reason string) {
	s.event(func() { s.inst = append(s.inst, state+"/"+reason) })
}

// wait waits until cond, which runs with the sink locked, holds.
func (s *recSink) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		ok, ch := cond(), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; heard %s", what, s)
		}
	}
}

// waitExit waits for pid's exit and returns it.
func (s *recSink) waitExit(t *testing.T, pid string) recExit {
	t.Helper()
	var ex recExit
	s.wait(t, "the exit of "+pid, func() bool {
		var ok bool
		ex, ok = s.exits[pid]
		return ok
	})
	return ex
}

// waitInstance waits until the instance changes listed so far end with
// want ("state/reason", in order) and returns them all.
func (s *recSink) waitInstance(t *testing.T, want ...string) []string {
	t.Helper()
	var got []string
	s.wait(t, fmt.Sprintf("instanceChanged %q", want), func() bool {
		got = slices.Clone(s.inst)
		return len(got) >= len(want) && slices.Equal(got[len(got)-len(want):], want)
	})
	return got
}

// instanceChanges returns the instance changes heard so far.
func (s *recSink) instanceChanges() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.inst)
}

// output returns what pid wrote on stream so far.
func (s *recSink) output(pid, stream string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out[pid][stream]
}

func (s *recSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "instanceChanged %q, configChanged %q, exits %v", s.inst, s.configs, s.exits)
	return b.String()
}
