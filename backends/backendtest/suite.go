package backendtest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
)

// Harness adapts one backend to the conformance suite.
type Harness struct {
	// Backend is the backend under test, connected to a real daemon.
	Backend backends.Backend
	// Image is an image the backend can run (the busybox test image).
	Image string
	// RemoveBehind deletes an instance directly through the engine, as a
	// user would, without telling berth.
	RemoveBehind func(ctx context.Context, id string) error
	// CreateForeign creates a container without berth's labels under the
	// given name and returns a cleanup.
	CreateForeign func(ctx context.Context, name string) (cleanup func(), err error)
	// Kernel says processes run on a real kernel, whose /proc and limits
	// show the spec's engine settings; the memory backend has none.
	Kernel bool
	// Remote says the engine is remote: specs bind no host folder, as
	// berth's sync mode makes them.
	Remote bool
	// NoUlimits leaves resource limits out of EngineSettings: Podman
	// fills the limits a spec doesn't set with ones it can't raise to
	// where berth runs without CAP_SYS_RESOURCE (some VMs and sandboxes).
	NoUlimits bool
	// WorkspaceDir, when set, makes a workspace folder for t (removed
	// with it) in place of t.TempDir(): a rootless engine's user must be
	// able to reach it.
	WorkspaceDir func(t *testing.T) string
}

// Run runs every contract behaviour of backends.Backend against h.
func Run(t *testing.T, h Harness) {
	Need(t, h.Backend)
	s := &suite{h: h, b: h.Backend}
	t.Run("EnsureIsIdempotent", s.ensureIdempotent)
	t.Run("ConcurrentEnsureMakesOne", s.concurrentEnsure)
	t.Run("FindAndList", s.findAndList)
	t.Run("StopAndStart", s.stopAndStart)
	t.Run("Exec", s.exec)
	t.Run("ExecSignalsGroup", s.execSignals)
	t.Run("ExecCommandNotFound", s.execNotFound)
	t.Run("ExecMore", s.execMore)
	t.Run("Copy", s.copy)
	t.Run("MissingImage", s.missingImage)
	t.Run("Remove", s.remove)
	t.Run("RemovedBehindBack", s.removedBehind)
	t.Run("ForeignInstanceUntouched", s.foreign)
	t.Run("Events", s.events)
	t.Run("EngineSettings", s.engineSettings)
	t.Run("Resources", s.resources)
	t.Run("Limits", s.limits)
}

