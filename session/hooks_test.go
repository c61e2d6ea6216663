package session

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

// lifecycleHooks logs every lifecycle command's run into the instance.
// Every call waits for all of them (waitFor postStartCommand);
// TestWaitFor covers the default.
const lifecycleHooks = `
	"waitFor": "postStartCommand",
	"onCreateCommand": "echo onCreate >> /tmp/create.log",
	"updateContentCommand": ["sh", "-c", "echo updateContent >> /tmp/create.log"],
	"postCreateCommand": {"a": "echo a >> /tmp/post-a.log", "b": ["sh", "-c", "echo b >> /tmp/post-b.log"]},
	"postStartCommand": "echo start >> /tmp/start.log"`

// hookLog is what the lifecycle commands have logged in the instance.
type hookLog struct {
	Create, PostA, PostB, Start string
}

func (e *memEnv) hookLog() hookLog {
	e.t.Helper()
	return hookLog{
		Create: e.file("/tmp/create.log"), PostA: e.file("/tmp/post-a.log"),
		PostB: e.file("/tmp/post-b.log"), Start: e.file("/tmp/start.log"),
	}
}

func (e *memEnv) wantHookLog(when string, want hookLog) {
	e.t.Helper()
	if diff := cmp.Diff(want, e.hookLog()); diff != "" {
		e.t.Errorf("%s: hook log (-want +got):\n%s", when, diff)
	}
}

// instanceState reads berth's bookkeeping in the instance.
func (e *memEnv) instanceState() instanceState {
	e.t.Helper()
	var st instanceState
	if data := e.file(statePath); data != "" {
		if err := json.Unmarshal([]byte(data), &st); err != nil {
			e.t.Fatalf("%s: %v", statePath, err)
		}
	}
	return st
}

func (e *memEnv) setInstanceState(st instanceState) {
	e.t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.fs().WriteFile(statePath, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

var (
	onceCreated = hookLog{Create: "onCreate\nupdateContent\n", PostA: "a\n", PostB: "b\n", Start: "start\n"}
)

func TestCreateHooksRunOncePerContainer(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks)})
	c, _ := e.client(nil, false)

	// The first exec creates the container and runs every hook before the
	// command itself.
	if res := e.run(c, "cat", "/tmp/create.log"); res.Stdout != onceCreated.Create {
		t.Errorf("the first command ran before the create hooks: it saw %q", res.Stdout)
	}
	e.wantHookLog("after the first exec", onceCreated)
	inst, err := e.mem.Find(testCtx(t), e.ws)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Labels[LabelHooks] != "true" {
		t.Errorf("label %s = %q, want true", LabelHooks, inst.Labels[LabelHooks])
	}
	if st := e.instanceState(); st.Create != createDone || st.Owner != "" || st.Error != "" {
		t.Errorf("state %+v, want create done with no owner or error", st)
	}
	var kinds []string
	for _, p := range c.Processes(e.ws) {
		kinds = append(kinds, p.Kind)
	}
	if diff := cmp.Diff([]string{"", "os", "os", "os", "os", "os"}, kinds); diff != "" {
		t.Errorf("the hooks are not the client's processes (-want +got kinds):\n%s", diff)
	}

	// Neither a second exec, nor an up, nor another berth on the same
	// engine runs them again.
	e.run(c, "true")
	e.wantHookLog("after a second exec", onceCreated)
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hooks) != 0 || res.Created || res.Started {
		t.Errorf("Up of a running container: created %v, started %v, hooks %+v", res.Created, res.Started, res.Hooks)
	}
	other, _ := e.client(e.manager(testImage), true)
	e.run(other, "true")
	e.wantHookLog("after another berth's exec", onceCreated)
}

