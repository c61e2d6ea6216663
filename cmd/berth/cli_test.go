package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/berthdev/berth/rpc"
)

// The command line needs no engine to explain itself.
func TestCLIUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // substrings of stdout
		notOut   []string // not in stdout
		stderr   string   // substring of stderr
		emptyOut bool
	}{
		{name: "verb help", args: []string{"up", "--help"}, stdout: []string{"--recreate", "--workspace"}, notOut: []string{"--rm", "--json"}},
		{name: "help verb", args: []string{"help", "exec"}, stdout: []string{"--interactive", "--tty", "--workdir", "--env-file", "--user"}},
		{name: "status help", args: []string{"status", "--help"}, stdout: []string{"--json", "agent build"}},
		{name: "limits help", args: []string{"limits", "--help"}, stdout: []string{"--memory", "--cpus", "--pids", "without restarting"}},
		{name: "version flag", args: []string{"--version"}, stdout: []string{"berth "}},
		{name: "version verb", args: []string{"version"}, stdout: []string{"berth "}},
		{name: "completion bash", args: []string{"completion", "bash"}, stdout: []string{"__start_berth"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, stdout: []string{"#compdef berth"}},
		{name: "completion fish", args: []string{"completion", "fish"}, stdout: []string{"complete -c berth"}},
		{name: "unknown flag", args: []string{"up", "--bogus"}, code: 125, stderr: "See 'berth up --help'", emptyOut: true},
		{name: "unknown verb", args: []string{"upp"}, code: 125, stderr: "unknown command", emptyOut: true},
		{name: "exec without a command", args: []string{"exec"}, code: 125, stderr: "requires at least 1 arg", emptyOut: true},
		{name: "bad env", args: []string{"exec", "-e", "=x", "--", "true"}, code: 125, stderr: "invalid environment variable", emptyOut: true},
		{name: "missing env file", args: []string{"exec", "--env-file", "/nonexistent", "--", "true"}, code: 125, stderr: "--env-file", emptyOut: true},
		{name: "stdio and tcp", args: []string{"--stdio", "--tcp", "127.0.0.1:0"}, code: 125, stderr: "exclusive", emptyOut: true},
		{name: "bad path direction", args: []string{"path", "sideways", "x"}, code: 125, stderr: "to-container or to-host", emptyOut: true},
		{name: "plugin help", args: []string{"plugin", "--help"}, stdout: []string{"PLUGIN.METHOD", "--timeout", "exits 127"}},
		{name: "plugin without a method", args: []string{"plugin"}, code: 125, stderr: "accepts between 1 and 2 arg", emptyOut: true},
		{name: "plugin params not JSON", args: []string{"plugin", "hello.greet", "{x"}, code: 125, stderr: "params: not JSON", emptyOut: true},
		{name: "plugin negative timeout", args: []string{"plugin", "--timeout", "-1s", "hello.greet"}, code: 125, stderr: "--timeout", emptyOut: true},
		{name: "plugins help", args: []string{"plugins", "--help"}, stdout: []string{"/.plugin.toml", "--json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(berthBin, tt.args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr %q", code, tt.code, errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(out.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, out.String())
				}
			}
			if !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.stderr)
			}
			if tt.emptyOut && out.Len() > 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

// berth exec takes docker exec's flags and exits with docker's codes.
func TestCLIExecFlags(t *testing.T) { eachBackend(t, testCLIExecFlags) }

