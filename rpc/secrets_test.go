package rpc_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
)

const (
	fileSecret   = "file-s3cr3t-value"
	clientSecret = "client-s3cr3t-value"
	shadowed     = "shadowed-s3cr3t-value"
)

// noSecret fails t if what shows any secret's value.
func noSecret(t *testing.T, where, what string) {
	t.Helper()
	for _, v := range []string{fileSecret, clientSecret, shadowed, "s3cr3t"} {
		if strings.Contains(what, v) {
			t.Errorf("%s shows a secret (%q):\n%s", where, v, what)
		}
	}
}

// Secrets from the server and from initialize reach processes and hooks,
// and show nowhere else: not in the trace, the log, processes or status.
func TestSecrets(t *testing.T) {
	var log syncBuffer
	e := newEnv(t, envOptions{
		Files:   dcFiles(`"postCreateCommand": "echo hook saw $CLIENT_TOKEN > /tmp/hook.log"`),
		Log:     &log,
		Trace:   true,
		Secrets: map[string]string{"FILE_TOKEN": fileSecret, "BOTH": shadowed},
	})
	c := e.connect(false)
	c.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, InitializationOptions: &rpc.InitializationOptions{
		Secrets: map[string]string{"CLIENT_TOKEN": clientSecret, "BOTH": "client wins"}, Trust: true,
	}}, nil)

	pid := c.exec(rpc.ExecParams{Argv: []string{"sh", "-c", "echo $FILE_TOKEN $CLIENT_TOKEN $BOTH $CALL; echo " + clientSecret}, Env: map[string]string{"CALL": "call", "BOTH": "call wins"}})
	if ex := c.waitExit(pid); ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
	if got, want := c.output(pid, "stdout"), fileSecret+" "+clientSecret+" call wins call\n"+clientSecret+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if res := c.run("cat", "/tmp/hook.log"); res.Stdout != "hook saw "+clientSecret+"\n" {
		t.Errorf("postCreateCommand wrote %q", res.Stdout)
	}

	var procs, st json.RawMessage
	c.mustCall("berth/processes", nil, &procs)
	c.mustCall("berth/status", nil, &st)
	noSecret(t, "berth/processes", string(procs))
	noSecret(t, "berth/status", string(st))
	if !strings.Contains(string(procs), "echo "+secrets.Mask) {
		t.Errorf("berth/processes does not mask the argv: %s", procs)
	}

	c.mustCall("shutdown", nil, nil)
	c.c.Close()
	c.wait()
	out := log.String()
	noSecret(t, "the log", out)
	for _, want := range []string{`recv frame=`, `\"CLIENT_TOKEN\":\"` + secrets.Mask, `send frame=`} {
		if !strings.Contains(out, want) {
			t.Errorf("the trace lacks %q:\n%s", want, out)
		}
	}
}

// A failing hook's output is quoted in errors and in status: masked.
func TestSecretsInHookErrors(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"waitFor": "postCreateCommand", "postCreateCommand": "echo token is $CLIENT_TOKEN; exit 3"`)})
	c := e.connect(false)
	c.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, InitializationOptions: &rpc.InitializationOptions{
		Secrets: map[string]string{"CLIENT_TOKEN": clientSecret}, Trust: true,
	}}, nil)
	err := c.call("berth/exec", rpc.ExecParams{Argv: []string{"true"}}, nil)
	if code(err) != rpc.CodeHookFailed || !strings.Contains(err.Error(), "token is "+secrets.Mask) {
		t.Fatalf("exec: %v, want code %d quoting the masked output", err, rpc.CodeHookFailed)
	}
	noSecret(t, "the error", err.Error())
	var st rpc.Instance
	c.mustCall("berth/status", nil, &st)
	if !strings.Contains(st.HookError, "token is "+secrets.Mask) {
		t.Errorf("hookError %q", st.HookError)
	}
	noSecret(t, "hookError", st.HookError)
	// Another client, without the secret, is told the same, masked: the
	// server masks every client's secrets while the client is connected.
	other := e.dial()
	other.mustCall("berth/status", nil, &st)
	noSecret(t, "another client's status", st.HookError)
}

func TestSecretsInvalid(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tt := range []struct {
		secrets any
		want    string
	}{
		{map[string]any{"A=B": clientSecret}, `"A=B" is not a valid environment variable name`},
		{map[string]any{"A": "x\x00" + clientSecret}, `value of "A" contains a NUL byte`},
		{map[string]any{"A": 12}, "initializationOptions.secrets"},
		{[]string{clientSecret}, "initializationOptions.secrets"},
	} {
		c := e.connect(false)
		err := c.call("initialize", map[string]any{"initializationOptions": map[string]any{"secrets": tt.secrets}}, nil)
		if code(err) != rpc.CodeInvalidParams || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("secrets %v: %v, want invalid params saying %q", tt.secrets, err, tt.want)
		}
		if err != nil {
			noSecret(t, "the error", err.Error())
		}
	}
}