func TestUpReportsTheHooksItRan(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks + `, "postAttachCommand": "echo attach >> /tmp/attach.log"`)})
	c, sink := e.client(nil, true)
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.Started {
		t.Errorf("Up: created %v, started %v; want both", res.Created, res.Started)
	}
	var got []string
	for _, h := range res.Hooks {
		if h.PID == "" || h.Code != 0 || h.Err != "" {
			t.Errorf("hook %+v: want a pid, code 0 and no error", h)
		}
		sink.waitExit(t, h.PID)
		got = append(got, strings.TrimSpace(h.Hook+" "+h.Name))
	}
	want := []string{"onCreateCommand", "updateContentCommand", "postCreateCommand a", "postCreateCommand b", "postStartCommand", "postAttachCommand"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Up's hooks (-want +got):\n%s", diff)
	}

	// postAttachCommand runs on each client's first Up.
	if res, err = c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil || len(res.Hooks) != 0 {
		t.Errorf("second Up: hooks %+v, err %v; want none", res.Hooks, err)
	}
	other, _ := e.client(nil, true)
	if res, err = other.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil || len(res.Hooks) != 1 || res.Hooks[0].Hook != "postAttachCommand" {
		t.Errorf("another client's first Up: hooks %+v, err %v; want postAttachCommand", res.Hooks, err)
	}
	if got := e.file("/tmp/attach.log"); got != "attach\nattach\n" {
		t.Errorf("postAttachCommand ran %q, want once per client", got)
	}
	e.wantHookLog("after three Ups", onceCreated)
}

func TestPostStartOncePerStart(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks), Clock: true})
	c, sink := e.client(nil, true)
	e.run(c, "true")
	e.run(c, "true")
	e.wantHookLog("after two execs", onceCreated)
	first := e.instanceState().Started
	if first == "" {
		t.Fatalf("state %+v records no start", e.instanceState())
	}

	// A restart behind berth's back: the next call runs postStart, and only
	// postStart.
	e.waitWatchers()
	if err := e.mem.StopExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	sink.waitInstance(t, "stopped/"+ReasonStoppedOutside)
	e.startExternally()
	sink.waitInstance(t, "running/"+ReasonStartedOutside)
	e.run(c, "true")
	twice := onceCreated
	twice.Start = "start\nstart\n"
	e.wantHookLog("after an external restart", twice)
	if st := e.instanceState().Started; st == first || st == "" {
		t.Errorf("state records start %q, want a new one (was %q)", st, first)
	}

	// Another berth sees that this start's postStart ran.
	other, _ := e.client(e.manager(testImage), false)
	e.run(other, "true")
	e.wantHookLog("after another berth's exec", twice)

	// berth's own stop and start.
	if err := e.m.Workspace(e.ws).Down(testCtx(t), false); err != nil {
		t.Fatal(err)
	}
	e.run(c, "true")
	thrice := onceCreated
	thrice.Start = "start\nstart\nstart\n"
	e.wantHookLog("after berth stopped and started it", thrice)
}

// Without start times (Instance.Started zero: the backend can't tell),
// postStart runs when berth itself starts the container.
func TestPostStartWithoutStartTimes(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks)})
	c, sink := e.client(nil, false)
	e.run(c, "true")
	e.waitWatchers()
	if err := e.mem.StopExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	sink.waitInstance(t, "stopped/"+ReasonStoppedOutside)
	e.run(c, "true") // berth starts it
	twice := onceCreated
	twice.Start = "start\nstart\n"
	e.wantHookLog("after an external stop", twice)
	if st := e.instanceState(); st.Started != "" {
		t.Errorf("state records start %q without a start time", st.Started)
	}

	if err := e.m.Workspace(e.ws).Down(testCtx(t), false); err != nil {
		t.Fatal(err)
	}
	e.run(c, "true")
	thrice := onceCreated
	thrice.Start = "start\nstart\nstart\n"
	e.wantHookLog("after berth stopped and started it", thrice)
}

