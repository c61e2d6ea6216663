package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

// These tests hold berth to docs/protocol.md, "The instance's lifecycle"
// and "Notification berth/instanceChanged": hooks run once per container
// whichever call creates it, shutdownAction counts only editor sessions,
// changes made outside berth reach the client, and berth exits promptly.

// hooksLog is /tmp/hooks.log of a container that hooksWorkspace's
// configuration made and started once.
const hooksLog = "create\nupdate\npostcreate\nstart\n"

// hooksWorkspace makes a workspace whose devcontainer.json logs each
// lifecycle hook to /tmp/hooks.log. Its shutdownAction is the spec's
// default, stopContainer; every call waits for every hook (waitFor
// postStartCommand: TestWaitForDefault covers the default).
func hooksWorkspace(t *testing.T, e engine) string {
	t.Helper()
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	"waitFor": "postStartCommand",
	"onCreateCommand": "echo create >> /tmp/hooks.log",
	"updateContentCommand": "echo update >> /tmp/hooks.log",
	"postCreateCommand": "echo postcreate >> /tmp/hooks.log",
	"postStartCommand": "echo start >> /tmp/hooks.log"
}`)
	trustWorkspace(t, ws)
	return ws
}

// hooksSoFar reads /tmp/hooks.log with berth/run; "" and an error when the
// call fails.
func (b *berth) hooksSoFar() (string, error) {
	var run rpc.RunResult
	if err := b.call("berth/run", rpc.ExecParams{Argv: []string{"cat", "/tmp/hooks.log"}}, &run); err != nil {
		return "", err
	}
	if run.Code != 0 {
		return "", fmt.Errorf("cat /tmp/hooks.log: code %d, stderr %q", run.Code, run.Stderr)
	}
	return run.Stdout, nil
}

// checkHooks fails t unless /tmp/hooks.log, read through b, is want.
func checkHooks(t *testing.T, b *berth, when, want string) {
	t.Helper()
	got, err := b.hooksSoFar()
	if err != nil {
		t.Errorf("%s: reading the hooks' log: %v", when, err)
		return
	}
	if got != want {
		t.Errorf("%s: hooks' log = %q, want %q", when, got, want)
	}
}

// cli runs the berth binary as a command on ws, the way a terminal does.
func cli(t *testing.T, e engine, ws string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"--backend", e.name, "--workspace", ws}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	return runCLI(t, cmd)
}

// runCLI runs a berth command and returns its output and exit code.
func runCLI(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// find returns ws's instance as the engine reports it.
func find(t *testing.T, e engine, ws string) (backends.Instance, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.b.Find(ctx, ws)
}

// outside does to ws's container what a user does with the engine's own
// CLI, behind berth's back: "kill", "restart" or "remove".
func outside(t *testing.T, e engine, ws, what string) {
	t.Helper()
	inst, err := find(t, e, ws)
	if err != nil {
		t.Fatalf("%s outside berth: %v", what, err)
	}
	name := strings.TrimPrefix(inst.Name, "/")
	args := map[string]map[string][]string{
		docker.Name: {
			"kill":    {"docker", "kill", name},
			"restart": {"docker", "restart", "-t", "2", name},
			"remove":  {"docker", "rm", "-f", name},
		},
		incus.Name: {
			"kill":    {"incus", "stop", "--force", name},
			"restart": {"incus", "restart", "--force", name},
			"remove":  {"incus", "delete", "--force", name},
		},
	}[e.name][what]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// mark returns how many notifications b has had, for watchFor and
// notesSince.
func (b *berth) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.notes)
}

// notesSince returns the params of every notification of method from the
// from'th on.
func (b *berth) notesSince(method string, from int) []json.RawMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []json.RawMessage
	for _, n := range b.notes[from:] {
		if n.method == method {
			out = append(out, n.params)
		}
	}
	return out
}

// exitOf matches pid's berth/exit, for watchFor.
func exitOf(pid string) func(string, json.RawMessage) bool {
	return func(method string, params json.RawMessage) bool {
		var p rpc.ExitParams
		return method == "berth/exit" && json.Unmarshal(params, &p) == nil && p.PID == pid
	}
}

// changed matches a berth/instanceChanged that ok accepts, for watchFor.
func changed(ok func(rpc.InstanceChangedParams) bool) func(string, json.RawMessage) bool {
	return func(method string, params json.RawMessage) bool {
		var p rpc.InstanceChangedParams
		return method == "berth/instanceChanged" && json.Unmarshal(params, &p) == nil && ok(p)
	}
}

// arrival is a notification and when the test noticed it: at once, since
// waiters wake with every notification.
type arrival struct {
	at     time.Time
	params json.RawMessage
}

// watchFor waits in the background, for up to limit, for a notification
// from the from'th on that ok accepts. The channel gets it, or is closed.
func (b *berth) watchFor(from int, limit time.Duration, ok func(method string, params json.RawMessage) bool) <-chan arrival {
	c := make(chan arrival, 1)
	deadline := time.Now().Add(limit)
	timer := time.AfterFunc(limit, b.cond.Broadcast)
	go func() {
		defer close(c)
		defer timer.Stop()
		b.mu.Lock()
		defer b.mu.Unlock()
		for {
			for _, n := range b.notes[from:] {
				if ok(n.method, n.params) {
					c <- arrival{time.Now(), n.params}
					return
				}
			}
			if !time.Now().Before(deadline) {
				return
			}
			b.cond.Wait()
		}
	}()
	return c
}

// arrivedBy returns what c delivered by deadline.
func arrivedBy(c <-chan arrival, deadline time.Time) (arrival, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case a, ok := <-c:
		return a, ok && !a.at.After(deadline)
	case <-timer.C:
	}
	// A deadline already past and an arrival both ready: select picks
	// either, and what arrived in time still counts.
	select {
	case a, ok := <-c:
		return a, ok && !a.at.After(deadline)
	default:
		return arrival{}, false
	}
}

// exited waits up to limit for berth to exit, and returns how long it
// took; it fails t if berth is still running after limit or exited with an
// error. A berth that hangs for 15 s more gets SIGQUIT, so that its
// goroutines show in the log, and then SIGKILL.
func (b *berth) exited(t *testing.T, start time.Time, limit time.Duration, why string) time.Duration {
	t.Helper()
	select {
	case <-b.waited:
	case <-time.After(time.Until(start.Add(limit))):
		t.Errorf("berth still running %v after %s, want it gone within %v", time.Since(start).Round(time.Millisecond), why, limit)
		select {
		case <-b.waited: // late, but measured
		case <-time.After(15 * time.Second):
			t.Errorf("berth still running %v after %s: sending SIGQUIT for its goroutines, then SIGKILL", time.Since(start).Round(time.Millisecond), why)
			b.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-b.waited:
			case <-time.After(5 * time.Second):
				b.cmd.Process.Kill()
				<-b.waited
			}
			return time.Since(start)
		}
	}
	took := time.Since(start)
	t.Logf("berth exited %v after %s", took.Round(time.Millisecond), why)
	if b.err != nil {
		t.Errorf("berth exited with %v after %s, want code 0", b.err, why)
	}
	return took
}

// plainBerth builds berth without -race, once, next to the agent. Tests
// that hold berth to a deadline on its exit run it: the race runtime's own
// exit takes one to two seconds, which the product doesn't have.
var plainBerth = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(berthBin), "berth-norace")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building berth without -race: %v\n%s", err, out)
	}
	return bin, nil
})

// startPlainBerth is startBerth with the berth that plainBerth builds.
func startPlainBerth(t *testing.T, e engine, args ...string) *berth {
	t.Helper()
	bin, err := plainBerth()
	if err != nil {
		t.Fatal(err)
	}
	return startBerthBin(t, bin, e, args...)
}

// Hooks run once per container when a process call, not berth/up, creates
// it; a later up, another berth process, and a restart outside berth agree.
func TestHooksProtocolFirst(t *testing.T) { eachBackend(t, testHooksProtocolFirst) }

func testHooksProtocolFirst(t *testing.T, e engine) {
	ws := hooksWorkspace(t, e)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})

	// The very first call is berth/exec: the hooks have run before it.
	var ex rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"cat", "/tmp/hooks.log"}}, &ex)
	if exit, out := b.waitExit(ex.PID); exit.Code != 0 || out["stdout"] != hooksLog {
		t.Errorf("first call berth/exec: exit %+v, stdout %q, stderr %q; want the log %q", exit, out["stdout"], out["stderr"], hooksLog)
	}

	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	if inst.Created || inst.State != "running" || len(inst.Hooks) != 0 {
		t.Errorf("up after exec created it = created %v, state %q, hooks %+v; want the same container, no hooks run", inst.Created, inst.State, inst.Hooks)
	}
	checkHooks(t, b, "after berth/up", hooksLog)

	b2 := startBerth(t, e)
	b2.initialize(ws, &rpc.InitializationOptions{})
	checkHooks(t, b2, "a second berth process's first berth/run", hooksLog)

	// A restart behind berth's back: postStartCommand once more, whichever
	// berth process notices first, and never the create hooks.
	outside(t, e, ws, "restart")
	checkHooks(t, b, "after a restart outside berth", hooksLog+"start\n")
	checkHooks(t, b2, "after a restart outside berth, from the second berth", hooksLog+"start\n")
}

// Hooks run once per container when a CLI command creates it; `berth up`
// from the CLI afterwards adopts it.
func TestHooksCLIFirst(t *testing.T) { eachBackend(t, testHooksCLIFirst) }

func testHooksCLIFirst(t *testing.T, e engine) {
	ws := hooksWorkspace(t, e)
	// The pause and the exit code make sure that what berth exec reports
	// is its command's own output and exit, not a hook's.
	out, errOut, code := cli(t, e, ws, "exec", "--", "sh", "-c", "sleep 0.5; cat /tmp/hooks.log; exit 3")
	if code != 3 || out != hooksLog {
		t.Errorf("berth exec as the first call: code %d, stdout %q, stderr %q; want code 3 and the log %q", code, out, errOut, hooksLog)
	}
	out, errOut, code = cli(t, e, ws, "up")
	var inst rpc.Instance
	if err := json.Unmarshal([]byte(out), &inst); err != nil {
		t.Fatalf("berth up: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code != 0 {
		t.Errorf("berth up: code %d, stderr %q; want 0", code, errOut)
	}
	if inst.Created || inst.State != "running" || len(inst.Hooks) != 0 {
		t.Errorf("berth up after berth exec = created %v, state %q, hooks %+v; want the same container, no hooks run", inst.Created, inst.State, inst.Hooks)
	}
	if out, errOut, code = cli(t, e, ws, "exec", "--", "cat", "/tmp/hooks.log"); code != 0 || out != hooksLog {
		t.Errorf("berth exec after berth up: code %d, stdout %q, stderr %q; want the log %q unchanged", code, out, errOut, hooksLog)
	}
}

// shutdownAction stopContainer counts editor sessions only: `berth up`
// leaves the container running; the last of two editor sessions to leave
// stops it, and not before.
func TestShutdownActionEditorSessions(t *testing.T) { eachBackend(t, testShutdownActionEditorSessions) }

func testShutdownActionEditorSessions(t *testing.T, e engine) {
	ws := hooksWorkspace(t, e)
	out, errOut, code := cli(t, e, ws, "up")
	var inst rpc.Instance
	if err := json.Unmarshal([]byte(out), &inst); err != nil || !inst.Created {
		t.Fatalf("berth up: code %d, stdout %q, stderr %q; want a new container", code, out, errOut)
	}
	if code != 0 {
		t.Errorf("berth up: code %d, stderr %q; want 0", code, errOut)
	}
	// It must not stop it, now or a little later.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning {
			t.Fatalf("within 3 s of berth up's exit: state %q, %v; want running", got.State, err)
		}
	}

	a, b := startBerth(t, e), startBerth(t, e)
	for _, c := range []*berth{a, b} {
		c.initialize(ws, &rpc.InitializationOptions{})
		c.mustCall("berth/up", rpc.UpParams{}, &inst)
	}

	start := time.Now()
	a.stdin.Close()
	a.exited(t, start, 10*time.Second, "stdin EOF with another editor session attached")
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning {
		t.Errorf("after the first of two editor sessions left: state %q, %v; want running", got.State, err)
	}
	// Not a moment later either: nothing of a's should stop it behind b.
	time.Sleep(time.Second)
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning {
		t.Errorf("1 s after the first of two editor sessions left: state %q, %v; want running", got.State, err)
	}

	start = time.Now()
	b.stdin.Close()
	b.exited(t, start, 10*time.Second, "stdin EOF of the last editor session")
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateStopped {
		t.Errorf("after the last editor session left: state %q, %v; want stopped (shutdownAction stopContainer)", got.State, err)
	}
}

// A container killed or removed outside berth: the client hears of it,
// its processes end, and the next call brings the container back (with
// its create hooks, when it was made anew).
func TestOutsideKillAndRemove(t *testing.T) { eachBackend(t, testOutsideKillAndRemove) }

func testOutsideKillAndRemove(t *testing.T, e engine) {
	ws := hooksWorkspace(t, e)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var ex rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &ex)

	isChanged := func(state string, reasons ...string) func(string, json.RawMessage) bool {
		return changed(func(p rpc.InstanceChangedParams) bool {
			return p.Workspace == ws && p.State == state && (len(reasons) == 0 || slices.Contains(reasons, p.Reason))
		})
	}

	// The engine's CLI takes its time to kill; deadlines count from when
	// it is done, and what arrives is timed as it arrives.
	from := b.mark()
	exitC := b.watchFor(from, time.Minute, exitOf(ex.PID))
	stoppedC := b.watchFor(from, time.Minute, isChanged("stopped", "killed", "stopped outside berth"))
	begun := time.Now()
	outside(t, e, ws, "kill")
	killed := time.Now()
	t.Logf("the kill took %v", killed.Sub(begun).Round(time.Millisecond))
	if n, ok := arrivedBy(stoppedC, killed.Add(5*time.Second)); !ok {
		t.Errorf("no berth/instanceChanged {state: stopped, reason: killed or stopped outside berth} within 5 s of the kill; got %s", b.notesSince("berth/instanceChanged", from))
	} else {
		t.Logf("instanceChanged %v after the kill: %s", n.at.Sub(killed).Round(time.Millisecond), n.params)
	}
	if n, ok := arrivedBy(exitC, killed.Add(3*time.Second)); !ok {
		t.Errorf("no berth/exit for %s within 3 s of the kill", ex.PID)
	} else {
		t.Logf("berth/exit %v after the kill: %s", n.at.Sub(killed).Round(time.Millisecond), n.params)
	}
	checkHooks(t, b, "the next call after the kill", hooksLog+"start\n")
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning || got.ID != inst.ID {
		t.Errorf("after the next call: %+v, %v; want %s running again", got, err, inst.ID)
	}

	from = b.mark()
	removedC := b.watchFor(from, time.Minute, isChanged("removed"))
	begun = time.Now()
	outside(t, e, ws, "remove")
	removed := time.Now()
	t.Logf("the removal took %v", removed.Sub(begun).Round(time.Millisecond))
	if n, ok := arrivedBy(removedC, removed.Add(5*time.Second)); !ok {
		t.Errorf("no berth/instanceChanged {state: removed} within 5 s of the removal; got %s", b.notesSince("berth/instanceChanged", from))
	} else {
		t.Logf("instanceChanged %v after the removal: %s", n.at.Sub(removed).Round(time.Millisecond), n.params)
	}
	// A new container: a fresh log, with every create hook once.
	checkHooks(t, b, "the next call after the removal", hooksLog)
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning || got.ID == inst.ID {
		t.Errorf("after the next call: %+v, %v; want a new running container", got, err)
	}
}

// berth exits with code 0 within 5 s of SIGTERM and of stdin EOF, with
// processes running in the container, one of which ignores SIGTERM.
func TestLifecycleExitWithin5s(t *testing.T) { eachBackend(t, testLifecycleExitWithin5s) }

func testLifecycleExitWithin5s(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	term, eof := startPlainBerth(t, e), startPlainBerth(t, e)
	for _, b := range []*berth{term, eof} {
		b.initialize(ws, nil)
		b.mustCall("berth/up", rpc.UpParams{}, nil)
		for _, argv := range [][]string{{"sleep", "1000"}, {"sh", "-c", "trap '' TERM; sleep 1000"}} {
			b.mustCall("berth/exec", rpc.ExecParams{Argv: argv}, &rpc.ExecResult{})
		}
	}

	start := time.Now()
	if err := term.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	term.exited(t, start, 5*time.Second, "SIGTERM")

	start = time.Now()
	eof.stdin.Close()
	eof.exited(t, start, 5*time.Second, "stdin EOF")
}

func TestLifecycleRecreateRacesRun(t *testing.T) { eachBackend(t, testLifecycleRecreateRacesRun) }

// testLifecycleRecreateRacesRun recreates the container while runs start:
// every run succeeds, on the old container or the new one, and the
// container is running at the end.
func testLifecycleRecreateRacesRun(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var before rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &before)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var inst rpc.Instance
		errs <- b.call("berth/up", rpc.UpParams{Recreate: true}, &inst)
	}()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var run rpc.RunResult
			err := b.call("berth/run", rpc.ExecParams{Argv: []string{"true"}}, &run)
			if err == nil && run.Code != 0 {
				err = fmt.Errorf("run: code %d, stderr %q", run.Code, run.Stderr)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("racing a recreate: %v", err)
		}
	}
	got, err := e.b.Find(context.Background(), ws)
	if err != nil || got.State != "running" || got.ID == before.ID {
		t.Errorf("after recreate and runs: %+v, %v; want a new, running container", got, err)
	}
}
