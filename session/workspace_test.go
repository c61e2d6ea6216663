package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/pathmap"
)

// Concurrent first calls make one instance, and run its hooks once.
func TestEnsureConcurrentCallsMakeOneInstance(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks)})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		c, _ := e.client(nil, i%2 == 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, 0)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := e.mem.Calls("Ensure"); n != 1 {
		t.Errorf("%d Ensure calls, want 1", n)
	}
	list, err := e.m.List(testCtx(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %d instances, %v", len(list), err)
	}
	e.wantHookLog("after concurrent first calls", onceCreated)
}

func TestStatusAndDown(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles("")})
	w := e.m.Workspace(e.ws)
	ctx := testCtx(t)
	if inst, err := w.Status(ctx, "", ""); inst != nil || err != nil {
		t.Fatalf("Status before anything: %+v, %v; want nil, nil", inst, err)
	}
	if err := w.Down(ctx, false); err != nil {
		t.Errorf("Down with no instance: %v", err)
	}

	c, _ := e.client(nil, false)
	e.run(c, "true")
	inst, err := w.Status(ctx, "", "")
	if err != nil || inst == nil {
		t.Fatalf("Status: %+v, %v", inst, err)
	}
	got := fmt.Sprintf("%s %s %s stale=%v source=%s agent=%+v", inst.Backend, inst.State, inst.Image, inst.Stale, inst.Config.Source, inst.Agent)
	want := "memory running img:1 stale=false source=devcontainer.json agent={Enabled:false Reason:agent not configured Build:<nil> Connected:false}"
	if got != want {
		t.Errorf("Status:\n got %s\nwant %s", got, want)
	}
	if inst.Name != InstanceName(e.ws) || inst.Workdir != e.workdir() || inst.Workspace != e.ws {
		t.Errorf("Status: name %s workdir %s workspace %s", inst.Name, inst.Workdir, inst.Workspace)
	}

	// The configuration changes: the instance is stale, and stays in use
	// until a recreate.
	writeHostFile(t, filepath.Join(e.ws, ".devcontainer", "devcontainer.json"), `{"image": "img:1", "containerEnv": {"A": "1"}}`)
	if inst, err = w.Status(ctx, "", ""); err != nil || !inst.Stale {
		t.Errorf("Status after a config change: stale %v, %v", inst.Stale, err)
	}
	up, err := c.Up(ctx, UpOptions{Workspace: e.ws})
	if err != nil || !up.Stale || up.Created || up.ID != inst.ID {
		t.Errorf("Up of a stale instance: stale %v created %v id %s (was %s), %v", up.Stale, up.Created, up.ID, inst.ID, err)
	}
	up, err = c.Up(ctx, UpOptions{Workspace: e.ws, Recreate: true})
	if err != nil || up.Stale || !up.Created || up.ID == inst.ID {
		t.Errorf("Up with recreate: stale %v created %v id %s (was %s), %v", up.Stale, up.Created, up.ID, inst.ID, err)
	}
	if res := e.run(c, "sh", "-c", "echo $A"); res.Stdout != "1\n" {
		t.Errorf("the recreated instance's containerEnv: %q", res.Stdout)
	}

	// Down stops, then removes; both are idempotent.
	for _, step := range []struct {
		remove bool
		want   string
	}{{false, "stopped"}, {false, "stopped"}, {true, "none"}, {true, "none"}} {
		if err := w.Down(ctx, step.remove); err != nil {
			t.Errorf("Down(remove=%v): %v", step.remove, err)
		}
		if got := e.state(); got != step.want {
			t.Errorf("after Down(remove=%v): %s, want %s", step.remove, got, step.want)
		}
	}
	if inst, err := w.Status(ctx, "", ""); inst != nil || err != nil {
		t.Errorf("Status after removal: %+v, %v", inst, err)
	}
}

// builder adds an image builder to the in-memory backend.
type builder struct {
	*memory.Backend

	mu     sync.Mutex // guards the following
	builds []backends.BuildSpec
	images map[string]bool // built
	fail   error
}

func (b *builder) Build(ctx context.Context, spec backends.BuildSpec, log io.Writer) error {
	b.mu.Lock()
	b.builds = append(b.builds, spec)
	fail := b.fail
	if fail == nil {
		b.images[spec.Tag] = true
	}
	b.mu.Unlock()
	fmt.Fprintf(log, "Step 1/1 : FROM scratch\n")
	return fail
}

