package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/rpc"
)

// startCLI starts a berth CLI command on ws without waiting for it.
func startCLI(t *testing.T, e engine, ws string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"--backend", e.name, "--workspace", ws}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// A service brought up by berth processes that have exited is one
// service, started once (two CLI ups race for it), that outlives them;
// any other berth reports its health: a CLI's status, and an editor's,
// whose session then watches it and says when it changes.
func TestServiceAcrossBerths(t *testing.T) { eachBackend(t, testServiceAcrossBerths) }

func testServiceAcrossBerths(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, serviceConfig(e, "/"))
	ups := []*exec.Cmd{startCLI(t, e, ws, "up"), startCLI(t, e, ws, "up")}
	for i, up := range ups {
		if err := up.Wait(); err != nil {
			t.Fatalf("berth up #%d: %v: %s", i+1, err, up.Stdout)
		}
	}
	out, errOut, code := cli(t, e, ws, "status", "--json")
	var st rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Health != "healthy" {
		t.Errorf("berth status --json after the ups exited: code %d, health %q (%s), stderr %q; want healthy", code, st.Health, st.HealthError, errOut)
	}
	if e.name == "incus" {
		out, errOut, code = cli(t, e, ws, "exec", "--", "cat", "/.berth/service.log")
		if n := strings.Count(out, "starting the service"); code != 0 || n != 1 {
			t.Errorf("service log: code %d, %d starts, stdout %q, stderr %q; want one start for two ups", code, n, out, errOut)
		}
	}

	b := startBerth(t, e)
	b.initialize(ws, nil)
	st = rpc.Instance{}
	b.mustCall("berth/status", nil, &st)
	if st.Health != "healthy" {
		t.Errorf("an editor's berth/status: health %q (%s), want healthy", st.Health, st.HealthError)
	}
	from := b.mark()
	c := b.watchFor(from, time.Minute, changed(func(p rpc.InstanceChangedParams) bool { return p.Reason == "health" && p.Health == "unhealthy" }))
	if out, errOut, code := cli(t, e, ws, "exec", "--", "rm", "/www/index.html"); code != 0 {
		t.Fatalf("breaking the service: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, ok := arrivedBy(c, time.Now().Add(time.Minute)); !ok {
		t.Errorf("the editor heard of no unhealthy service within a minute; got %s", b.notesSince("berth/instanceChanged", from))
	}
}

// lifetime "command" counts every berth's processes: a container that
// two CLI commands use stays up until the second one ends, whichever
// ends first.
func TestLifetimeCommandTwoBerths(t *testing.T) { eachBackend(t, testLifetimeCommandTwoBerths) }

func testLifetimeCommandTwoBerths(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`", "shutdownAction": "none", "customizations": {"berth": {"lifetime": "command"}}}`)
	long := startCLI(t, e, ws, "exec", "--", "sh", "-c", "touch /tmp/long-started && sleep 12")
	out, errOut, code := cli(t, e, ws, "exec", "--", "sh", "-c", "while [ ! -e /tmp/long-started ]; do sleep 0.1; done; echo short")
	if code != 0 || out != "short\n" {
		t.Fatalf("the short berth exec: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateRunning {
		t.Errorf("after the short exec ended, with the long one running: state %q, %v; want running", got.State, err)
	}
	if err := long.Wait(); err != nil {
		t.Fatalf("the long berth exec: %v: %s", err, long.Stdout)
	}
	if got, err := find(t, e, ws); err != nil || got.State != backends.StateStopped {
		t.Errorf("after the long exec ended too: state %q, %v; want stopped", got.State, err)
	}
}

// An image's EXPOSEd port is a service's port when the configuration names
// none, and its Docker HEALTHCHECK is reported as the instance's health,
// whatever the lifetime: in berth/status, and in berth/instanceChanged as
// it changes.
func TestImageExposeAndHealthcheck(t *testing.T) {
	e := needBackend(t, "docker")
	dockerfile := "FROM " + backendtest.Image() + "\nEXPOSE 8080\nHEALTHCHECK --interval=1s --timeout=2s --retries=1 CMD test -e /tmp/healthy\n"

	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer", "Dockerfile"), dockerfile)
	writeConfig(t, ws, `{"build": {"dockerfile": "Dockerfile"}, "customizations": {"berth": {"service": {
	"command": "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"}}}}`)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var up rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	if up.Health != "healthy" || len(up.Forwarded) != 1 {
		t.Fatalf("up of a service with no port: health %q, forwarded %+v; want healthy on the EXPOSEd port, forwarded", up.Health, up.Forwarded)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", up.Forwarded[0].HostPort))
	if err != nil {
		t.Fatalf("the forwarded EXPOSEd port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("the forwarded EXPOSEd port answered %q, want ok", body)
	}

	ws2 := workspace(t, e.b)
	writeFile(t, filepath.Join(ws2, ".devcontainer", "Dockerfile"), dockerfile)
	writeConfig(t, ws2, `{"build": {"dockerfile": "Dockerfile"}}`)
	b2 := startBerth(t, e)
	b2.initialize(ws2, nil)
	// Each verdict shows in berth/status, and comes as berth/instanceChanged.
	waitHealth := func(from int, want string) {
		t.Helper()
		c := b2.watchFor(from, time.Minute, changed(func(p rpc.InstanceChangedParams) bool { return p.Reason == "health" && p.Health == want }))
		var st rpc.Instance
		for deadline := time.Now().Add(time.Minute); st.Health != want && time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			st = rpc.Instance{}
			b2.mustCall("berth/status", nil, &st)
		}
		if st.Health != want {
			t.Errorf("berth/status health %q, want %q from the image's HEALTHCHECK", st.Health, want)
		}
		if _, ok := arrivedBy(c, time.Now().Add(10*time.Second)); !ok {
			t.Errorf("no berth/instanceChanged {reason: health, health: %s}; got %s", want, b2.notesSince("berth/instanceChanged", from))
		}
	}
	from := b2.mark()
	b2.mustCall("berth/up", rpc.UpParams{}, nil)
	waitHealth(from, "unhealthy")
	from = b2.mark()
	b2.mustCall("berth/run", rpc.ExecParams{Argv: []string{"touch", "/tmp/healthy"}}, nil)
	waitHealth(from, "healthy")
}