// limits: a backends.Limiter creates an instance under the spec's limits,
// reports them with its usage, and changes them while it runs; on a real
// kernel a busy loop stays under the CPU limit.
func (s *suite) limits(t *testing.T) {
	l, ok := s.b.(backends.Limiter)
	if !ok {
		t.Skip("not a Limiter")
	}
	spec := s.spec(t)
	spec.Limits = backends.Limits{Memory: 64 << 20, CPUs: 0.5, Pids: 100}
	if c, ok := s.b.(backends.Checker); ok {
		for _, u := range c.Unsupported(spec) {
			if strings.HasPrefix(u, "limits") {
				t.Skipf("the engine says it can't: %s", u)
			}
		}
	}
	inst, _, err := s.b.Ensure(ctxFor(t), spec)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	var busy backends.Process
	if s.h.Kernel {
		busy, err = s.b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "while :; do :; done"}, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			t.Fatalf("Exec: %v", err)
		}
		t.Cleanup(func() { _ = busy.Kill(context.Background()) })
	}
	u, err := l.Usage(ctxFor(t), inst.ID)
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	t.Logf("usage under %+v: %+v", spec.Limits, u)
	if u.Limits != spec.Limits {
		t.Errorf("Usage limits = %+v, want %+v", u.Limits, spec.Limits)
	}
	if u.Processes < 1 {
		t.Errorf("Usage processes = %d, want at least pid 1", u.Processes)
	}
	if s.h.Kernel {
		if u.Memory <= 0 || u.Memory > spec.Limits.Memory {
			t.Errorf("Usage memory = %d, want above 0 and within the %d limit", u.Memory, spec.Limits.Memory)
		}
		// Half a CPU, measured over a second on a loaded machine.
		if u.CPUPercent <= 2 || u.CPUPercent > 75 {
			t.Errorf("Usage CPU = %.1f%% with a busy loop under a 0.5 CPU limit, want 2-75%%", u.CPUPercent)
		}
	}
	want := backends.Limits{Memory: 128 << 20, CPUs: 0.5, Pids: 200}
	got, err := l.SetLimits(ctxFor(t), inst.ID, backends.Limits{Memory: 128 << 20, Pids: 200})
	if errors.Is(err, backends.ErrNotSupported) {
		// "Where the engine allows": it must say so, and change nothing.
		if u, err := l.Usage(ctxFor(t), inst.ID); err != nil || u.Limits != spec.Limits {
			t.Errorf("after an unsupported SetLimits: Usage limits = %+v, %v; want %+v", u.Limits, err, spec.Limits)
		}
		t.Skipf("SetLimits on a running instance: %v", err)
	}
	if err != nil || got != want {
		t.Fatalf("SetLimits = %+v, %v; want %+v", got, err, want)
	}
	if got, err := l.SetLimits(ctxFor(t), inst.ID, backends.Limits{}); err != nil || got != want {
		t.Errorf("SetLimits of nothing = %+v, %v; want the limits in effect, %+v", got, err, want)
	}
	u, err = l.Usage(ctxFor(t), inst.ID)
	if err != nil || u.Limits != want {
		t.Errorf("after SetLimits: Usage limits = %+v, %v; want %+v", u.Limits, err, want)
	}
	if got, err := s.b.Find(ctxFor(t), spec.Workspace); err != nil || got.ID != inst.ID || got.State != backends.StateRunning {
		t.Errorf("after SetLimits: Find = %+v, %v; want the same instance, still running", got, err)
	}
	if err := s.b.Stop(ctxFor(t), inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SetLimits(ctxFor(t), inst.ID, backends.Limits{Pids: 300}); !errors.Is(err, backends.ErrNotRunning) {
		t.Errorf("SetLimits on a stopped instance: %v, want ErrNotRunning", err)
	}
}

// resources: a backends.Resourcer tells its engine host's CPUs and memory.
func (s *suite) resources(t *testing.T) {
	r, ok := s.b.(backends.Resourcer)
	if !ok {
		t.Skip("not a Resourcer")
	}
	res, err := r.Resources(ctxFor(t))
	if err != nil || res.CPUs < 1 || res.Memory < 1<<20 {
		t.Errorf("Resources = %+v, %v; want the host's CPUs and memory", res, err)
	}
	t.Logf("%+v", res)
}

// engineSettings: the spec's environment and labels reach the instance,
// and, on a real kernel, its added capabilities and resource limits,
// unless the backend names them as unsupported.
func (s *suite) engineSettings(t *testing.T) {
	spec := s.spec(t)
	spec.Env = []string{"BERTH_SUITE=engine settings"}
	spec.Labels["com.example.suite"] = "yes"
	spec.CapAdd = []string{"SYS_PTRACE"}
	if !s.h.NoUlimits {
		spec.Ulimits = []backends.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}
	}
	unsupported := ""
	if c, ok := s.b.(backends.Checker); ok {
		unsupported = strings.Join(c.Unsupported(spec), "\n")
	}
	inst, _, err := s.b.Ensure(ctxFor(t), spec)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if code, out, _ := run(t, s.b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "echo $BERTH_SUITE"}}); code != 0 || out != "engine settings\n" {
		t.Errorf("env: code %d, %q", code, out)
	}
	found, err := s.b.Find(ctxFor(t), spec.Workspace)
	if err != nil || found.Labels["com.example.suite"] != "yes" {
		t.Errorf("Find: labels %v, %v; want com.example.suite=yes", found.Labels, err)
	}
	if !s.h.Kernel {
		return
	}
	if !strings.Contains(unsupported, "SYS_PTRACE") {
		_, out, _ := run(t, s.b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "grep CapEff /proc/self/status | cut -f2"}})
		var caps uint64
		fmt.Sscanf(strings.TrimSpace(out), "%x", &caps)
		const capSysPtrace = 19
		if caps&(1<<capSysPtrace) == 0 {
			t.Errorf("CapEff %s lacks SYS_PTRACE", strings.TrimSpace(out))
		}
	}
	if !strings.Contains(unsupported, "ulimit") && !s.h.NoUlimits {
		if _, out, _ := run(t, s.b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "ulimit -Hn"}}); out != "2048\n" {
			t.Errorf("hard nofile limit %q, want 2048", out)
		}
	}
}