func TestCreateHookFailure(t *testing.T) {
	tests := []struct {
		name    string
		hooks   string
		wantErr []string // in the error and in hookError
		want    hookLog
	}{
		{
			name:    "postCreateCommand exits non-zero",
			hooks:   `"onCreateCommand": "echo onCreate >> /tmp/create.log", "postCreateCommand": "echo boom >&2; echo postCreate >> /tmp/create.log; exit 3"`,
			wantErr: []string{"postCreateCommand exited with code 3", "boom"},
			want:    hookLog{Create: "onCreate\npostCreate\n"},
		},
		{
			name:    "onCreateCommand stops the rest",
			hooks:   `"onCreateCommand": "echo onCreate >> /tmp/create.log; false", "updateContentCommand": "echo updateContent >> /tmp/create.log", "postCreateCommand": "echo postCreate >> /tmp/create.log"`,
			wantErr: []string{"onCreateCommand exited with code 1"},
			want:    hookLog{Create: "onCreate\n"},
		},
		{
			name:    "one entry of the object form",
			hooks:   `"postCreateCommand": {"a": "echo a >> /tmp/post-a.log", "b": "echo b >> /tmp/post-b.log; exit 4"}`,
			wantErr: []string{"postCreateCommand b exited with code 4"},
			want:    hookLog{PostA: "a\n", PostB: "b\n"},
		},
		{
			name:    "missing executable",
			hooks:   `"updateContentCommand": ["no-such-tool", "--flag"]`,
			wantErr: []string{"updateContentCommand ", "command not found"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Files: dcFiles(tt.hooks + `, "waitFor": "postCreateCommand", "postStartCommand": "echo start >> /tmp/start.log"`)})
			c, _ := e.client(nil, false)
			_, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"echo", "the command"}}, 0)
			if !errors.Is(err, ErrHookFailed) {
				t.Fatalf("the first call: err %v, want ErrHookFailed", err)
			}
			for _, w := range append(tt.wantErr, "won't run it again") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			e.wantHookLog("after the failure", tt.want)

			// Later calls use the container; nothing runs again.
			if res := e.run(c, "echo", "hi"); res.Stdout != "hi\n" {
				t.Errorf("the second call said %q", res.Stdout)
			}
			e.wantHookLog("after a second call", tt.want)
			st := e.instanceState()
			if st.Create != createFailed {
				t.Errorf("state %+v, want create failed", st)
			}
			inst, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
			if err != nil || inst == nil {
				t.Fatalf("Status: %v, %v", inst, err)
			}
			if inst.HookError != st.Error || !strings.Contains(inst.HookError, tt.wantErr[0]) {
				t.Errorf("Status hookError %q, want %q", inst.HookError, st.Error)
			}
			r, err := c.Ready(testCtx(t), e.ws, "")
			if err != nil {
				t.Fatal(err)
			}
			// Ready answers from what berth knew; a second berth reads it.
			other, _ := e.client(e.manager(testImage), false)
			r2, err := other.Ready(testCtx(t), e.ws, "")
			if err != nil {
				t.Fatalf("another berth: %v", err)
			}
			if r2.HookError != st.Error {
				t.Errorf("another berth's Ready: hookError %q, want %q (first berth: %q)", r2.HookError, st.Error, r.HookError)
			}
			e.wantHookLog("after another berth's call", tt.want)
		})
	}
}

// Hooks run without a client (Workspace.Ensure with no HookFunc) keep the
// end of their output for the error.
func TestQuietHooks(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"waitFor": "postCreateCommand", "postCreateCommand": "echo first; echo last words >&2; exit 5", "postStartCommand": "false"`)})
	w := e.m.Workspace(e.ws)
	_, err := w.Ensure(testCtx(t), EnsureOptions{})
	if !errors.Is(err, ErrHookFailed) || !strings.Contains(err.Error(), "exited with code 5:\nfirst\nlast words") {
		t.Fatalf("Ensure: %v; want ErrHookFailed with the output's tail", err)
	}
	r, err := w.Ensure(testCtx(t), EnsureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.HookError, "last words") {
		t.Errorf("second Ensure: hookError %q", r.HookError)
	}
}

// A failing postStartCommand is reported, and the call goes on.
func TestPostStartFailureIsReported(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"postStartCommand": ["sh", "-c", "exit 9"]`)})
	c, _ := e.client(nil, false)
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hooks) != 1 || res.Hooks[0].Hook != "postStartCommand" || res.Hooks[0].Code != 9 {
		t.Errorf("hooks %+v, want postStartCommand with code 9", res.Hooks)
	}
}

