package main_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// remoteBed is a remote engine of the test bed
// (testdata/setup/remote-docker.sh) and the environment that names it.
type remoteBed struct {
	name string
	env  []string
	host string
}

var remoteBeds = []remoteBed{
	{"tls", []string{"DOCKER_HOST=tcp://127.0.0.1:2386", "DOCKER_TLS_VERIFY=1", "DOCKER_CERT_PATH=/var/lib/berth-remote/client"}, "tcp://127.0.0.1:2386"},
	{"ssh", []string{"DOCKER_HOST=ssh://berth-ssh@127.0.0.1:2222"}, "ssh://berth-ssh@127.0.0.1:2222"},
}

// TestRemoteDockerEndToEnd: on each remote bed, though its disk is this
// machine's, berth up syncs the workspace instead of binding it, reports
// the engine as remote without bind mounts, fast path or netns, and exec
// and forward ride the agent's stream.
func TestRemoteDockerEndToEnd(t *testing.T) {
	for _, bed := range remoteBeds {
		t.Run(bed.name, func(t *testing.T) { testRemoteBed(t, bed) })
	}
}

func testRemoteBed(t *testing.T, bed remoteBed) {
	get := func(k string) string {
		for _, kv := range bed.env {
			if key, v, _ := strings.Cut(kv, "="); key == k {
				return v
			}
		}
		return ""
	}
	ep, err := docker.ResolveEndpoint(get)
	if err != nil {
		t.Fatal(err)
	}
	b, err := docker.NewAt(slog.New(slog.DiscardHandler), "test", docker.Name, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	e := engine{name: docker.Name, b: b, image: backendtest.Image()}
	ws := workspace(t, b)
	if err := os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(berthBin, append([]string{"--backend", e.name, "--workspace", ws}, args...)...)
		cmd.Env = append(append(os.Environ(), "BERTH_IMAGE="+e.image), bed.env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	out, errOut, code := run("up")
	var inst rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &inst) != nil {
		t.Fatalf("berth up: code %d stdout %q stderr %q", code, out, errOut)
	}
	want := rpc.Engine{Endpoint: bed.host, Remote: true}
	if inst.Engine == nil || *inst.Engine != want {
		t.Errorf("berth up: engine %+v, want %+v", inst.Engine, want)
	}
	if len(inst.Mounts) != 1 || inst.Mounts[0].Type != "sync" || inst.Mounts[0].Host != ws {
		t.Errorf("berth up: mounts %+v, want the workspace synced", inst.Mounts)
	}
	if !inst.Agent.Enabled {
		t.Errorf("berth up: agent %+v, want it serving", inst.Agent)
	}

	if out, errOut, code := run("exec", "--", "cat", inst.Workdir+"/hello.txt"); code != 0 || out != "from the host\n" {
		t.Errorf("berth exec cat hello.txt: code %d, %q, stderr %q", code, out, errOut)
	}
	out, _, _ = run("status")
	if !strings.Contains(out, bed.host+", remote: bind mounts no, fast path no, netns no") {
		t.Errorf("berth status doesn't name the remote engine:\n%s", out)
	}

	// A forward to a server in the container rides the agent's stream.
	server := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "exec", "--", "sh", "-c", "echo hello | nc -l -p 8080")
	server.Env = append(append(os.Environ(), "BERTH_IMAGE="+e.image), bed.env...)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	fwd := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "forward", "0:8080")
	fwd.Env = server.Env
	addr, _ := startForward(t, fwd)
	got := readThrough(addr, 30*time.Second)
	if got != "hello\n" {
		t.Errorf("through the forward: %q, want hello", got)
	}
}
