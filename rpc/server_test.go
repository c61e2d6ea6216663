package rpc_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/rpc"
)

// A connection's lifecycle: nothing before initialize, initialize once,
// nothing but exit after shutdown.
func TestConnectionLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.connect(false)
	init := rpc.InitializeParams{RootURI: "file://" + e.ws}
	steps := []struct {
		method string
		params any
		want   int64
	}{
		{"berth/list", nil, rpc.CodeServerNotInitialized},
		{"shutdown", nil, rpc.CodeServerNotInitialized},
		{"berth/nope", nil, rpc.CodeMethodNotFound},
		{"initialize", init, 0},
		{"initialize", init, rpc.CodeInvalidRequest},
		{"berth/nope", nil, rpc.CodeMethodNotFound},
		{"berth/list", nil, 0},
		{"shutdown", nil, 0},
		{"berth/list", nil, rpc.CodeShuttingDown},
		{"initialize", init, rpc.CodeShuttingDown},
		{"shutdown", nil, rpc.CodeShuttingDown},
	}
	for i, s := range steps {
		if err := c.call(s.method, s.params, nil); code(err) != s.want {
			t.Errorf("step %d, %s: %v, want code %d", i, s.method, err, s.want)
		}
	}
	// Unknown notifications, $/ ones above all, are ignored.
	for _, m := range []string{"initialized", "$/setTrace", "berth/whatever"} {
		if err := c.c.Notify(t.Context(), m, map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.c.Notify(t.Context(), "exit", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); err != nil {
		t.Errorf("ServeConn after shutdown and exit: %v", err)
	}
	select {
	case <-c.c.Done():
	case <-time.After(5 * time.Second):
		t.Error("the server did not hang up after exit")
	}
}

func TestExitWithoutShutdown(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	if err := c.c.Notify(t.Context(), "exit", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(); !errors.Is(err, rpc.ErrExitWithoutShutdown) {
		t.Errorf("ServeConn: %v, want ErrExitWithoutShutdown", err)
	}
}

func TestInitialize(t *testing.T) {
	e := newEnv(t, envOptions{Others: []string{"other"}})
	sub := e.ws + "/sub"
	writeFile(t, sub+"/.devcontainer.json", `{"image": "img:1", "customizations": {"berth": {"backend": "other"}}}`)
	tests := []struct {
		name        string
		params      any
		wantWS      string
		wantBackend string
		wantCode    int64
		wantMsg     string
	}{
		{name: "rootUri", params: rpc.InitializeParams{RootURI: "file://" + e.ws}, wantWS: e.ws, wantBackend: "memory"},
		{name: "rootPath", params: rpc.InitializeParams{RootPath: e.ws}, wantWS: e.ws, wantBackend: "memory"},
		{name: "workspaceFolders", params: rpc.InitializeParams{WorkspaceFolders: []protocol.WorkspaceFolder{{URI: "file://" + e.ws, Name: "ws"}}}, wantWS: e.ws, wantBackend: "memory"},
		{name: "no root", params: rpc.InitializeParams{}, wantBackend: "memory"},
		{name: "no params", wantBackend: "memory"},
		{name: "backend option", params: rpc.InitializeParams{RootPath: e.ws, InitializationOptions: &rpc.InitializationOptions{Backend: "other"}}, wantWS: e.ws, wantBackend: "other"},
		{name: "backend from the workspace", params: rpc.InitializeParams{RootPath: sub}, wantWS: sub, wantBackend: "other"},
		{name: "the option wins", params: rpc.InitializeParams{RootPath: sub, InitializationOptions: &rpc.InitializationOptions{Backend: "memory"}}, wantWS: sub, wantBackend: "memory"},
		{name: "unknown backend", params: rpc.InitializeParams{InitializationOptions: &rpc.InitializationOptions{Backend: "docker"}},
			wantCode: rpc.CodeInvalidParams, wantMsg: `initializationOptions.backend: unknown or unavailable backend "docker" (available: memory, other)`},
		{name: "missing root", params: rpc.InitializeParams{RootURI: "file:///no/such/dir"}, wantCode: rpc.CodeInvalidParams, wantMsg: "invalid params: rootUri: invalid workspace"},
		{name: "relative root", params: rpc.InitializeParams{RootPath: "rel/dir"}, wantCode: rpc.CodeInvalidParams, wantMsg: "rootPath"},
		{name: "remote URI", params: rpc.InitializeParams{WorkspaceFolders: []protocol.WorkspaceFolder{{URI: "file://host/x"}}}, wantCode: rpc.CodeInvalidParams, wantMsg: "workspaceFolders[0].uri"},
		{name: "params not an object", params: []int{1}, wantCode: rpc.CodeInvalidParams, wantMsg: "invalid params: params: expected an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect(false)
			var res rpc.InitializeResult
			err := c.call("initialize", tt.params, &res)
			if code(err) != tt.wantCode || (tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("initialize: %v, want code %d and %q", err, tt.wantCode, tt.wantMsg)
			}
			if err != nil {
				return
			}
			want := rpc.InitializeResult{
				ServerInfo: rpc.ServerInfo{Name: "berth", Version: "test-1"},
				Capabilities: rpc.Capabilities{Berth: rpc.BerthCapabilities{
					Backends: []string{"memory", "other"}, Backend: tt.wantBackend, Methods: rpc.MethodNames(),
					DefaultWorkspace: tt.wantWS, AgentReason: "agent not configured",
					Engine: rpc.Engine{BindMounts: true}, // the memory backend is local
				}},
			}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("initialize (-want +got):\n%s", diff)
			}
			if e.srv.Version() != "test-1" {
				t.Errorf("Version %q", e.srv.Version())
			}
		})
	}
}