func TestTailBuffer(t *testing.T) {
	var tb tailBuffer
	fmt.Fprint(&tb, strings.Repeat("x", hookTail))
	fmt.Fprint(&tb, "end")
	if got := tb.String(); len(got) != hookTail || !strings.HasSuffix(got, "xend") {
		t.Errorf("tail is %d bytes ending %q", len(got), got[len(got)-4:])
	}
	if got := tail("abcdef", 3); got != "def" {
		t.Errorf("tail = %q", got)
	}
}

// The create hooks of a container another berth made: wait for its
// creator, or take over when the creator died.
func TestCreateHooksOfAnotherBerth(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no true on the host: %v", err)
	}
	deadOwner := fmt.Sprintf("%s:%d", host, dead.Process.Pid)

	tests := []struct {
		name    string
		state   instanceState
		finish  bool // the other berth finishes after a while
		want    hookLog
		wantErr string
	}{
		{name: "creator still running them", state: instanceState{Create: createRunning, Owner: "elsewhere:1"}, finish: true, want: onceCreated},
		{name: "creator died", state: instanceState{Create: createRunning, Owner: deadOwner}, want: hookLog{Create: "onCreate\nupdateContent\nonCreate\nupdateContent\n", PostA: "a\na\n", PostB: "b\nb\n", Start: "start\n"}},
		{name: "creator failed", state: instanceState{Create: createFailed, Error: "postCreateCommand exited with code 1"}, want: onceCreated, wantErr: "postCreateCommand exited with code 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks)})
			first, _ := e.client(nil, false)
			e.run(first, "true")
			e.setInstanceState(tt.state)

			if tt.finish {
				done := make(chan struct{})
				t.Cleanup(func() { <-done })
				go func() {
					defer close(done)
					time.Sleep(300 * time.Millisecond)
					st := tt.state
					st.Create, st.Owner = createDone, ""
					data, _ := json.Marshal(st)
					f, _ := e.mem.FS(e.ws)
					_ = f.WriteFile(statePath, data, 0o644)
				}()
			}
			start := time.Now()
			c, _ := e.client(e.manager(testImage), false)
			r, err := c.Ready(testCtx(t), e.ws, "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.finish && time.Since(start) < 250*time.Millisecond {
				t.Errorf("did not wait for the other berth's hooks")
			}
			if r.HookError != tt.wantErr {
				t.Errorf("hookError %q, want %q", r.HookError, tt.wantErr)
			}
			e.wantHookLog("after the second berth", tt.want)
		})
	}
}

