package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/agent/embedded"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// aloneBerth builds berth as `go build ./cmd/berth` does, into a directory
// of its own: nothing beside it, so its agent is the one it carries.
var aloneBerth = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(berthBin), "alone", "berth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building berth alone: %v\n%s", err, out)
	}
	return bin, nil
})

// needAlone returns the lone berth, with $BERTH_AGENT unset for the test.
func needAlone(t *testing.T) string {
	t.Helper()
	bin, err := aloneBerth()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "berth-agent")); err == nil {
		t.Fatal("an agent sits beside the lone berth")
	}
	t.Setenv(agent.EnvBinary, "")
	return bin
}

// hostBuild is the embedded build for this machine's containers.
func hostBuild(t *testing.T) *agent.Binary {
	t.Helper()
	set, err := embedded.Agents()
	if err != nil {
		t.Fatal(err)
	}
	b, err := set.For("linux/" + runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A berth with nothing beside it carries the agent for both platforms, and
// runs processes and tunnels through the one for the container's.
func TestEmbeddedAgent(t *testing.T) {
	bin := needAlone(t)
	e := needBackend(t, docker.Name)
	want := hostBuild(t)
	ws := workspace(t, e.b)
	b := startBerthBin(t, bin, e)
	init := b.initialize(ws, nil)
	caps := init.Capabilities.Berth
	if !caps.Agent || len(caps.Agents) != 2 {
		t.Fatalf("capabilities: agent %v (%s), builds %+v; want two embedded builds", caps.Agent, caps.AgentReason, caps.Agents)
	}
	for i, p := range []string{"linux/amd64", "linux/arm64"} {
		if got := caps.Agents[i]; got.Platform != p || got.Source != "embedded" || len(got.Build) != 64 {
			t.Errorf("capabilities.berth.agents[%d] = %+v, want the embedded build for %s", i, got, p)
		}
	}

	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	if !inst.Agent.Enabled {
		t.Fatalf("up: agent %+v", inst.Agent)
	}
	// A terminal needs the agent: plain exec refuses it.
	var ex rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "tty >/dev/null && echo on a tty"}, TTY: true, Cols: 80, Rows: 24}, &ex)
	if exit, out := b.waitExit(ex.PID); exit.Code != 0 || !strings.Contains(out["stdout"], "on a tty") {
		t.Errorf("tty exec: exit %+v, output %q", exit, out)
	}
	var st rpc.Instance
	b.mustCall("berth/status", struct{}{}, &st)
	wantSt := rpc.AgentStatus{Enabled: true, Connected: true,
		AgentBuild: rpc.AgentBuild{Build: want.Hash, Platform: want.Platform(), Source: "embedded"}}
	if st.Agent != wantSt {
		t.Errorf("status agent = %+v, want %+v", st.Agent, wantSt)
	}
	// The build in the container is the one berth carries.
	code, out := runIn(t, e, inst.ID, "ls", "/.berth/")
	if code != 0 || !strings.Contains(out, "agent-"+want.Hash[:16]) {
		t.Errorf("/.berth holds %q (code %d), want agent-%.16s", out, code, want.Hash)
	}
}

// The command line names the agent build: before there is a container, the
// builds berth carries; after, the one that serves it.
func TestEmbeddedAgentStatusCLI(t *testing.T) {
	bin := needAlone(t)
	e := needBackend(t, docker.Name)
	want := hostBuild(t)
	ws := workspace(t, e.b)
	run := func(args ...string) (string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--backend", e.name, "--image", e.image, "-W", ws}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	out, _ := run("status")
	for _, p := range []string{"linux/amd64", "linux/arm64"} {
		if !strings.Contains(out, "for "+p+", embedded in berth") {
			t.Errorf("status without a container lacks the %s build:\n%s", p, out)
		}
	}
	if !strings.Contains(out, "container  none") {
		t.Errorf("status without a container:\n%s", out)
	}
	if out, _ := run("status", "--json"); strings.TrimSpace(out) != "null" {
		t.Errorf("status --json without a container = %q, want null", out)
	}

	if out, _ := run("exec", "--", "echo", "hi"); out != "hi\n" {
		t.Errorf("exec stdout %q", out)
	}
	// The agent that exec left running behind its door answers status,
	// another berth process.
	out, _ = run("status")
	if line := regexp.MustCompile(fmt.Sprintf(`(?m)^agent +build %.12s for %s, embedded in berth, running$`, want.Hash, regexp.QuoteMeta(want.Platform()))); !line.MatchString(out) {
		t.Errorf("status lacks %q:\n%s", line, out)
	}
	out, _ = run("status", "--json")
	var st rpc.Instance
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if a := st.Agent; !a.Enabled || !a.Connected || a.Build != want.Hash || a.Source != "embedded" || a.Platform != want.Platform() {
		t.Errorf("status --json agent = %+v, want the embedded %s build", a, want.Platform())
	}
}

// A berth-agent beside berth replaces the embedded build of its platform
// only; the command line says where each came from.
func TestBesideAgentStatusCLI(t *testing.T) {
	e := needBackend(t, docker.Name)
	t.Setenv(agent.EnvBinary, "")
	cmd := exec.Command(berthBin, "--backend", e.name, "-W", t.TempDir(), "status")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("berth status: %v: %s", err, stderr.String())
	}
	other := map[string]string{"amd64": "linux/arm64", "arm64": "linux/amd64"}[runtime.GOARCH]
	for _, line := range []string{
		"for linux/" + runtime.GOARCH + ", from the berth-agent beside berth",
		"for " + other + ", embedded in berth",
	} {
		if !strings.Contains(stdout.String(), line) {
			t.Errorf("status lacks %q:\n%s", line, stdout.String())
		}
	}
}

// runIn runs argv in the instance with the engine's own exec.
func runIn(t *testing.T, e engine, id string, argv ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	p, err := e.b.Exec(ctx, id, backends.ExecSpec{Argv: argv, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st.Code, stdout.String() + stderr.String()
}