// Ending the connection ends its processes; shutdown ends them before it
// answers, each with its berth/exit.
func TestConnectionEndEndsProcesses(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		c := e.dial()
		pid := c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}})
		c.mustCall("shutdown", nil, nil)
		exits := decode[rpc.ExitParams](t, c.notes.all(), "berth/exit")
		if len(exits) != 1 || exits[0].PID != pid || exits[0].Signal != "SIGTERM" {
			t.Errorf("exits before shutdown's answer: %+v", exits)
		}
		if procs, _ := e.mem.Processes(e.ws); len(procs) != 0 {
			t.Errorf("still running: %q", procs)
		}
	})
	t.Run("disconnect", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		c := e.dial()
		c.exec(rpc.ExecParams{Argv: []string{"sleep", "infinity"}})
		c.exec(rpc.ExecParams{Argv: []string{"sh", "-c", "sleep 100"}})
		c.c.Close()
		if err := c.wait(); err != nil {
			t.Errorf("ServeConn after a disconnect: %v", err)
		}
		if procs, _ := e.mem.Processes(e.ws); len(procs) != 0 {
			t.Errorf("still running: %q", procs)
		}
	})
}

// An editor session's end stops a devcontainer.json's container
// (shutdownAction); a one-off command's never does.
func TestServeCommandNeverStops(t *testing.T) {
	for _, tt := range []struct {
		command bool
		want    string
	}{{false, "stopped"}, {true, "running"}} {
		e := newEnv(t, envOptions{Files: dcFiles("")})
		c := e.connect(tt.command)
		c.mustCall("initialize", rpc.InitializeParams{RootPath: e.ws}, nil)
		var up rpc.Instance
		c.mustCall("berth/up", nil, &up)
		c.c.Close()
		c.wait()
		inst, err := e.mem.Find(t.Context(), e.ws)
		if err != nil || string(inst.State) != tt.want {
			t.Errorf("command %v: state %s, %v; want %s", tt.command, inst.State, err, tt.want)
		}
	}
}

