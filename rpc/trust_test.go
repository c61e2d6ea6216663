package rpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/trust"
)

// editor answers window/showMessageRequest as told, and keeps the
// questions.
type editor struct {
	mu     sync.Mutex
	answer any // the result: a MessageActionItem, or nil for null
	err    error
	asked  []protocol.ShowMessageRequestParams
}

func (ed *editor) handle(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	if method != "window/showMessageRequest" {
		return nil, errors.New("unexpected request " + method)
	}
	var p protocol.ShowMessageRequestParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	ed.mu.Lock()
	defer ed.mu.Unlock()
	ed.asked = append(ed.asked, p)
	return ed.answer, ed.err
}

func (ed *editor) questions() []protocol.ShowMessageRequestParams {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	return append([]protocol.ShowMessageRequestParams(nil), ed.asked...)
}

// connectEditor opens an editor connection whose client answers the
// server's requests with ed, and initializes it with caps and opts.
func (e *env) connectEditor(ed *editor, caps *rpc.ClientCapabilities, opts *rpc.InitializationOptions) *conn {
	e.t.Helper()
	sc, cc := net.Pipe()
	c := &conn{t: e.t, notes: &notes{changed: make(chan struct{})}, done: make(chan error, 1)}
	go func() { c.done <- e.srv.ServeConn(context.Background(), sc) }()
	c.c = rpc.NewClientAnswering(context.Background(), cc, e.log, c.notes.add, ed.handle)
	e.t.Cleanup(func() {
		c.c.Close()
		c.wait()
	})
	c.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, Capabilities: caps, InitializationOptions: opts}, nil)
	return c
}

var showMessage = &rpc.ClientCapabilities{Window: &rpc.WindowClientCapabilities{ShowMessage: &protocol.ShowMessageRequestClientCapabilities{}}}

func TestTrustOverRPC(t *testing.T) {
	trustIt := protocol.MessageActionItem{Title: rpc.TrustAction}
	tests := []struct {
		name     string
		caps     *rpc.ClientCapabilities
		opts     *rpc.InitializationOptions
		answer   any
		err      error
		wantCode int64
		wantText []string
		asks     int
	}{
		{name: "trust", caps: showMessage, answer: trustIt, asks: 1},
		{name: "null", caps: showMessage, answer: nil, wantCode: rpc.CodeUntrusted, wantText: []string{"declined", "--trust", "initializationOptions.trust"}, asks: 1},
		{name: "don't trust", caps: showMessage, answer: protocol.MessageActionItem{Title: rpc.DeclineAction}, wantCode: rpc.CodeUntrusted, asks: 1},
		{name: "error", caps: showMessage, err: errors.New("no window here"), wantCode: rpc.CodeUntrusted, wantText: []string{"no window here"}, asks: 1},
		{name: "no capability", wantCode: rpc.CodeUntrusted, wantText: []string{"capabilities.window.showMessage", "--trust", "initializationOptions.trust"}},
		{name: "initializationOptions.trust", opts: &rpc.InitializationOptions{Trust: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{Files: dcFiles(`"postCreateCommand": "echo ran >> /tmp/hook.log"`)})
			ed := &editor{answer: tt.answer, err: tt.err}
			c := e.connectEditor(ed, tt.caps, tt.opts)
			err := c.call("berth/up", rpc.UpParams{}, nil)
			if code(err) != tt.wantCode {
				t.Fatalf("up: %v, want code %d", err, tt.wantCode)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			_, ferr := e.mem.Find(context.Background(), e.ws)
			if made := ferr == nil; made != (tt.wantCode == 0) {
				t.Errorf("container made: %v, want %v", made, tt.wantCode == 0)
			}
			qs := ed.questions()
			if len(qs) != tt.asks {
				t.Fatalf("asked %d times, want %d", len(qs), tt.asks)
			}
			if tt.asks == 0 {
				return
			}
			q := qs[0]
			if q.Type != protocol.MessageTypeWarning || len(q.Actions) != 2 || q.Actions[0].Title != rpc.TrustAction || q.Actions[1].Title != rpc.DeclineAction {
				t.Errorf("question %+v, want a warning with Trust and Don't trust", q)
			}
			for _, w := range []string{e.ws, "postCreateCommand", "echo ran"} {
				if !strings.Contains(q.Message, w) {
					t.Errorf("question %q does not mention %q", q.Message, w)
				}
			}
		})
	}
}