type suite struct {
	h Harness
	b backends.Backend
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// spec makes a spec for a fresh temp workspace, removed with the test.
func (s *suite) spec(t *testing.T) backends.Spec {
	t.Helper()
	dir := t.TempDir
	if s.h.WorkspaceDir != nil {
		dir = func() string { return s.h.WorkspaceDir(t) }
	}
	ws, err := filepath.EvalSymlinks(dir())
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("berth-test-%d", time.Now().UnixNano())
	wd := "/workspaces/" + filepath.Base(ws)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := s.b.Find(ctx, ws); err == nil {
			_ = s.b.Remove(ctx, inst.ID)
		}
	})
	spec := backends.Spec{
		Workspace: ws,
		Name:      name,
		Image:     s.h.Image,
		Workdir:   wd,
		Mounts:    []backends.Mount{{Host: ws, Container: wd}},
		Labels:    map[string]string{LabelTest: t.Name()},
	}
	if s.h.Remote {
		spec.Mounts = nil
	}
	return spec
}

func (s *suite) up(t *testing.T) (backends.Spec, backends.Instance) {
	t.Helper()
	spec := s.spec(t)
	inst, created, err := s.b.Ensure(ctxFor(t), spec)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if !created {
		t.Fatalf("Ensure of a new workspace: created = false")
	}
	return spec, inst
}

func (s *suite) ensureIdempotent(t *testing.T) {
	spec, first := s.up(t)
	if first.State != backends.StateRunning {
		t.Errorf("state = %q, want running", first.State)
	}
	if first.Workspace != spec.Workspace || first.Workdir != spec.Workdir || first.Name != spec.Name {
		t.Errorf("instance = %+v, want workspace %s workdir %s name %s", first, spec.Workspace, spec.Workdir, spec.Name)
	}
	if s.h.Remote {
		if len(first.Mounts) != 0 {
			t.Errorf("mounts = %v on a remote engine, want none", first.Mounts)
		}
	} else if len(first.Mounts) != 1 || first.Mounts[0] != spec.Mounts[0] {
		t.Errorf("mounts = %v, want %v", first.Mounts, spec.Mounts)
	}
	again, created, err := s.b.Ensure(ctxFor(t), spec)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if created || again.ID != first.ID {
		t.Errorf("second Ensure: created=%v id=%s, want false %s", created, again.ID, first.ID)
	}
}

func (s *suite) concurrentEnsure(t *testing.T) {
	spec := s.spec(t)
	const n = 20
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, _, err := s.b.Ensure(ctxFor(t), spec)
			ids[i], errs[i] = inst.ID, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Ensure #%d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("Ensure #%d gave %s, #0 gave %s", i, ids[i], ids[0])
		}
	}
	count := 0
	list, err := s.b.List(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range list {
		if inst.Workspace == spec.Workspace {
			count++
		}
	}
	if count != 1 {
		t.Errorf("%d instances for the workspace, want 1", count)
	}
}

