package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/rpc"
)

// directLine is the debug line the direct path logs when it reaches the
// running agent through its door; its agent= is the agent's pid.
var directLine = regexp.MustCompile(`msg="direct path: through the running agent's door" .*agent=(\d+)`)

// cliEnv is cli with extra environment variables.
func cliEnv(t *testing.T, e engine, ws string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"--backend", e.name, "--workspace", ws}, args...)...)
	cmd.Env = append(append(os.Environ(), "BERTH_IMAGE="+e.image), env...)
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

// directAgent runs `berth exec -- true` and returns the pid of the agent
// the direct path reached, or "" if berth took the full path.
func directAgent(t *testing.T, e engine, ws string) string {
	t.Helper()
	_, errOut, code := cli(t, e, ws, "--trust", "--log-level", "debug", "exec", "--", "true")
	if code != 0 {
		t.Fatalf("berth exec -- true: code %d, stderr %s", code, errOut)
	}
	if m := directLine.FindStringSubmatch(errOut); m != nil {
		return m[1]
	}
	return ""
}

// writeConfig writes ws's devcontainer.json.
func writeConfig(t *testing.T, ws, json string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(ws, ".devcontainer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".devcontainer", "devcontainer.json"), []byte(json), 0o644); err != nil {
		t.Fatal(err)
	}
}

// berth exec from a shell reaches the running agent directly, and does
// what the full path does: same output, paths mapped, same exit codes.
// berth up then costs a handshake, and prints what the full path does.
func TestDirectExec(t *testing.T) { eachBackend(t, testDirectExec) }