func (b *builder) ImageExists(ctx context.Context, ref string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.images[ref], nil
}

func TestBuild(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: map[string]string{"Containerfile": "FROM scratch\n"}, Image: "-"})
	b := &builder{Backend: e.mem, images: map[string]bool{}}
	m := NewManager(b, e.log, "")
	t.Cleanup(m.Close)
	c, sink := e.client(m, false)

	b.fail = fmt.Errorf("memory: build failed at step 1: %w", backends.ErrBuild)
	_, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if !errors.Is(err, backends.ErrBuild) {
		t.Fatalf("failing build: %v", err)
	}
	b.fail = nil
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.builds) != 2 || b.builds[1].Tag != res.Image || !strings.HasPrefix(res.Image, "berth-build/ws-") {
		t.Errorf("builds %+v, instance image %s", b.builds, res.Image)
	}
	if res.BuildPID == "" {
		t.Fatal("no build pid")
	}
	if ex := sink.waitExit(t, res.BuildPID); ex.Status.Code != 0 {
		t.Errorf("the build's exit: %+v", ex)
	}
	if got := sink.output(res.BuildPID, "stdout"); got != "Step 1/1 : FROM scratch\n" {
		t.Errorf("build log %q", got)
	}
	if res.Config.Source != devcontainer.SourceContainerfile {
		t.Errorf("source %s", res.Config.Source)
	}

	// An unchanged config never builds again, even to recreate.
	if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws, Recreate: true}); err != nil || len(b.builds) != 2 {
		t.Errorf("recreate: %d builds, %v", len(b.builds), err)
	}
}