func testCLIExecFlags(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	envFile := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(envFile, []byte("# a comment\nFROM_FILE=file value\n\nBOTH=file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_PASSED", "from berth")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string // substring
	}{
		{"exit code", []string{"exec", "--", "sh", "-c", "exit 3"}, 3, "", ""},
		{"flags after the verb, args after the command", []string{"exec", "-e", "A=1", "--", "sh", "-c", `echo "$A" "$@"`, "sh", "-e", "x"}, 0, "1 -e x\n", ""},
		{"command flags are the command's", []string{"exec", "echo", "-n", "-e", "x"}, 0, "x", ""},
		{"env and env file", []string{"exec", "--env-file", envFile, "-e", "BOTH=flag", "-e", "BERTH_TEST_PASSED", "--", "sh", "-c", `echo "$FROM_FILE|$BOTH|$BERTH_TEST_PASSED"`}, 0, "file value|flag|from berth\n", ""},
		{"workdir", []string{"exec", "-w", "/tmp", "--", "pwd"}, 0, "/tmp\n", ""},
		{"user", []string{"exec", "-u", "nobody", "--", "id", "-un"}, 0, "nobody\n", ""},
		{"not found", []string{"exec", "--", "no-such-command"}, 127, "", "no-such-command"},
		{"not executable", []string{"exec", "--", "/etc/passwd"}, 126, "", "cannot be invoked"},
		{"a directory", []string{"exec", "--", "/etc"}, 126, "", "cannot be invoked"},
		{"unknown user", []string{"exec", "-u", "no-such-user", "--", "true"}, 125, "", "no-such-user"},
		{"missing workdir", []string{"exec", "-w", "/no/such/dir", "--", "true"}, 125, "", "/no/such/dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := cli(t, e, ws, tt.args...)
			if code != tt.code || out != tt.stdout || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("berth %s: code %d stdout %q stderr %q; want %d %q and %q in stderr",
					strings.Join(tt.args, " "), code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}

	// berth itself failing is 125, with the reason on stderr.
	other := workspace(t, e.b)
	if out, errOut, code := cli(t, e, other, "--image", "berth-test/missing:404", "exec", "--", "true"); code != 125 || out != "" || !strings.Contains(errOut, "berth-test/missing:404") {
		t.Errorf("exec with a missing image: code %d stdout %q stderr %q; want 125 and the image named", code, out, errOut)
	}
}

// berth up's stdout is one JSON document; hook output goes to stderr.
func TestCLIUpStdout(t *testing.T) { eachBackend(t, testCLIUpStdout) }

func testCLIUpStdout(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	dc := `{"image": "` + e.image + `", "postCreateCommand": "echo hook-output; echo hook-stderr >&2"}`
	if err := os.MkdirAll(filepath.Join(ws, ".devcontainer"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, ".devcontainer", "devcontainer.json"), []byte(dc), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, e, ws, "up", "--trust")
	var inst rpc.Instance
	dec := json.NewDecoder(strings.NewReader(out))
	if code != 0 || dec.Decode(&inst) != nil || inst.State != "running" {
		t.Fatalf("berth up: code %d stdout %q stderr %q", code, out, errOut)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Errorf("berth up printed more than one JSON document: %q", out)
	}
	if !strings.Contains(errOut, "hook-output") || !strings.Contains(errOut, "hook-stderr") {
		t.Errorf("hook output missing from stderr %q", errOut)
	}

	// ls lists it, with its backend, as JSON too.
	out, _, code = cli(t, e, ws, "ls", "--json")
	var list []rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("berth ls --json: code %d, %q", code, out)
	}
	found := false
	for _, in := range list {
		found = found || (in.Name == inst.Name && in.Backend == e.name)
	}
	if !found {
		t.Errorf("berth ls --json lacks %s on %s: %s", inst.Name, e.name, out)
	}
	out, _, _ = cli(t, e, ws, "ls")
	if !strings.Contains(out, "BACKEND") {
		t.Errorf("berth ls has no BACKEND column: %q", out)
	}
}

// berth exec -t gives the command a terminal of the local terminal's size,
// and berth shell a login shell on one.
func TestCLITerminal(t *testing.T) { eachBackend(t, testCLITerminal) }

func testCLITerminal(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	if _, errOut, code := cli(t, e, ws, "up"); code != 0 {
		t.Fatalf("berth up: %d %s", code, errOut)
	}
	run := func(input string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(berthBin, append([]string{"--backend", e.name, "--workspace", ws}, args...)...)
		cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 31, Cols: 101})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if input != "" {
			go func() {
				time.Sleep(500 * time.Millisecond) // let the shell start
				io.WriteString(f, input)
			}()
		}
		var out bytes.Buffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.Copy(&out, f) // ends with EIO once berth exits
		}()
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		var err2 error
		select {
		case err2 = <-waited:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("berth %v did not exit; output %q", args, out.String())
		}
		f.Close()
		<-done
		code := 0
		if ee, ok := err2.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return out.String(), code
	}
	out, code := run("", "exec", "-it", "--", "sh", "-c", "stty size; tty; exit 4")
	if code != 4 || !strings.Contains(out, "31 101") || !strings.Contains(out, "/dev/pts/") {
		t.Errorf("berth exec -it: code %d output %q; want 4, the size 31 101 and a tty", code, out)
	}
	out, code = run("echo shell-$((6*7)); exit 5\n", "shell")
	if code != 5 || !strings.Contains(out, "shell-42") {
		t.Errorf("berth shell: code %d output %q; want 5 and shell-42", code, out)
	}
}

// berth forward holds a tunnel open until it is interrupted.
func TestCLIForward(t *testing.T) { eachBackend(t, testCLIForward) }

func testCLIForward(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	if _, errOut, code := cli(t, e, ws, "up"); code != 0 {
		t.Fatalf("berth up: %d %s", code, errOut)
	}
	// A server in the container, held by a berth exec of its own.
	server := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "exec", "--", "sh", "-c", "echo hello | nc -l -p 8080")
	server.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })

	fwd := exec.Command(berthBin, "--backend", e.name, "--workspace", ws, "forward", "0:8080")
	fwd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
	addr, errb := startForward(t, fwd)
	got := readThrough(addr, 20*time.Second)
	if got != "hello\n" {
		t.Errorf("through the forward: %q, want hello", got)
	}
	fwd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- fwd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("berth forward after Ctrl-C: %v; stderr %q", err, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth forward did not end on Ctrl-C")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts after berth forward ended", addr)
	}
}

// startForward starts a `berth forward` command and returns the address
// it prints, and its stderr; the command is killed when the test ends.
func startForward(t *testing.T, fwd *exec.Cmd) (string, *bytes.Buffer) {
	t.Helper()
	stdout, err := fwd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errb := &bytes.Buffer{}
	fwd.Stderr = errb
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Process.Kill(); fwd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("berth forward printed no address: %v; stderr %q", err, errb.String())
	}
	return strings.TrimSpace(addr), errb
}

// readThrough reads what a server behind addr sends, dialling again until
// it answers (an nc that isn't listening yet answers nothing) or within
// runs out.
func readThrough(addr string, within time.Duration) string {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if len(b) > 0 {
			return string(b)
		}
	}
	return ""
}