func (s *suite) findAndList(t *testing.T) {
	spec, inst := s.up(t)
	ctx := ctxFor(t)
	got, err := s.b.Find(ctx, spec.Workspace)
	if err != nil || got.ID != inst.ID {
		t.Fatalf("Find = %v, %v; want %s", got.ID, err, inst.ID)
	}
	if _, err := s.b.Find(ctx, spec.Workspace+"-missing"); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Find of unknown workspace: err = %v, want ErrNotFound", err)
	}
	list, err := s.b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range list {
		if in.Labels[backends.LabelManaged] != "true" {
			t.Errorf("List returned unmanaged instance %s", in.Name)
		}
		found = found || in.ID == inst.ID
	}
	if !found {
		t.Errorf("List does not contain %s", inst.Name)
	}
}

func (s *suite) stopAndStart(t *testing.T) {
	spec, inst := s.up(t)
	ctx := ctxFor(t)
	if err := s.b.Stop(ctx, inst.ID); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.b.Stop(ctx, inst.ID); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	got, err := s.b.Find(ctx, spec.Workspace)
	if err != nil || got.State != backends.StateStopped {
		t.Fatalf("after Stop: state %q err %v, want stopped", got.State, err)
	}
	if _, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard}); !errors.Is(err, backends.ErrNotRunning) {
		t.Errorf("Exec in stopped instance: err = %v, want ErrNotRunning", err)
	}
	again, created, err := s.b.Ensure(ctx, spec)
	if err != nil {
		t.Fatalf("Ensure after Stop: %v", err)
	}
	if created || again.ID != inst.ID || again.State != backends.StateRunning {
		t.Errorf("Ensure after Stop: created=%v id=%s state=%s; want the same instance running", created, again.ID, again.State)
	}
}

// run executes argv and returns exit code, stdout and stderr.
func run(t *testing.T, b backends.Backend, id string, spec backends.ExecSpec) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	ctx := ctxFor(t)
	p, err := b.Exec(ctx, id, spec)
	if err != nil {
		t.Fatalf("Exec %v: %v", spec.Argv, err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait %v: %v", spec.Argv, err)
	}
	return st.Code, out.String(), errb.String()
}