func testDirectExec(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`", "remoteEnv": {"FROM_CONFIG": "remote ${containerEnv:HOSTNAME}"}, "waitFor": "postStartCommand", "postStartCommand": "echo x >> /starts"}`)
	full := []string{"BERTH_NO_DIRECT=1"}
	upOut, errOut, code := cliEnv(t, e, ws, full, "--trust", "up")
	if code != 0 {
		t.Fatalf("berth up: code %d, stderr %s", code, errOut)
	}

	// The first exec may start the agent; from then on each one reaches
	// the same agent, with nothing through the engine.
	first := directAgent(t, e, ws)
	if first == "" {
		first = directAgent(t, e, ws)
	}
	if first == "" {
		t.Fatal("the second berth exec took the full path")
	}
	if again := directAgent(t, e, ws); again != first {
		t.Errorf("the next berth exec reached agent %q, want the running one, %s", again, first)
	}

	// The same answers as the full path.
	secrets := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secrets, []byte(`{"A_SECRET": "s3cret"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"ok", []string{"exec", "--", "echo", "hi"}, 0, "hi\n", ""},
		{"exit code", []string{"exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{"paths mapped", []string{"exec", "--", "sh", "-c", "echo $PWD/main.go"}, 0, ws + "/main.go\n", ""},
		{"remoteEnv", []string{"exec", "--", "sh", "-c", `echo "$FROM_CONFIG" | cut -c1-7`}, 0, "remote \n", ""},
		{"secrets and -e", []string{"--secrets-file", secrets, "exec", "-e", "B=flag", "--", "sh", "-c", `echo "$A_SECRET $B"`}, 0, "s3cret flag\n", ""},
		{"workdir", []string{"exec", "-w", "/tmp", "--", "pwd"}, 0, "/tmp\n", ""},
		{"user", []string{"exec", "-u", "nobody", "--", "id", "-un"}, 0, "nobody\n", ""},
		{"stdin", []string{"exec", "-i", "--", "cat"}, 0, "", ""},
		{"not found", []string{"exec", "--", "no-such-command"}, 127, "", "no-such-command"},
		{"not executable", []string{"exec", "--", "/etc/passwd"}, 126, "", "cannot be invoked"},
		{"unknown user", []string{"exec", "-u", "no-such-user", "--", "true"}, 125, "", "no-such-user"},
		{"missing workdir", []string{"exec", "-w", "/no/such/dir", "--", "true"}, 125, "", "/no/such/dir"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []struct {
				name string
				env  []string
			}{{"direct", nil}, {"full", full}} {
				out, errOut, code := cliEnv(t, e, ws, mode.env, append([]string{"--log-level", "debug"}, tt.args...)...)
				if took := directLine.MatchString(errOut); took != (mode.name == "direct") {
					t.Errorf("%s: took the direct path: %v", mode.name, took)
				}
				errOut = strings.Join(regexp.MustCompile(`(?m)^time=.*\n`).Split(errOut, -1), "")
				if code != tt.code || out != tt.stdout || !strings.Contains(errOut, tt.stderr) {
					t.Errorf("%s: berth %s: code %d stdout %q stderr %q; want %d %q and %q in stderr",
						mode.name, strings.Join(tt.args, " "), code, out, errOut, tt.code, tt.stdout, tt.stderr)
				}
			}
		})
	}

	// berth up on the running instance: the door proves it up, and it
	// prints what the full path printed, but for what that call did.
	out, errOut, code := cli(t, e, ws, "--trust", "--log-level", "debug", "up")
	if code != 0 || !directLine.MatchString(errOut) {
		t.Fatalf("berth up: code %d, direct %v, stderr %s", code, directLine.MatchString(errOut), errOut)
	}
	var fast, slow rpc.Instance
	if err := json.Unmarshal([]byte(out), &fast); err != nil {
		t.Fatalf("berth up printed %q: %v", out, err)
	}
	if err := json.Unmarshal([]byte(upOut), &slow); err != nil {
		t.Fatal(err)
	}
	slow.Created, slow.Hooks, slow.BuildPID = false, nil, ""
	if a, b := mustJSON(t, fast), mustJSON(t, slow); a != b {
		t.Errorf("berth up on the running instance printed\n%s\nwant, as the full path's\n%s", a, b)
	}

	// A changed configuration: the direct path steps aside, and the full
	// path says the instance is stale.
	writeConfig(t, ws, `{"image": "`+e.image+`", "containerEnv": {"NEW": "1"}, "waitFor": "postStartCommand", "postStartCommand": "echo x >> /starts"}`)
	if pid := directAgent(t, e, ws); pid != "" {
		t.Errorf("berth exec after the configuration changed took the direct path")
	}
	out, _, code = cli(t, e, ws, "--trust", "up")
	var stale rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &stale) != nil || !stale.Stale {
		t.Errorf("berth up after the configuration changed: code %d, %s; want stale", code, out)
	}
	writeConfig(t, ws, `{"image": "`+e.image+`", "remoteEnv": {"FROM_CONFIG": "remote ${containerEnv:HOSTNAME}"}, "waitFor": "postStartCommand", "postStartCommand": "echo x >> /starts"}`)

	// A restarted instance has a new agent: berth takes the full path,
	// which runs postStartCommand before the command.
	outside(t, e, ws, "restart")
	out, errOut, code = cli(t, e, ws, "--trust", "--log-level", "debug", "exec", "--", "cat", "/starts")
	if code != 0 || out != "x\nx\n" || directLine.MatchString(errOut) {
		t.Errorf("berth exec after a restart: code %d, direct %v, /starts %q; want the full path, after postStartCommand ran again",
			code, directLine.MatchString(errOut), out)
	}
	if pid := directAgent(t, e, ws); pid == "" {
		t.Errorf("berth exec after the full path took the full path again")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each berth exec owns its process: a kill -9 of one ends its process, and
// only its.
func TestDirectExecKilled(t *testing.T) { eachBackend(t, testDirectExecKilled) }

func testDirectExecKilled(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	if _, errOut, code := cli(t, e, ws, "--trust", "up"); code != 0 {
		t.Fatalf("berth up: %d %s", code, errOut)
	}
	if directAgent(t, e, ws) == "" && directAgent(t, e, ws) == "" {
		t.Fatal("berth exec never took the direct path")
	}
	inst, err := find(t, e, ws)
	if err != nil {
		t.Fatal(err)
	}
	start := func(arg string) *exec.Cmd {
		cmd := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "--trust", "exec", "--", "sleep", arg)
		cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	a, b := start("1001"), start("1002")
	waitProcess(t, e, inst.ID, "sleep 1001")
	waitProcess(t, e, inst.ID, "sleep 1002")
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	backendtest.AssertNoProcess(t, e.b, inst.ID, "sleep 1001")
	waitProcess(t, e, inst.ID, "sleep 1002") // another connection's lives on
	if err := b.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.Wait()
	backendtest.AssertNoProcess(t, e.b, inst.ID, "sleep 1002")
}

// waitProcess waits until args runs in the instance.
func waitProcess(t *testing.T, e engine, id, args string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ := engineExec(t, e.b, id, "0", "ps", "-o", "pid,args")
		for _, line := range strings.Split(out, "\n") {
			if _, cmd, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.TrimSpace(cmd) == args {
				return
			}
		}
	}
	t.Fatalf("%q never ran in the instance", args)
}

// On a fresh instance, a berth exec that comes while the create hooks run
// waits for them: the direct path never runs a command before they are done.
func TestDirectExecWaitsForHooks(t *testing.T) { eachBackend(t, testDirectExecWaitsForHooks) }

func testDirectExecWaitsForHooks(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`", "postCreateCommand": "sleep 4; touch /hooks-done"}`)
	up := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "--trust", "up")
	up.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Process.Kill(); up.Wait() })
	// Once the hook runs, the agent is up behind its door.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if inst, err := find(t, e, ws); err == nil && inst.State == "running" {
			out, _ := engineExec(t, e.b, inst.ID, "0", "ps", "-o", "args")
			if strings.Contains(out, "sleep 4") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the hook never started")
		}
	}
	out, errOut, code := cli(t, e, ws, "--trust", "--log-level", "debug", "exec", "--", "ls", "/hooks-done")
	if code != 0 || directLine.MatchString(errOut) {
		t.Errorf("berth exec during the hooks: code %d, direct %v, stdout %q; want it to wait for them", code, directLine.MatchString(errOut), out)
	}
	if err := up.Wait(); err != nil {
		t.Fatalf("berth up: %v", err)
	}
}
