package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
)

// lockedBuffer collects berth's stderr, written by exec's copier while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	fileSecret = "file-Secret-9f3a1c"
	initSecret = "init-Secret-27be40"
)

// noSecrets fails t if text shows a secret's value.
func noSecrets(t *testing.T, where, text string) {
	t.Helper()
	for _, v := range []string{fileSecret, initSecret} {
		if strings.Contains(text, v) {
			t.Errorf("%s shows the secret %q:\n%s", where, v, text)
		}
	}
}

// Secrets from --secrets-file and from initialize reach berth/exec and a
// postCreateCommand, and appear nowhere in berth's log with --trace, nor
// in berth/processes, berth/status or a failed call's error.
func TestSecretsEndToEnd(t *testing.T) { eachBackend(t, testSecretsEndToEnd) }

func testSecretsEndToEnd(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	"waitFor": "postCreateCommand",
	"postCreateCommand": "echo $FILE_SECRET > /tmp/hook-saw; echo $INIT_SECRET >> /tmp/hook-saw"
}`)
	file := filepath.Join(t.TempDir(), "secrets.json")
	writeFile(t, file, `{"FILE_SECRET": "`+fileSecret+`", "SHARED": "from the file"}`)

	var log lockedBuffer
	b := startBerthLog(t, berthBin, e, io.MultiWriter(&log, &testWriter{t: t}), "--trace", "--log-level", "debug", "--secrets-file", file)
	b.initialize(ws, &rpc.InitializationOptions{Secrets: map[string]string{"INIT_SECRET": initSecret, "SHARED": "from initialize"}, Trust: true})

	// The busybox test image has no printenv.
	printenv := func(name string, env map[string]string) string {
		t.Helper()
		var res rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", `echo "$` + name + `"`}, Env: env}, &res)
		exit, out := b.waitExit(res.PID)
		if exit.Code != 0 {
			t.Errorf("echo $%s: %+v, stderr %q", name, exit, out["stderr"])
		}
		return strings.TrimSuffix(out["stdout"], "\n")
	}
	if got := printenv("FILE_SECRET", nil); got != fileSecret {
		t.Errorf("FILE_SECRET = %q", got)
	}
	if got := printenv("INIT_SECRET", nil); got != initSecret {
		t.Errorf("INIT_SECRET = %q", got)
	}
	if got := printenv("SHARED", nil); got != "from initialize" {
		t.Errorf("SHARED = %q, want initialize's secret over the file's", got)
	}
	if got := printenv("SHARED", map[string]string{"SHARED": "from the call"}); got != "from the call" {
		t.Errorf("SHARED = %q, want the call's env over the secrets", got)
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "/tmp/hook-saw"}}, &run)
	if want := fileSecret + "\n" + initSecret + "\n"; run.Stdout != want {
		t.Errorf("postCreateCommand saw %q, want %q", run.Stdout, want)
	}

	// A failed start says why without the environment.
	err := b.call("berth/exec", rpc.ExecParams{Argv: []string{"no-such-binary"}, Env: map[string]string{"X": "y"}}, nil)
	if code(err) != rpc.CodeCommandNotFound {
		t.Errorf("exec of a missing binary: %v", err)
	} else {
		noSecrets(t, "the error", err.Error())
	}
	var procs, st json.RawMessage
	b.mustCall("berth/processes", struct{}{}, &procs)
	b.mustCall("berth/status", struct{}{}, &st)
	noSecrets(t, "berth/processes", string(procs))
	noSecrets(t, "berth/status", string(st))

	b.mustCall("shutdown", nil, nil)
	b.client.Notify(context.Background(), "exit", nil)
	<-b.waited
	out := log.String()
	noSecrets(t, "berth's log", out)
	for _, want := range []string{"level=DEBUG msg=recv", `\"INIT_SECRET\":\"` + secrets.Mask + `\"`, `\"text\":\"` + secrets.Mask + `\\n\"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the trace lacks %q", want)
		}
	}
}

// The CLI takes --secrets-file too, and refuses a file that is not an
// object of strings without quoting it.
func TestSecretsFileCLI(t *testing.T) {
	e := needBackend(t, "docker")
	ws := workspace(t, e.b)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	writeFile(t, good, `{"FILE_SECRET": "`+fileSecret+`"}`)
	stdout, stderr, code := cli(t, e, ws, "--secrets-file", good, "exec", "--", "sh", "-c", `echo "$FILE_SECRET"`)
	if code != 0 || stdout != fileSecret+"\n" {
		t.Errorf("exec: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	noSecrets(t, "stderr", stderr)

	for _, tt := range []struct{ body, want string }{
		{`{"FILE_SECRET": 7}`, `the value of "FILE_SECRET" must be a string`},
		{`["` + fileSecret + `"]`, "want a JSON object of strings"},
		{`{"FILE_SECRET": "` + fileSecret + `"`, "not valid JSON"},
	} {
		bad := filepath.Join(dir, "bad.json")
		writeFile(t, bad, tt.body)
		cmd := exec.Command(berthBin, "--secrets-file", bad, "--workspace", ws, "exec", "--", "true")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "--secrets-file") || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("secrets file %s: %v, stderr %q; want a failure saying %q", tt.body, err, errb.String(), tt.want)
		}
		noSecrets(t, "stderr", errb.String())
	}
	cmd := exec.Command(berthBin, "--secrets-file", filepath.Join(dir, "missing.json"), "--workspace", ws, "ls")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "missing.json") {
		t.Errorf("missing secrets file: %v, %s", err, out)
	}
}