func (s *suite) exec(t *testing.T) {
	spec, inst := s.up(t)
	tests := []struct {
		name   string
		spec   backends.ExecSpec
		code   int
		stdout string
		stderr string
	}{
		{"stdout and stderr apart", backends.ExecSpec{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, 0, "out\n", "err\n"},
		{"exit code", backends.ExecSpec{Argv: []string{"sh", "-c", "exit 7"}}, 7, "", ""},
		{"env", backends.ExecSpec{Argv: []string{"sh", "-c", "echo $GREETING"}, Env: []string{"GREETING=hello there"}}, 0, "hello there\n", ""},
		{"default cwd is the image's", backends.ExecSpec{Argv: []string{"pwd"}, Cwd: spec.Workdir}, 0, spec.Workdir + "\n", ""},
		{"cwd", backends.ExecSpec{Argv: []string{"pwd"}, Cwd: "/tmp"}, 0, "/tmp\n", ""},
		{"user by name", backends.ExecSpec{Argv: []string{"id", "-u"}, User: "user"}, 0, "1000\n", ""},
		{"user by uid", backends.ExecSpec{Argv: []string{"id", "-u"}, User: "65534"}, 0, "65534\n", ""},
		{"stdin", backends.ExecSpec{Argv: []string{"cat"}, Stdin: strings.NewReader("line one\nline two\n")}, 0, "line one\nline two\n", ""},
		{"args kept apart", backends.ExecSpec{Argv: []string{"printf", "%s|", "a b", "$HOME", "'q'"}}, 0, "a b|$HOME|'q'|", ""},
		{"workspace is mounted", backends.ExecSpec{Argv: []string{"sh", "-c", "test -d " + spec.Workdir + " && echo yes"}}, 0, "yes\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, s.b, inst.ID, tt.spec)
			if code != tt.code || out != tt.stdout || errOut != tt.stderr {
				t.Errorf("got code %d stdout %q stderr %q; want %d %q %q", code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

func (s *suite) execSignals(t *testing.T) {
	_, inst := s.up(t)
	ctx := ctxFor(t)
	p, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{
		Argv:   []string{"sh", "-c", "sleep 1000 & sleep 1000 & wait"},
		Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the children start
	if err := p.Signal(ctx, backends.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Signal != "SIGTERM" {
		t.Errorf("exit status %+v, want killed by SIGTERM", st)
	}
	AssertNoProcess(t, s.b, inst.ID, "sleep 1000")

	p, err = s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "sleep 1000 & sleep 1000"}, Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	type waited struct {
		st  backends.ExitStatus
		err error
	}
	waitDone := make(chan waited, 1)
	go func() { // Kill must unblock a Wait already under way
		st, err := p.Wait(ctx)
		waitDone <- waited{st, err}
	}()
	if err := p.Kill(ctx); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case w := <-waitDone:
		if w.err != nil || w.st.Signal != "SIGKILL" {
			t.Errorf("Wait after Kill = %+v, %v; want killed by SIGKILL", w.st, w.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait still blocked 10 s after Kill")
	}
	AssertNoProcess(t, s.b, inst.ID, "sleep 1000")
}

// AssertNoProcess fails unless, within 2 s, no process whose command line
// is args is left in the instance.
func AssertNoProcess(t *testing.T, b backends.Backend, id, args string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, out, _ := run(t, b, id, backends.ExecSpec{Argv: []string{"ps", "-o", "pid,args"}})
		left := []string{}
		for _, line := range strings.Split(out, "\n") {
			if _, cmd, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.TrimSpace(cmd) == args {
				left = append(left, line)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left in the container: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) execNotFound(t *testing.T) {
	_, inst := s.up(t)
	for _, argv := range [][]string{{"no-such-command"}, {"/no/such/path"}} {
		_, err := s.b.Exec(ctxFor(t), inst.ID, backends.ExecSpec{Argv: argv, Stdout: io.Discard, Stderr: io.Discard})
		if !errors.Is(err, backends.ErrCommandNotFound) {
			t.Errorf("Exec %v: err = %v, want ErrCommandNotFound", argv, err)
		}
	}
}

// execMore covers the rest of Exec's contract on one instance: direct
// execs, the start errors, and stdin's end reaching a running process.
func (s *suite) execMore(t *testing.T) {
	_, inst := s.up(t)
	t.Run("direct", func(t *testing.T) {
		code, out, errOut := run(t, s.b, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, Direct: true})
		if code != 3 || out != "out\n" || errOut != "err\n" {
			t.Errorf("got code %d stdout %q stderr %q; want 3 \"out\\n\" \"err\\n\"", code, out, errOut)
		}
	})
	t.Run("direct has no signals", func(t *testing.T) {
		ctx := ctxFor(t)
		p, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"true"}, Direct: true, Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Signal(ctx, backends.SIGTERM); !errors.Is(err, backends.ErrNotSupported) {
			t.Errorf("Signal of a direct exec: err = %v, want ErrNotSupported", err)
		}
		if _, err := p.Wait(ctx); err != nil {
			t.Error(err)
		}
	})
	for _, tt := range []struct {
		name string
		spec backends.ExecSpec
		want error
	}{
		{"unknown user", backends.ExecSpec{Argv: []string{"true"}, User: "nobody-here"}, backends.ErrBadUser},
		{"missing cwd", backends.ExecSpec{Argv: []string{"pwd"}, Cwd: "/no/such/dir"}, backends.ErrBadCwd},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Stdout, tt.spec.Stderr = io.Discard, io.Discard
			if _, err := s.b.Exec(ctxFor(t), inst.ID, tt.spec); !errors.Is(err, tt.want) {
				t.Errorf("Exec: err = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("outlives the ctx of its start", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctxFor(t))
		var out bytes.Buffer
		p, err := s.b.Exec(sctx, inst.ID, backends.ExecSpec{Argv: []string{"sh", "-c", "sleep 0.5; echo done"}, Stdout: &out, Stderr: io.Discard})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait(ctxFor(t))
		if err != nil || st.Code != 0 || out.String() != "done\n" {
			t.Errorf("Wait = %+v, %v, stdout %q; want 0 \"done\\n\"", st, err, out.String())
		}
	})
	t.Run("stdin closed while running", func(t *testing.T) {
		ctx := ctxFor(t)
		pr, pw := io.Pipe()
		defer pw.Close()
		var out bytes.Buffer
		p, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"cat"}, Stdin: pr, Stdout: &out, Stderr: io.Discard})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(pw, "hello\n"); err != nil {
			t.Fatal(err)
		}
		pw.Close() // cat exits on EOF
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := p.Wait(wctx)
		if err != nil || st.Code != 0 || out.String() != "hello\n" {
			t.Errorf("Wait = %+v, %v, stdout %q; want 0 \"hello\\n\"", st, err, out.String())
		}
	})
}

func (s *suite) copy(t *testing.T) {
	_, inst := s.up(t)
	ctx := ctxFor(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := []byte("copied in\n")
	if err := tw.WriteHeader(&tar.Header{Name: "berth-copy.txt", Mode: 0o644, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Close()
	if err := s.b.CopyTo(ctx, inst.ID, "/tmp", &buf); err != nil {
		t.Fatalf("CopyTo: %v", err)
	}
	if _, out, _ := run(t, s.b, inst.ID, backends.ExecSpec{Argv: []string{"cat", "/tmp/berth-copy.txt"}}); out != string(content) {
		t.Errorf("file in container = %q, want %q", out, content)
	}
	rc, err := s.b.CopyFrom(ctx, inst.ID, "/tmp/berth-copy.txt")
	if err != nil {
		t.Fatalf("CopyFrom: %v", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(tr)
	if hdr.Name != "berth-copy.txt" || !bytes.Equal(got, content) {
		t.Errorf("CopyFrom: %s = %q, want berth-copy.txt = %q", hdr.Name, got, content)
	}
	if _, err := s.b.CopyFrom(ctx, inst.ID, "/no/such/file"); err == nil {
		t.Errorf("CopyFrom of a missing path: no error")
	}
}

func (s *suite) missingImage(t *testing.T) {
	spec := s.spec(t)
	spec.Image = "berth-test/no-such-image:404"
	_, _, err := s.b.Ensure(ctxFor(t), spec)
	if !errors.Is(err, backends.ErrImageNotFound) {
		t.Fatalf("Ensure with a missing image: err = %v, want ErrImageNotFound", err)
	}
	if !strings.Contains(err.Error(), spec.Image) {
		t.Errorf("error %q does not name the image", err)
	}
}

func (s *suite) remove(t *testing.T) {
	spec, inst := s.up(t)
	ctx := ctxFor(t)
	if err := s.b.Remove(ctx, inst.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := s.b.Find(ctx, spec.Workspace); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Find after Remove: err = %v, want ErrNotFound", err)
	}
	if err := s.b.Remove(ctx, inst.ID); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("second Remove: err = %v, want ErrNotFound", err)
	}
}

func (s *suite) removedBehind(t *testing.T) {
	if s.h.RemoveBehind == nil {
		t.Skip("harness cannot remove behind the backend's back")
	}
	spec, inst := s.up(t)
	ctx := ctxFor(t)
	if err := s.h.RemoveBehind(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.Find(ctx, spec.Workspace); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Find of a removed instance: err = %v, want ErrNotFound", err)
	}
	if _, err := s.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"true"}, Stdout: io.Discard, Stderr: io.Discard}); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Exec in removed instance: err = %v, want ErrNotFound", err)
	}
	if err := s.b.Stop(ctx, inst.ID); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Stop of removed instance: err = %v, want ErrNotFound", err)
	}
	again, created, err := s.b.Ensure(ctx, spec)
	if err != nil || !created || again.ID == inst.ID {
		t.Errorf("Ensure after removal: created=%v id=%s err=%v; want a new instance", created, again.ID, err)
	}
}

func (s *suite) foreign(t *testing.T) {
	if s.h.CreateForeign == nil {
		t.Skip("harness cannot create foreign instances")
	}
	spec := s.spec(t)
	ctx := ctxFor(t)
	cleanup, err := s.h.CreateForeign(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if _, _, err := s.b.Ensure(ctx, spec); !errors.Is(err, backends.ErrForeign) {
		t.Errorf("Ensure over a foreign container of the same name: err = %v, want ErrForeign", err)
	}
	list, err := s.b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.Name == spec.Name {
			t.Errorf("List includes the foreign container %s", in.Name)
		}
	}
}

// events checks a Watcher's instance events: each of berth's actions on
// one instance shows up, with its ID, in order, within a few seconds.
func (s *suite) events(t *testing.T) {
	w, ok := s.b.(backends.Watcher)
	if !ok {
		t.Skipf("%s does not implement backends.Watcher", s.b.Name())
	}
	spec, inst := s.up(t)
	ctx := ctxFor(t)
	if err := s.b.Stop(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	evs := make(chan backends.Event, 100)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- w.Watch(wctx, func(ev backends.Event) {
			if ev.ID == inst.ID || ev.ID == "" {
				evs <- ev
			}
		})
	}()
	defer func() {
		cancel()
		select {
		case err := <-watchErr:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Watch = %v after its ctx ended, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Watch still running 10 s after its ctx ended")
		}
	}()
	next := func(within time.Duration) (backends.Event, bool) {
		select {
		case ev := <-evs:
			return ev, true
		case <-time.After(within):
			return backends.Event{}, false
		}
	}
	ensure := func() {
		t.Helper()
		if _, _, err := s.b.Ensure(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}

	// Watch connects in the background and says nothing when it is up:
	// start the instance until its start is seen, then the stream is live.
	live := false
	for range 5 {
		ensure()
		if ev, ok := next(5 * time.Second); ok && ev.Kind == backends.EventStarted {
			live = true
			break
		}
		if err := s.b.Stop(ctx, inst.ID); err != nil {
			t.Fatal(err)
		}
		for { // drop what this round left
			if _, ok := next(time.Second); !ok {
				break
			}
		}
	}
	if !live {
		t.Fatal("no started event for the instance")
	}

	steps := []struct {
		do   func() error
		want backends.EventKind
	}{
		{func() error { return s.b.Stop(ctx, inst.ID) }, backends.EventStopped},
		{func() error { _, _, err := s.b.Ensure(ctx, spec); return err }, backends.EventStarted},
		{func() error { return s.b.Stop(ctx, inst.ID) }, backends.EventStopped},
		{func() error { return s.b.Remove(ctx, inst.ID) }, backends.EventRemoved},
	}
	for i, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		ev, ok := next(10 * time.Second)
		if !ok {
			t.Fatalf("step %d: no %s event within 10 s", i, step.want)
		}
		if ev.Kind != step.want || ev.ID != inst.ID || ev.Workspace != spec.Workspace {
			t.Fatalf("step %d: event %+v, want %s of %s (workspace %s)", i, ev, step.want, inst.ID, spec.Workspace)
		}
	}
	if ev, ok := next(time.Second); ok {
		t.Errorf("unexpected event after the removal: %+v", ev)
	}
}
