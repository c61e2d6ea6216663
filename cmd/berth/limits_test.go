package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"

	"github.com/berthdev/berth/rpc"
)

// Limits from devcontainer.json apply on create, berth/limits changes
// them on the running container, berth/status reports usage against
// them, and a process killed for the memory limit exits with reason OOM
// while another SIGKILL doesn't.
func TestLimitsEndToEnd(t *testing.T) { eachBackend(t, testLimitsEndToEnd) }

func testLimitsEndToEnd(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`", "customizations": {"berth": {"limits": {"memory": "256m", "cpus": 1, "pids": 200}}}}`)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Limits: &rpc.LimitsParams{Memory: json.RawMessage(`"96m"`)}})
	var up rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &up)

	var st rpc.Instance
	b.mustCall("berth/status", rpc.StatusParams{Usage: true}, &st)
	if st.Usage == nil {
		t.Fatal("berth/status {usage: true} has no usage")
	}
	if want := (rpc.Limits{Memory: 96 << 20, CPUs: 1, Pids: 200}); st.Usage.Limits != want {
		t.Errorf("limits on create = %+v, want %+v (the client's memory over the config's)", st.Usage.Limits, want)
	}
	if st.Usage.Memory <= 0 || st.Usage.Processes < 1 {
		t.Errorf("usage = %+v, want memory and processes in use", st.Usage)
	}

	var got rpc.Limits
	b.mustCall("berth/limits", map[string]any{"memory": "64m", "cpus": 0.5}, &got)
	if want := (rpc.Limits{Memory: 64 << 20, CPUs: 0.5, Pids: 200}); got != want {
		t.Errorf("berth/limits = %+v, want %+v", got, want)
	}
	st = rpc.Instance{}
	b.mustCall("berth/status", rpc.StatusParams{Usage: true}, &st)
	if st.ID != up.ID || st.State != "running" || st.Usage == nil || st.Usage.Limits != got {
		t.Errorf("after berth/limits: status %s %s usage %+v; want %s still running under %+v", st.ID, st.State, st.Usage, up.ID, got)
	}

	// dd's block is its buffer: 200 MiB of it under a 64 MiB limit.
	var res rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"}}, &res)
	ex, _ := b.waitExit(res.PID)
	if ex.Code != 137 || !strings.Contains(ex.Reason, "OOM") {
		t.Errorf("dd past the memory limit: exit %+v, want code 137 and a reason saying OOM", ex)
	}
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "kill -9 $$"}}, &res)
	if ex, _ := b.waitExit(res.PID); ex.Code != 137 || ex.Reason != "" {
		t.Errorf("kill -9: exit %+v, want code 137 and no reason", ex)
	}

	// The CLI: berth limits, and berth status showing use against them.
	if out, errOut, code := cli(t, e, ws, "limits", "--pids", "300"); code != 0 || !strings.Contains(out, "pids    300") || !strings.Contains(out, "64MiB") {
		t.Errorf("berth limits --pids 300: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := cli(t, e, ws, "status"); code != 0 || !strings.Contains(out, "of 64MiB") || !strings.Contains(out, "of 300") {
		t.Errorf("berth status: code %d, stdout %q, stderr %q; want memory and processes against their limits", code, out, errOut)
	}
}

// lifetime "command": `berth exec` from a shell starts the container and
// leaves it stopped; an editor session keeps it up after its process
// exited, and its leaving stops it.
func TestLifetimeCommand(t *testing.T) { eachBackend(t, testLifetimeCommand) }

func testLifetimeCommand(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`", "shutdownAction": "none", "customizations": {"berth": {"lifetime": "command"}}}`)
	out, errOut, code := cli(t, e, ws, "exec", "--", "echo", "hello")
	if code != 0 || out != "hello\n" {
		t.Fatalf("berth exec: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateStopped {
		t.Fatalf("after berth exec: state %q, %v; want stopped (lifetime command)", got.State, err)
	}

	b := startBerth(t, e)
	b.initialize(ws, nil)
	var res rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"true"}}, &res)
	b.waitExit(res.PID)
	time.Sleep(3 * time.Second) // past the idle grace
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning {
		t.Errorf("with an editor session attached: state %q, %v; want running", got.State, err)
	}
	start := time.Now()
	b.stdin.Close()
	b.exited(t, start, 30*time.Second, "stdin EOF of the editor session")
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateStopped {
		t.Errorf("after the editor session left: state %q, %v; want stopped (lifetime command, even with shutdownAction none)", got.State, err)
	}
}

// serviceConfig is a busybox httpd service on port 8080 whose health
// check asks for path.
func serviceConfig(e engine, path string) string {
	return `{"image": "` + e.image + `", "customizations": {"berth": {"service": {
	"command": "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www",
	"port": 8080, "health": "` + path + `"}}}}`
}

// lifetime "service": the configuration's command is the container's main
// process on Docker, and berth's service through the agent on Incus, whose
// instances boot their own init; up waits until its health check passes
// through the agent, reports health and forwards the port; a check that
// never passes ends up with -32033 after the timeout and leaves the
// container running.
func TestLifetimeService(t *testing.T) { eachBackend(t, testLifetimeService) }

func testLifetimeService(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, serviceConfig(e, "/"))
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var up rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	if up.Health != "healthy" || len(up.Forwarded) != 1 {
		t.Fatalf("up: health %q, forwarded %+v; want healthy and the service port forwarded", up.Health, up.Forwarded)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", up.Forwarded[0].HostPort))
	if err != nil {
		t.Fatalf("the forwarded service port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("the forwarded service answered %q, want ok", body)
	}
	var st rpc.Instance
	b.mustCall("berth/status", nil, &st)
	if st.Health != "healthy" {
		t.Errorf("status health %q (%s), want healthy", st.Health, st.HealthError)
	}
	// After up, berth goes on checking, and says when health changes.
	health := func(want string) func(string, json.RawMessage) bool {
		return changed(func(p rpc.InstanceChangedParams) bool { return p.Reason == "health" && p.Health == want })
	}
	for _, step := range []struct{ cmd, want string }{
		{"rm /www/index.html", "unhealthy"},
		{"echo ok > /www/index.html", "healthy"},
	} {
		from := b.mark()
		c := b.watchFor(from, time.Minute, health(step.want))
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", step.cmd}}, nil)
		if a, ok := arrivedBy(c, time.Now().Add(time.Minute)); !ok {
			t.Errorf("after %q: no berth/instanceChanged {reason: health, health: %s} within a minute; got %s", step.cmd, step.want, b.notesSince("berth/instanceChanged", from))
		} else {
			t.Logf("after %q: %s", step.cmd, a.params)
		}
	}

	ws2 := workspace(t, e.b)
	writeConfig(t, ws2, serviceConfig(e, "/missing"))
	b2 := startBerth(t, e, "--health-timeout", "3s")
	b2.initialize(ws2, nil)
	err = b2.call("berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeUnhealthy || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "left running") {
		t.Errorf("up with a failing health check: %v; want -32033 saying 404 and that the container is left running", err)
	}
	if got, err := find(t, e, ws2); err != nil || got.State != backends.StateRunning {
		t.Errorf("after a failed health check: state %q, %v; want running, for inspection", got.State, err)
	}
}
