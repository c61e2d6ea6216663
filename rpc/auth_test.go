package rpc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
)

const testToken = "s3cret-token-0123456789abcdef"

// dialGated opens a raw connection served with opts.
func (e *env) dialGated(opts rpc.ConnOptions) *rawConn {
	e.t.Helper()
	sc, cc := net.Pipe()
	rc := &rawConn{t: e.t, c: cc, r: bufio.NewReader(cc), done: make(chan error, 1)}
	go func() { rc.done <- e.srv.ServeConnWith(context.Background(), sc, opts) }()
	e.t.Cleanup(func() {
		cc.Close()
		<-rc.done
	})
	return rc
}

// closed reports whether the server has ended the connection.
func (rc *rawConn) closed() bool {
	rc.t.Helper()
	select {
	case <-rc.done:
		rc.done <- nil
	case <-time.After(5 * time.Second):
		return false
	}
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := rc.r.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe)
}

func initBody(id string, opts map[string]any) string {
	params := map[string]any{"rootPath": ""}
	if opts != nil {
		params["initializationOptions"] = opts
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(id), "method": "initialize", "params": params})
	return string(b)
}

// Before a valid token, whatever a client sends is answered with
// CodeUnauthorized and the connection is closed.
func TestTokenRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name   string
		send   string
		wantID any
		msg    string
	}{
		{"request before initialize", `{"jsonrpc":"2.0","id":1,"method":"berth/list","params":{}}`, 1.0, "send initialize"},
		{"notification before initialize", `{"jsonrpc":"2.0","method":"initialized","params":{}}`, nil, "send initialize"},
		{"exit before initialize", `{"jsonrpc":"2.0","method":"exit"}`, nil, "send initialize"},
		{"a response", `{"jsonrpc":"2.0","id":3,"result":null}`, nil, "send initialize"},
		{"not JSON", `{"jsonrpc":`, nil, "send initialize"},
		{"bad id", `{"jsonrpc":"2.0","id":-1,"method":"initialize"}`, nil, "send initialize"},
		{"initialize without params", `{"jsonrpc":"2.0","id":"a","method":"initialize"}`, "a", "no initializationOptions.token"},
		{"initialize without token", initBody(`2`, map[string]any{"image": "x"}), 2.0, "no initializationOptions.token"},
		{"initialize with a number", initBody(`2`, map[string]any{"token": 7}), 2.0, "must be a string"},
		{"initialize with options not an object", `{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"initializationOptions":"` + testToken + `"}}`, 2.0, "no initializationOptions.token"},
		{"wrong token", initBody(`4`, map[string]any{"token": testToken + "x"}), 4.0, "wrong initializationOptions.token"},
		{"empty token", initBody(`4`, map[string]any{"token": ""}), 4.0, "wrong initializationOptions.token"},
		{"token as a notification", `{"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"token":"` + testToken + `"}}}`, nil, "send initialize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := e.dialGated(rpc.ConnOptions{Token: testToken})
			rc.send(tt.send)
			m := rc.recv()
			errObj, _ := m["error"].(map[string]any)
			if errObj == nil || errObj["code"] != float64(rpc.CodeUnauthorized) || m["id"] != tt.wantID ||
				!strings.Contains(errObj["message"].(string), tt.msg) {
				t.Fatalf("got %v, want code %d, id %v and %q", m, rpc.CodeUnauthorized, tt.wantID, tt.msg)
			}
			if strings.Contains(fmt.Sprint(m), testToken) {
				t.Errorf("the refusal repeats the token: %v", m)
			}
			if !rc.closed() {
				t.Error("the connection stays open after the refusal")
			}
		})
	}
}

// A frame too big to be an initialize is refused unread.
func TestTokenBigFrameRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dialGated(rpc.ConnOptions{Token: testToken})
	fmt.Fprintf(rc.c, "Content-Length: %d\r\n\r\n", 4<<20)
	m := rc.recv()
	if errObj, _ := m["error"].(map[string]any); errObj == nil || errObj["code"] != float64(rpc.CodeUnauthorized) {
		t.Fatalf("got %v, want %d", m, rpc.CodeUnauthorized)
	}
	if !rc.closed() {
		t.Error("the connection stays open")
	}
}