// The server's store keeps a trust given over one connection for the
// next, until the configuration changes.
func TestTrustStoreOverRPC(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"postStartCommand": "true"`)})
	store := trust.NewStore(filepath.Join(t.TempDir(), "trust.json"))
	e.srv = rpc.NewServer(rpc.Options{Managers: map[string]*session.Manager{"memory": e.mgr}, Default: "memory", Logger: e.log, Version: "test-1", Trust: store})

	first := &editor{answer: protocol.MessageActionItem{Title: rpc.TrustAction}}
	e.connectEditor(first, showMessage, nil).mustCall("berth/up", rpc.UpParams{}, nil)
	second := &editor{}
	c := e.connectEditor(second, showMessage, nil)
	c.mustCall("berth/up", rpc.UpParams{}, nil)
	if len(first.questions()) != 1 || len(second.questions()) != 0 {
		t.Fatalf("asked %d and %d times, want once", len(first.questions()), len(second.questions()))
	}
	writeFile(t, filepath.Join(e.ws, ".devcontainer", "devcontainer.json"), dcFiles(`"postStartCommand": "false"`)[".devcontainer/devcontainer.json"])
	if err := c.call("berth/up", rpc.UpParams{}, nil); code(err) != rpc.CodeUntrusted {
		t.Fatalf("up after a change: %v, want code %d", err, rpc.CodeUntrusted)
	}
	if len(second.questions()) != 1 {
		t.Errorf("a changed configuration asked %d times, want once", len(second.questions()))
	}
}

// Refused workspaces fail with -32030, in initialize and as a param.
func TestRefusedWorkspaceOverRPC(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.connect(false)
	err := c.call("initialize", rpc.InitializeParams{RootURI: "file:///etc"}, nil)
	if code(err) != rpc.CodeRefusedPath || !strings.Contains(err.Error(), "rootUri") || !strings.Contains(err.Error(), "system directory /etc") {
		t.Errorf("initialize on /etc: %v, want code %d naming rootUri and why", err, rpc.CodeRefusedPath)
	}
	c = e.dial()
	for _, ws := range []string{"/", "/etc/ssh", "/usr"} {
		err := c.call("berth/up", rpc.UpParams{Workspace: ws}, nil)
		if code(err) != rpc.CodeRefusedPath || !strings.Contains(err.Error(), "workspace") {
			t.Errorf("up %s: %v, want code %d", ws, err, rpc.CodeRefusedPath)
		}
	}
}

// A question nobody answers declines after the timeout, and berth takes
// it back with $/cancelRequest.
func TestTrustUnanswered(t *testing.T) {
	t.Cleanup(rpc.SetConfirmTimeout(300 * time.Millisecond)) // registered first: restored last
	e := newEnv(t, envOptions{Files: dcFiles(`"postStartCommand": "true"`)})
	sc, cc := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeConn(context.Background(), sc) }()

	var mu sync.Mutex
	var asked []jsonrpc2.ID
	var cancelled []jsonrpc2.ID
	stop := make(chan struct{})
	h := jsonrpc2.HandlerWithError(func(ctx context.Context, c *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		switch req.Method {
		case "window/showMessageRequest":
			mu.Lock()
			asked = append(asked, req.ID)
			mu.Unlock()
			<-stop // never answers while the test runs
			return nil, nil
		case "$/cancelRequest":
			var p struct {
				ID jsonrpc2.ID `json:"id"`
			}
			if req.Params != nil && json.Unmarshal(*req.Params, &p) == nil {
				mu.Lock()
				cancelled = append(cancelled, p.ID)
				mu.Unlock()
			}
		}
		return nil, nil
	})
	client := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewBufferedStream(cc, jsonrpc2.VSCodeObjectCodec{}), jsonrpc2.AsyncHandler(h))
	t.Cleanup(func() {
		close(stop)
		client.Close()
		<-done
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.Call(ctx, "initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, Capabilities: showMessage}, nil); err != nil {
		t.Fatal(err)
	}
	err := client.Call(ctx, "berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeUntrusted || !strings.Contains(err.Error(), "no answer within") {
		t.Fatalf("up: %v; want code %d saying no answer came", err, rpc.CodeUntrusted)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := len(asked) == 1 && len(cancelled) == 1 && cancelled[0] == asked[0]
		got := fmt.Sprint(asked, cancelled)
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("asked, cancelled = %s; want the one question cancelled", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
