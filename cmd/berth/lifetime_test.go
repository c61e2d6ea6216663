package main_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/rpc"
)

// Twenty concurrent ups, split across two berth processes, make one container.
func TestConcurrentUpMakesOneInstance(t *testing.T) { eachBackend(t, testConcurrentUpMakesOneInstance) }

func testConcurrentUpMakesOneInstance(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	a, b := startBerth(t, e), startBerth(t, e)
	a.initialize(ws, nil)
	b.initialize(ws, nil)

	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		client := a
		if i%2 == 1 {
			client = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var inst rpc.Instance
			errs[i] = client.call("berth/up", rpc.UpParams{}, &inst)
			ids[i] = inst.ID
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("up #%d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("up #%d gave %s, #0 gave %s", i, ids[i], ids[0])
		}
	}
	var list []rpc.Instance
	a.mustCall("berth/list", struct{}{}, &list)
	n := 0
	for _, in := range list {
		if in.Workspace == ws {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d instances for the workspace, want 1", n)
	}

	// A restarted berth reattaches instead of creating.
	c := startBerth(t, e)
	c.initialize(ws, nil)
	var inst rpc.Instance
	c.mustCall("berth/up", rpc.UpParams{}, &inst)
	if inst.Created || inst.ID != ids[0] {
		t.Errorf("up from a new berth = %+v, want reattach to %s", inst, ids[0])
	}
}

// SIGTERM to berth ends every process it started in the container.
func TestSIGTERMKillsProcesses(t *testing.T) { eachBackend(t, testSIGTERMKillsProcesses) }

func testSIGTERMKillsProcesses(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	for _, argv := range [][]string{{"sleep", "1000"}, {"sh", "-c", "sleep 1000 & sleep 1000"}} {
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: argv}, &res)
	}
	time.Sleep(300 * time.Millisecond) // let the background sleep start

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.waited:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not exit after SIGTERM")
	}
	backendtest.AssertNoProcess(t, d, inst.ID, "sleep 1000")

	// The container itself outlives berth, for an instant next start.
	got, err := d.Find(context.Background(), ws)
	if err != nil || got.State != "running" {
		t.Errorf("instance after berth exited: %+v, %v; want running", got, err)
	}
}

func TestCLI(t *testing.T) { eachBackend(t, testCLI) }

func testCLI(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	berth := func(args ...string) (string, string, int) {
		t.Helper()
		return cli(t, e, ws, args...)
	}

	out, errOut, code := berth("up")
	var inst rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &inst) != nil || inst.Workspace != ws || inst.State != "running" {
		t.Fatalf("berth up: code %d stdout %q stderr %q", code, out, errOut)
	}

	out, errOut, code = berth("exec", "--", "sh", "-c", "echo $PWD/main.go; echo oops >&2; exit 3")
	if code != 3 || out != ws+"/main.go\n" || errOut != "oops\n" {
		t.Errorf("berth exec: code %d stdout %q stderr %q; want 3, host path, oops", code, out, errOut)
	}

	cmd := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "exec", "-i", "--", "tr", "a-z", "A-Z")
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	cmd.Stdin = strings.NewReader("shout\n")
	if got, err := cmd.Output(); err != nil || string(got) != "SHOUT\n" {
		t.Errorf("berth exec -i: %q, %v", got, err)
	}

	out, _, code = berth("ls")
	if code != 0 || !strings.Contains(out, inst.Name) {
		t.Errorf("berth ls: code %d, %q lacks %s", code, out, inst.Name)
	}

	out, _, code = berth("path", "to-container", filepath.Join(ws, "a.go"))
	if want := inst.Workdir + "/a.go\n"; code != 0 || out != want {
		t.Errorf("berth path to-container: %q (code %d), want %q", out, code, want)
	}
	out, _, code = berth("path", "to-host", inst.Workdir+"/a.go")
	if want := ws + "/a.go\n"; code != 0 || out != want {
		t.Errorf("berth path to-host: %q (code %d), want %q", out, code, want)
	}
	_, errOut, code = berth("path", "to-host", "/etc/passwd")
	if code != 1 || !strings.Contains(errOut, "not under any mount") {
		t.Errorf("berth path to-host of an unmapped path: code %d, stderr %q", code, errOut)
	}

	if _, errOut, code = berth("exec", "--", "no-such-binary"); code == 0 || !strings.Contains(errOut, "no-such-binary") {
		t.Errorf("berth exec of a missing command: code %d stderr %q", code, errOut)
	}

	if _, errOut, code = berth("down", "--rm"); code != 0 {
		t.Errorf("berth down --rm: code %d, %s", code, errOut)
	}
	if _, err := d.Find(context.Background(), ws); err == nil {
		t.Errorf("instance still exists after berth down --rm")
	}

	out, _, code = berth("version")
	if code != 0 || !strings.HasPrefix(out, "berth ") {
		t.Errorf("berth version: %q, code %d", out, code)
	}
}