// With the token, the connection is an ordinary one.
func TestTokenAccepted(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dialGated(rpc.ConnOptions{Token: testToken})
	rc.send(initBody(`1`, map[string]any{"token": testToken}))
	if m := rc.recv(); m["error"] != nil || m["result"] == nil {
		t.Fatalf("initialize: %v", m)
	}
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"berth/list","params":{}}`)
	if m := rc.recv(); m["error"] != nil {
		t.Fatalf("berth/list: %v", m)
	}
	// Malformed frames are again answered and survived.
	rc.send(`{"jsonrpc":`)
	if m := rc.recv(); m["error"].(map[string]any)["code"] != float64(rpc.CodeParseError) {
		t.Fatalf("bad frame: %v", m)
	}
	rc.send(`{"jsonrpc":"2.0","id":3,"method":"shutdown"}`)
	if m := rc.recv(); m["error"] != nil {
		t.Fatalf("shutdown: %v", m)
	}
}

// A right token with bad params authenticates; the client may retry
// initialize.
func TestTokenThenBadInitialize(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dialGated(rpc.ConnOptions{Token: testToken})
	rc.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootPath":"rel","initializationOptions":{"token":"` + testToken + `"}}}`)
	if m := rc.recv(); m["error"].(map[string]any)["code"] != float64(rpc.CodeInvalidParams) {
		t.Fatalf("initialize: %v", m)
	}
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}`)
	if m := rc.recv(); m["error"] != nil {
		t.Fatalf("second initialize: %v", m)
	}
}

// A connection that doesn't initialize in time is told why and closed;
// one that does keeps going past the deadline.
func TestInitTimeout(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, token := range []string{"", testToken} {
		rc := e.dialGated(rpc.ConnOptions{Token: token, InitTimeout: 100 * time.Millisecond})
		m := rc.recv()
		if errObj, _ := m["error"].(map[string]any); errObj == nil || errObj["code"] != float64(rpc.CodeServerNotInitialized) {
			t.Fatalf("token %q: got %v, want %d", token, m, rpc.CodeServerNotInitialized)
		}
		if !rc.closed() {
			t.Errorf("token %q: the connection stays open", token)
		}
	}
	rc := e.dialGated(rpc.ConnOptions{Token: testToken, InitTimeout: 100 * time.Millisecond})
	rc.send(initBody(`1`, map[string]any{"token": testToken}))
	if m := rc.recv(); m["error"] != nil {
		t.Fatalf("initialize: %v", m)
	}
	time.Sleep(300 * time.Millisecond)
	rc.send(`{"jsonrpc":"2.0","id":2,"method":"berth/list","params":{}}`)
	if m := rc.recv(); m["error"] != nil || m["id"] != 2.0 {
		t.Fatalf("berth/list after the deadline: %v", m)
	}
}

// A client that doesn't read can't make the init timeout hang.
func TestInitTimeoutClientNotReading(t *testing.T) {
	e := newEnv(t, envOptions{})
	rc := e.dialGated(rpc.ConnOptions{Token: testToken, InitTimeout: 50 * time.Millisecond})
	select {
	case <-rc.done:
		rc.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("ServeConnWith did not return")
	}
}

// syncBuffer is a log sink for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// --trace never logs the token, however its keys are spelt.
func TestTraceMasksToken(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := newEnv(t, envOptions{})
	srv := rpc.NewServer(rpc.Options{Managers: map[string]*session.Manager{"memory": e.mgr}, Default: "memory", Logger: log, Version: "t", Trace: true})
	for i, body := range []string{
		initBody(`1`, map[string]any{"token": testToken}),
		`{"jsonrpc":"2.0","id":1,"method":"initialize","Params":{"InitializationOptions":{"TOKEN":"` + testToken + `"}}}`,
		initBody(`1`, map[string]any{"token": "wrong-" + testToken}),
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"initializationOptions":{"token":"` + testToken + `"}},` + "\x00",
	} {
		sc, cc := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- srv.ServeConnWith(context.Background(), sc, rpc.ConnOptions{Token: testToken}) }()
		rc := &rawConn{t: t, c: cc, r: bufio.NewReader(cc)}
		rc.send(body)
		rc.recv()
		cc.Close()
		<-done
		if strings.Contains(logs.String(), testToken) {
			t.Fatalf("frame %d: the token is in the log:\n%s", i, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("no redacted frame in the log:\n%s", logs.String())
	}
}

// Refuse writes one error frame with the mapped code.
func TestRefuse(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int64
	}{
		{fmt.Errorf("%w: peer uid 7 is not berth's user", rpc.ErrUnauthorized), rpc.CodeUnauthorized},
		{fmt.Errorf("%w: 32 open", rpc.ErrTooManyConnections), rpc.CodeRequestFailed},
	} {
		var b bytes.Buffer
		if err := rpc.Refuse(&b, tt.err); err != nil {
			t.Fatal(err)
		}
		rc := &rawConn{t: t, r: bufio.NewReader(&b), c: deadlineless{}}
		m := rc.recv()
		errObj, _ := m["error"].(map[string]any)
		if errObj == nil || errObj["code"] != float64(tt.code) || errObj["message"] != tt.err.Error() || m["id"] != nil {
			t.Errorf("Refuse(%v) wrote %v", tt.err, m)
		}
	}
}

// deadlineless is a net.Conn for rawConn.recv over a buffer.
type deadlineless struct{ net.Conn }

func (deadlineless) SetReadDeadline(time.Time) error { return nil }