func TestEnsureErrors(t *testing.T) {
	tests := []struct {
		name  string
		opts  memEnvOptions
		setup func(e *memEnv)
		want  error
	}{
		{name: "no image anywhere", opts: memEnvOptions{Image: "-"}, want: ErrNoImage},
		{name: "broken devcontainer.json", opts: memEnvOptions{Files: map[string]string{".devcontainer.json": `{"image": "x",,`}}, want: devcontainer.ErrBadConfig},
		{name: "unsupported workspaceMount", opts: memEnvOptions{Files: dcFiles(`"workspaceMount": "type=volume,source=v,target=/w", "workspaceFolder": "/w"`)}, want: ErrBadConfig},
		{name: "image not found", opts: memEnvOptions{Memory: memory.Options{Images: map[string]string{"other:1": ""}}}, want: backends.ErrImageNotFound},
		{name: "build without a builder", opts: memEnvOptions{Files: map[string]string{"Dockerfile": "FROM x\n"}}, want: backends.ErrBuild},
		{name: "foreign instance", setup: func(e *memEnv) {
			if _, err := e.mem.AddForeign(InstanceName(e.ws)); err != nil {
				e.t.Fatal(err)
			}
		}, want: backends.ErrForeign},
		{name: "engine down", setup: func(e *memEnv) { e.mem.SetDown(true) }, want: backends.ErrUnavailable},
		{name: "create fails", setup: func(e *memEnv) {
			e.mem.SetError("Ensure", fmt.Errorf("memory: injected: %w", backends.ErrUnavailable))
		}, want: backends.ErrUnavailable},
		{name: "manager closed", setup: func(e *memEnv) { e.m.Close() }, want: ErrClosed},
		{name: "compose on a backend without it", opts: memEnvOptions{Files: composeFiles(`"service": "app"`)}, want: backends.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, tt.opts)
			if tt.setup != nil {
				tt.setup(e)
			}
			c, _ := e.client(nil, false)
			_, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, 0)
			if !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

// An existing instance needs no configuration: another berth without an
// image uses it as it is.
func TestExistingInstanceNeedsNoConfig(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, _ := e.client(nil, false)
	e.run(c, "true")
	other, _ := e.client(e.manager(""), false)
	r, err := other.Ready(testCtx(t), e.ws, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Image != testImage || r.Config.Source != devcontainer.SourceImage {
		t.Errorf("image %s, source %s", r.Image, r.Config.Source)
	}
	// Recreating it needs one, though.
	if _, err := other.Up(testCtx(t), UpOptions{Workspace: e.ws, Recreate: true}); !errors.Is(err, ErrNoImage) {
		t.Errorf("recreate without an image: %v", err)
	}
}

func TestExplicitConfig(t *testing.T) {
	files := dcFiles("")
	files["custom/berth.json"] = `{"image": "img:2", "containerEnv": {"WHICH": "custom"}}`
	e := newMemEnv(t, memEnvOptions{Files: files})
	c, _ := e.client(nil, false)
	c.SetConfig("custom/berth.json")
	if got := c.ConfigPath(); got != "custom/berth.json" {
		t.Errorf("ConfigPath %q", got)
	}
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if res.Image != "img:2" || res.Config.Source != devcontainer.SourceExplicit {
		t.Errorf("image %s source %s", res.Image, res.Config.Source)
	}
}

func TestMapper(t *testing.T) {
	data := t.TempDir()
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"mounts": ["type=bind,source=` + data + `,target=/data", "type=volume,source=cache,target=/cache"]`)})
	w := e.m.Workspace(e.ws)
	ctx := testCtx(t)

	// Before there is an instance: the mount it would get.
	m, err := w.Mapper(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.ToContainer(filepath.Join(e.ws, "a.go")); !ok || got != e.workdir()+"/a.go" {
		t.Errorf("before the instance: %q, %v", got, ok)
	}

	c, _ := e.client(nil, false)
	e.run(c, "true")
	e.m.Workspace(e.ws).forget() // no cached answer: ask the engine
	m, err = w.Mapper(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, container string
	}{
		{filepath.Join(e.ws, "src", "a.go"), e.workdir() + "/src/a.go"},
		{filepath.Join(data, "x.csv"), "/data/x.csv"},
	}
	for _, tt := range tests {
		if got, ok := m.ToContainer(tt.host); !ok || got != tt.container {
			t.Errorf("ToContainer(%s) = %q, %v; want %s", tt.host, got, ok, tt.container)
		}
		if got, ok := m.ToHost(tt.container); !ok || got != tt.host {
			t.Errorf("ToHost(%s) = %q, %v; want %s", tt.container, got, ok, tt.host)
		}
	}
	if got, ok := m.ToHost("/cache/x"); ok {
		t.Errorf("a volume maps to the host: %q", got)
	}

	// The engine is down: the mount it would have.
	e.m.Workspace(e.ws).forget()
	e.mem.SetDown(true)
	if m, err = w.Mapper(ctx); err != nil {
		t.Fatalf("Mapper with the engine down: %v", err)
	}
	if _, ok := m.ToContainer(filepath.Join(data, "x.csv")); ok {
		t.Errorf("with the engine down the mapper knows the instance's mounts")
	}
	e.mem.SetDown(false)
	e.mem.SetError("Find", errors.New("memory: injected"))
	if _, err = w.Mapper(ctx); err == nil {
		t.Errorf("Mapper hides an engine error")
	}
}

// A synced workspace maps paths like a bound one.
func TestSyncedMapper(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	c, _ := e.client(nil, false)
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	want := []backends.Mount{{Host: e.ws, Container: e.workdir(), Type: MountSync}}
	if diff := cmp.Diff(want, UserMounts(MountsOf(res.Instance.Instance))); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	e.m.Workspace(e.ws).forget()
	m, err := e.m.Workspace(e.ws).Mapper(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := m.ToHost(e.workdir() + "/x"); !ok || got != filepath.Join(e.ws, "x") {
		t.Errorf("ToHost = %q, %v", got, ok)
	}
}

// Workspaces are keyed by their real path; a path through a symlink maps
// too.
func TestToContainerThroughSymlink(t *testing.T) {
	real, err := ResolveWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(real, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := t.TempDir()
	link := filepath.Join(links, "ws")
	if err := os.Symlink(real, link); err != nil {
		t.Skipf("no symlinks: %v", err)
	}
	m, err := pathmap.New(pathmap.HostFlavor(), []pathmap.Mount{{Host: real, Container: "/workspaces/p"}})
	if err != nil {
		t.Fatal(err)
	}
	uri := func(p string) string { return (&url.URL{Scheme: "file", Path: p}).String() }
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{filepath.Join(real, "src", "a.go"), "/workspaces/p/src/a.go", true},
		{filepath.Join(link, "src", "a.go"), "/workspaces/p/src/a.go", true},
		{filepath.Join(link, "new", "dir", "b.go"), "/workspaces/p/new/dir/b.go", true},
		{link, "/workspaces/p", true},
		{uri(filepath.Join(link, "src", "a.go")), "file:///workspaces/p/src/a.go", true},
		{filepath.Join(links, "elsewhere"), "", false},
		{"relative/a.go", "", false},
		{"file://%zz", "", false},
		{"http://example.com/a.go", "", false},
	}
	for _, tt := range tests {
		got, ok := ToContainer(m, tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ToContainer(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestList(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	e.m.SetAgents(nil, "agent disabled for the test")
	e.m.SetFastPath(false)
	c, _ := e.client(nil, false)
	e.run(c, "true")
	ws2, err := ResolveWorkspace(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(testCtx(t), ExecOptions{Workspace: ws2, Argv: []string{"true"}}, 0); err != nil {
		t.Fatal(err)
	}
	list, err := e.m.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range list {
		got = append(got, in.Workspace+" "+in.Backend+" "+in.Agent.Reason)
	}
	want := []string{e.ws + " memory agent disabled for the test", ws2 + " memory agent disabled for the test"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if on, why := e.m.AgentEnabled(); on || why != "agent disabled for the test" {
		t.Errorf("AgentEnabled = %v, %q", on, why)
	}
	if e.m.Backend() != e.b || e.m.Workspace(e.ws).Manager() != e.m || e.m.Workspace(e.ws).Path() != e.ws || c.Manager() != e.m {
		t.Errorf("the accessors disagree")
	}
	e.mem.SetDown(true)
	if _, err := e.m.List(testCtx(t)); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("List with the engine down: %v", err)
	}
}

// A frozen engine makes metadata calls fail as unavailable within
// metaTimeout rather than hang; it doesn't keep a client's Close.
func TestFrozenEngine(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles("")})
	c, sink := e.client(nil, true)
	p, err := c.Exec(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "infinity"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	e.mem.Freeze()

	t.Run("status", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		_, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("Status: %v", err)
		}
		if d := time.Since(start); d > metaTimeout+time.Second {
			t.Errorf("Status took %v", d)
		}
	})
	t.Run("list", func(t *testing.T) {
		t.Parallel()
		if _, err := e.m.List(testCtx(t)); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("List: %v", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		c.Close(context.Background())
		if d := time.Since(start); d > closeBudget+time.Second {
			t.Errorf("Close took %v", d)
		}
		if ex := sink.waitExit(t, p.ID()); ex.Status.Signal != "SIGTERM" {
			t.Errorf("the process ended with %+v", ex)
		}
	})
}

// composeFiles is a Compose workspace whose devcontainer.json adds extra.
func composeFiles(extra string) map[string]string {
	return map[string]string{
		".devcontainer/devcontainer.json": `{"dockerComposeFile": ["../compose.yml"], "forwardPorts": ["db:5432"], ` + extra + `}`,
		"compose.yml":                     "services:\n  app:\n    image: x\n  db:\n    image: y\n",
	}
}

// A Compose configuration becomes a Spec whose Compose part names the
// project, and the rest of which applies to the dev service.
func TestSpecCompose(t *testing.T) {
	tests := []struct {
		extra string
		want  backends.ComposeSpec
	}{
		{`"service": "app"`, backends.ComposeSpec{Service: "app"}},
		{`"service": "app", "runServices": ["db"], "overrideCommand": false`, backends.ComposeSpec{Service: "app", RunServices: []string{"db"}, KeepCommand: true}},
	}
	for _, tt := range tests {
		e := newMemEnv(t, memEnvOptions{Files: composeFiles(tt.extra), Image: "-"})
		cfg, err := e.m.Workspace(e.ws).Config("", "")
		if err != nil {
			t.Fatal(err)
		}
		spec, err := e.m.spec(e.ws, cfg)
		if err != nil {
			t.Fatalf("spec: %v", err)
		}
		want := tt.want
		want.Files = []string{filepath.Join(e.ws, "compose.yml")}
		want.Project = devcontainer.ProjectName(filepath.Base(e.ws))
		want.Dir = e.ws
		want.StateDir = composeStateDir(spec.Name)
		if spec.Compose == nil {
			t.Fatalf("spec.Compose is nil")
		}
		if diff := cmp.Diff(want, *spec.Compose); diff != "" {
			t.Errorf("spec.Compose (-want +got):\n%s", diff)
		}
		if spec.Image != "" || len(spec.Mounts) == 0 || spec.Mounts[0].Host != e.ws {
			t.Errorf("spec: image %q, mounts %+v; want no image and the workspace mount", spec.Image, spec.Mounts)
		}
	}
}
