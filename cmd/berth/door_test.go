package main_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/rpc"
)

// buildDoorProbe builds testdata/doorprobe, static, into a temp dir.
func buildDoorProbe(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "doorprobe")
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", bin, "../../testdata/doorprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building doorprobe: %v\n%s", err, out)
	}
	return bin
}

// copyFile puts the file at src into the instance as dst, mode 0755.
func copyIntoInstance(t *testing.T, d backends.Backend, id, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: filepath.Base(dst), Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	if err := d.CopyTo(context.Background(), id, filepath.Dir(dst), &buf); err != nil {
		t.Fatal(err)
	}
}

// engineExec runs argv in the instance through the engine itself, as any
// process of the instance's, not through berth.
func engineExec(t *testing.T, d backends.Backend, id, user string, argv ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	p, err := d.Exec(ctx, id, backends.ExecSpec{Argv: argv, User: user, Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Wait(ctx)
	if err != nil || st.Code != 0 {
		t.Fatalf("%v as %s: %+v %v\nstdout: %s\nstderr: %s", argv, user, st, err, &stdout, &stderr)
	}
	return stdout.String(), stderr.String()
}

// The agent's door, from inside: a process of the instance's, as a
// non-root user and as root without CAP_SYS_PTRACE, cannot reach the door,
// pass its handshake even when it holds the key (as one relaying berth's
// handshake would), get a process or a tunnel out of it, nor read the
// agent's environment, memory or descriptors, nor ptrace it. The processes
// berth starts are dumpable as usual.
func TestAgentDoor(t *testing.T) {
	probe := buildDoorProbe(t)
	eachBackend(t, func(t *testing.T, e engine) { testAgentDoor(t, e, probe) })
}

func testAgentDoor(t *testing.T, e engine, probe string) {
	d := e.b
	ws := workspace(t, d)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var warm rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"true"}}, &warm) // starts the agent

	// The host's side: private directory, record and socket.
	ctx := context.Background()
	full, err := d.Find(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	hostDir := ""
	for _, mt := range full.Mounts {
		if mt.Container == agent.RunDir {
			hostDir = mt.Host
		}
	}
	if hostDir == "" {
		t.Fatalf("no door mount at %s in %+v", agent.RunDir, full.Mounts)
	}
	data, err := os.ReadFile(agent.RecordPath(hostDir))
	if err != nil {
		t.Fatalf("no door record, so no fast path: %v", err)
	}
	var rec struct {
		Socket string `json:"socket"`
		Key    []byte `json:"key"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Dir(hostDir), os.ModeDir | 0o700},
		{hostDir, os.ModeDir | 0o700},
		{agent.RecordPath(hostDir), 0o600},
		{filepath.Join(hostDir, rec.Socket), os.ModeSocket | 0o600},
	} {
		fi, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; fi.Mode() != tt.mode || int(uid) != os.Geteuid() {
			t.Errorf("%s: %v owned by %d, want %v owned by %d", tt.path, fi.Mode(), uid, tt.mode, os.Geteuid())
		}
	}
	ls, _ := engineExec(t, d, inst.ID, "0", "ls", "-ld", agent.DoorDir, agent.RunDir)
	t.Logf("inside:\n%s", ls)
	if !strings.HasPrefix(ls, "drwx------") || strings.Count(ls, "drwx------") != 2 {
		t.Errorf("door directories inside the instance:\n%s\nwant both drwx------", ls)
	}

	// The agent's children are dumpable again.
	copyIntoInstance(t, d, inst.ID, probe, "/tmp/doorprobe")
	for _, user := range []string{"0", "1000"} {
		var run rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"/tmp/doorprobe", "dumpable"}, User: user}, &run)
		if run.Code != 0 || run.Stdout != "1\n" {
			t.Errorf("a process berth started as %s: dumpable %+v, want 1", user, run)
		}
	}
	// Controls whose environments a process of the same user can read.
	for _, c := range []struct{ user, arg string }{{"0", "3217"}, {"1000", "3218"}} {
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", c.arg}, User: c.user, Env: map[string]string{"DOOR_MARK": "1"}}, &res)
	}

	key := hex.EncodeToString(rec.Key)
	for _, tt := range []struct {
		name, user string
		args       []string
		// "ok" outcomes that are fine for this user.
		allowed map[string]bool
	}{
		{"non-root", "1000", []string{"-control", "3218"}, nil},
		{"root without CAP_SYS_PTRACE", "0", []string{"-drop-ptrace", "-control", "3217"},
			// Root reads the directories and makes files there; the door
			// still turns it away.
			map[string]bool{"list door dir": true, "list run dir": true, "plant a socket": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			argv := append([]string{"/tmp/doorprobe", "attack", "-socket", rec.Socket, "-key", key}, tt.args...)
			out, stderr := engineExec(t, d, inst.ID, tt.user, argv...)
			var got map[string]string
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("probe said %q (%s): %v", out, stderr, err)
			}
			for k, v := range got {
				t.Logf("%s: %s", k, v)
			}
			if got["cap_sys_ptrace"] != "false" {
				t.Fatalf("the probe has CAP_SYS_PTRACE: %v", got["cap_sys_ptrace"])
			}
			if _, ok := got["agents"]; ok {
				t.Errorf("the probe found no agent process")
			}
			// Docker's root shares the agent's capabilities, so only there
			// does it read a root control; Incus's agent has more.
			if v := got["control"]; !strings.HasPrefix(v, "ok") && (tt.user != "0" || e.name == "docker") {
				t.Errorf("control: %s, want its environment read", v)
			}
			for k, v := range got {
				switch {
				case k == "uid" || k == "cap_sys_ptrace" || k == "control":
				case tt.allowed[k]:
				case !strings.HasPrefix(v, "denied"):
					t.Errorf("%s: %s, want denied", k, v)
				}
			}
		})
	}

	// The door served berth throughout, and nothing the probes asked for ran.
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "echo alive; ls /tmp/door-pwned 2>&1"}}, &run)
	if !strings.HasPrefix(run.Stdout, "alive\n") || !strings.Contains(run.Stdout, "No such file") {
		t.Errorf("after the probes: %+v", run)
	}

	// The probe's control: from the host, with the key, it gets in. (Its
	// session's end then stops the agent, as berth's would.)
	out, err := exec.Command(probe, "knock", "-dir", hostDir, "-socket", rec.Socket, "-key", key).CombinedOutput()
	if err != nil || string(out) != "ok: admitted\n" {
		t.Errorf("knock from the host with the key: %q %v, want admitted", out, err)
	}
}