// $/cancelRequest ends a request with -32800, and its process with it.
func TestCancelRequest(t *testing.T) {
	e := newEnv(t, envOptions{})
	w := e.dialWire()
	errc := make(chan error, 1)
	go func() { errc <- w.call("slow", "berth/run", rpc.ExecParams{Argv: []string{"sleep", "30"}}, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs, _ := e.mem.Processes(e.ws)
		if slices.Contains(procs, "sleep 30") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("berth/run never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Unknown ids and malformed cancels are ignored.
	for _, p := range []any{map[string]any{"id": "nope"}, "garbage"} {
		if err := w.conn.Notify(t.Context(), "$/cancelRequest", p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.conn.Notify(t.Context(), "$/cancelRequest", map[string]any{"id": "slow"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if code(err) != rpc.CodeRequestCancelled {
			t.Errorf("cancelled run: %v, want code %d", err, rpc.CodeRequestCancelled)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancel was not honoured")
	}
	if procs, _ := e.mem.Processes(e.ws); len(procs) != 0 {
		t.Errorf("still running: %q", procs)
	}
}

// A request with a workDoneToken gets $/progress begin, reports and end,
// the end before the response; every step is also a window/logMessage.
func TestWorkDoneProgress(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"postStartCommand": "true"`)})
	c := e.dial()
	var up rpc.Instance
	c.mustCall("berth/up", map[string]any{"workDoneToken": "up-1"}, &up)
	var got []string
	for _, x := range c.notes.all() {
		switch x.Method {
		case "$/progress":
			var p struct {
				Token string
				Value struct{ Kind, Title, Message string }
			}
			if err := json.Unmarshal(x.Params, &p); err != nil {
				t.Fatal(err)
			}
			got = append(got, strings.TrimSpace(p.Token+" "+p.Value.Kind+" "+p.Value.Title+p.Value.Message))
		case "window/logMessage":
			var p protocol.LogMessageParams
			if err := json.Unmarshal(x.Params, &p); err != nil {
				t.Fatal(err)
			}
			got = append(got, "log "+p.Message)
		}
	}
	want := []string{"up-1 begin berth: up", "up-1 report running postStartCommand", "log berth: running postStartCommand", "up-1 end"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}

	// Without a token: log messages only. An invalid token is no token.
	before := len(c.notes.all())
	c.mustCall("berth/up", map[string]any{"workDoneToken": map[string]any{"x": 1}, "recreate": true}, &up)
	for _, x := range c.notes.all()[before:] {
		if x.Method == "$/progress" {
			t.Errorf("progress for an invalid token: %s", x.Params)
		}
	}
}

// The order on the wire: a process's output follows the reply that names
// its pid.
func TestExecReplyBeforeOutput(t *testing.T) {
	e := newEnv(t, envOptions{})
	w := e.dialWire()
	var res rpc.ExecResult
	if err := w.call("x", "berth/exec", rpc.ExecParams{Argv: []string{"echo", "hi"}}, &res); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(w.transcript(), "berth/exit") {
		if time.Now().After(deadline) {
			t.Fatalf("no exit: %q", w.transcript())
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []string{`reply "init"`, `reply "x"`, "berth/output", "berth/exit"}
	if diff := cmp.Diff(want, w.transcript()); diff != "" {
		t.Errorf("wire order (-want +got):\n%s", diff)
	}

	// Work-done progress ends before the response.
	if err := w.call("r", "berth/run", map[string]any{"argv": []string{"true"}, "workDoneToken": 7}, nil); err != nil {
		t.Fatal(err)
	}
	tr := w.transcript()
	if i := slices.Index(tr, `reply "r"`); i < 1 || tr[i-1] != "$/progress" {
		t.Errorf("the reply does not follow the progress end: %q", tr)
	}
}

// What isn't JSON-RPC at all is answered on the wire, and the connection
// goes on.
func TestMalformedMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dialRaw()
	tests := []struct {
		body string
		want float64
	}{
		{`{"jsonrpc":"2.0","id":1,"method":`, rpc.CodeParseError},
		{`{"jsonrpc":"2.0","id":2,"method":"berth/list"}`, rpc.CodeServerNotInitialized},
		{`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"rootPath":7}}`, rpc.CodeInvalidParams},
	}
	for _, tt := range tests {
		rc.send(tt.body)
		m := rc.recv()
		errObj, _ := m["error"].(map[string]any)
		if errObj == nil || errObj["code"] != tt.want {
			t.Errorf("%s: answered %v, want code %v", tt.body, m, tt.want)
		}
	}
}

// A frozen engine answers berth/status with -32010 within the metadata
// deadline, not never.
func TestFrozenEngineStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial()
	c.run("true")
	e.mem.Freeze()
	start := time.Now()
	err := c.call("berth/status", nil, nil)
	if code(err) != rpc.CodeBackendUnavailable {
		t.Errorf("status: %v, want code %d", err, rpc.CodeBackendUnavailable)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("status took %v", d)
	}
	// berth/processes is inline and needs no engine.
	var procs []rpc.ProcessInfo
	c.mustCall("berth/processes", nil, &procs)
	e.mem.Thaw()
	c.mustCall("berth/status", nil, nil)
}