// An unreadable state file counts as none.
func TestUnreadableInstanceState(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"waitFor": "postCreateCommand", "postCreateCommand": "exit 1"`)})
	c, _ := e.client(nil, false)
	if _, err := c.Ready(testCtx(t), e.ws, ""); !errors.Is(err, ErrHookFailed) {
		t.Fatalf("err %v, want ErrHookFailed", err)
	}
	if err := e.fs().WriteFile(statePath, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	inst, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
	if err != nil || inst.HookError != "" {
		t.Errorf("Status: hookError %q, err %v; want none", inst.HookError, err)
	}
}

// The bookkeeping must be written: an engine that refuses it fails the
// call rather than running the hooks again and again.
func TestHookBookkeepingFailures(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(lifecycleHooks)})
	c, _ := e.client(nil, false)
	boom := fmt.Errorf("memory: injected: %w", backends.ErrUnavailable)
	e.mem.SetError("CopyTo", boom)
	if _, err := c.Ready(testCtx(t), e.ws, ""); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("writing the state failed, yet Ready says %v", err)
	}
	e.mem.SetError("CopyTo", nil)
	e.mem.SetError("CopyFrom", boom)
	if _, err := c.Ready(testCtx(t), e.ws, ""); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("reading the state failed, yet Ready says %v", err)
	}
	e.mem.SetError("CopyFrom", nil)
}

// In sync mode a new container's create hooks see the workspace.
func TestSyncedWorkspaceBeforeCreateHooks(t *testing.T) {
	files := dcFiles(`"onCreateCommand": "cat a.txt > /tmp/seen"`)
	files["a.txt"] = "hello"
	e := newMemEnv(t, memEnvOptions{Files: files, Sync: true})
	c, _ := e.client(nil, false)
	res, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.file("/tmp/seen"); got != "hello" {
		t.Errorf("onCreateCommand saw %q", got)
	}
	if res.Labels[LabelSync] != "true" {
		t.Errorf("labels %v lack %s", res.Labels, LabelSync)
	}
}

// waitFor: a call other than up waits for the hooks up to waitFor (by
// default updateContentCommand); the rest finish in the background, owned
// by the workspace, even after the client that started them is gone; up
// waits for every one.
func TestWaitFor(t *testing.T) {
	const hooks = `
	"onCreateCommand": "echo onCreate >> /tmp/create.log",
	"updateContentCommand": "echo updateContent >> /tmp/create.log",
	"postCreateCommand": {"a": "sleep 1; echo a >> /tmp/post-a.log", "b": "echo b >> /tmp/post-b.log"},
	"postStartCommand": "sleep 1; echo start >> /tmp/start.log"`
	t.Run("default: exec waits up to updateContentCommand", func(t *testing.T) {
		e := newMemEnv(t, memEnvOptions{Files: dcFiles(hooks)})
		c, _ := e.client(nil, false)
		if res := e.run(c, "cat", "/tmp/create.log", "/tmp/post-a.log"); res.Stdout != "onCreate\nupdateContent\n" {
			t.Errorf("the first command saw %q, want only the hooks up to updateContentCommand", res.Stdout)
		}
		c.Close(testCtx(t)) // the background hooks are not the client's
		w := e.m.Workspace(e.ws)
		if err := w.waitBackground(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		e.wantHookLog("after the background hooks", onceCreated)
		if st := e.instanceState(); st.Create != createDone || st.Owner != "" {
			t.Errorf("state %+v, want create done", st)
		}
	})
	t.Run("up waits for every hook", func(t *testing.T) {
		e := newMemEnv(t, memEnvOptions{Files: dcFiles(hooks)})
		c, _ := e.client(nil, false)
		e.run(c, "true")
		if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
			t.Fatal(err)
		}
		e.wantHookLog("after up", onceCreated)
	})
	t.Run("waitFor onCreateCommand", func(t *testing.T) {
		e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"waitFor": "onCreateCommand", ` + hooks)})
		c, _ := e.client(nil, false)
		if res := e.run(c, "cat", "/tmp/create.log"); res.Stdout != "onCreate\n" && res.Stdout != "onCreate\nupdateContent\n" {
			t.Errorf("the first command saw %q", res.Stdout)
		}
		// Another berth waits only as far as waitFor too.
		other, _ := e.client(e.manager(testImage), false)
		if res := e.run(other, "cat", "/tmp/create.log"); !strings.HasPrefix(res.Stdout, "onCreate\n") {
			t.Errorf("another berth's first command saw %q", res.Stdout)
		}
		if err := e.m.Workspace(e.ws).waitBackground(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		e.wantHookLog("after the background hooks", onceCreated)
	})
	t.Run("a background failure is recorded", func(t *testing.T) {
		e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"postCreateCommand": "echo broke >&2; exit 7"`)})
		c, _ := e.client(nil, false)
		if res := e.run(c, "echo", "hi"); res.Stdout != "hi\n" {
			t.Errorf("the first command said %q", res.Stdout)
		}
		if err := e.m.Workspace(e.ws).waitBackground(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		inst, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
		if err != nil || inst == nil || !strings.Contains(inst.HookError, "postCreateCommand exited with code 7") || !strings.Contains(inst.HookError, "broke") {
			t.Errorf("Status: %+v, %v; want the background failure as hookError", inst, err)
		}
	})
}
