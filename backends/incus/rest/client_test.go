package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"
)

// serve runs h on a unix socket and returns a client of it.
func serve(t *testing.T, h http.HandlerFunc) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "unix.socket")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return Unix(sock, Options{UserAgent: "berth/test"})
}

func reply(w http.ResponseWriter, code int, typ string, meta any, errMsg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": typ, "status_code": code, "error_code": code, "error": errMsg, "metadata": meta})
}

func TestURL(t *testing.T) {
	tests := []struct {
		name   string
		c      Client
		scheme string
		path   string
		query  map[string][]string
		want   string
	}{
		{"plain", Client{base: unixBase}, "", "/1.0", nil, "http://unix.socket/1.0"},
		{"escaped alias keeps its slash escaped", Client{base: unixBase}, "", "/1.0/images/aliases/berth-test%2Fbusybox-1", nil,
			"http://unix.socket/1.0/images/aliases/berth-test%2Fbusybox-1"},
		{"query", Client{base: unixBase}, "", "/1.0/instances", map[string][]string{"recursion": {"1"}}, "http://unix.socket/1.0/instances?recursion=1"},
		{"project added", Client{base: unixBase, project: "user-1000"}, "", "/1.0/instances", nil, "http://unix.socket/1.0/instances?project=user-1000"},
		{"websocket", Client{base: unixBase}, "ws", "/1.0/events", map[string][]string{"type": {"lifecycle"}}, "ws://unix.socket/1.0/events?type=lifecycle"},
		{"remote websocket", Client{base: httpsBase("h:8443")}, "wss", "/1.0/operations/x/websocket", map[string][]string{"secret": {"a b"}},
			"wss://h:8443/1.0/operations/x/websocket?secret=a+b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.url(tt.scheme, tt.path, tt.query); got != tt.want {
				t.Errorf("url = %s, want %s", got, tt.want)
			}
		})
	}
	if got := instancePath("a b", "exec"); got != "/1.0/instances/a%20b/exec" {
		t.Errorf("instancePath = %s", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		wantCode int // 0: no StatusError
		wantMsg  string
	}{
		{"error envelope", func(w http.ResponseWriter, r *http.Request) {
			reply(w, 404, "error", nil, "Instance not found")
		}, 404, "Instance not found"},
		{"shutting down", func(w http.ResponseWriter, r *http.Request) {
			reply(w, 503, "error", nil, "Shutting down")
		}, 503, "Shutting down"},
		{"no envelope", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>nope</html>", http.StatusBadGateway)
		}, 502, "GET /1.0/instances/x: 502 Bad Gateway"},
		{"bad JSON with 200", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "{")
		}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, tt.handler)
			_, _, err := c.Instance(context.Background(), "x")
			if err == nil {
				t.Fatal("no error")
			}
			var se *StatusError
			switch {
			case tt.wantCode == 0 && errors.As(err, &se):
				t.Errorf("err = %#v, want no StatusError", err)
			case tt.wantCode != 0 && !errors.As(err, &se):
				t.Errorf("err = %v, want a StatusError", err)
			case tt.wantCode != 0 && (se.Code != tt.wantCode || se.Msg != tt.wantMsg):
				t.Errorf("err = %d %q, want %d %q", se.Code, se.Msg, tt.wantCode, tt.wantMsg)
			}
			if tt.wantCode != 0 && !IsStatus(err, tt.wantCode) {
				t.Errorf("IsStatus(%v, %d) = false", err, tt.wantCode)
			}
		})
	}
}

func TestIsStatus(t *testing.T) {
	err := &StatusError{Code: 404}
	wrapped := errors.Join(errors.New("x"), err)
	tests := []struct {
		err   error
		codes []int
		want  bool
	}{
		{err, nil, true},
		{err, []int{404}, true},
		{wrapped, []int{400, 404}, true},
		{err, []int{400}, false},
		{errors.New("404"), []int{404}, false},
		{nil, nil, false},
	}
	for _, tt := range tests {
		if got := IsStatus(tt.err, tt.codes...); got != tt.want {
			t.Errorf("IsStatus(%v, %v) = %v, want %v", tt.err, tt.codes, got, tt.want)
		}
	}
	if got := err.Error(); got != "Not Found" {
		t.Errorf("Error() without message = %q", got)
	}
}

func TestRequests(t *testing.T) {
	type seen struct {
		Method, Path, Query, IfMatch, UserAgent string
		Body                                    map[string]any
	}
	var mu sync.Mutex
	var got []seen
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		s := seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, IfMatch: r.Header.Get("If-Match"), UserAgent: r.UserAgent()}
		if r.Body != nil {
			_ = json.NewDecoder(r.Body).Decode(&s.Body)
		}
		mu.Lock()
		got = append(got, s)
		mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/1.0/instances/a":
			w.Header().Set("ETag", "e1")
			reply(w, 200, "sync", map[string]any{"name": "a", "status_code": 103, "profiles": []string{"default"},
				"config": map[string]string{"volatile.uuid": "u"}, "created_at": "2026-01-02T03:04:05Z"}, "")
		case r.Method == http.MethodGet && r.URL.Path == "/1.0/instances":
			reply(w, 200, "sync", []any{}, "")
		case r.Method == http.MethodGet:
			reply(w, 200, "sync", map[string]any{"id": "op1", "status_code": 200}, "")
		default:
			reply(w, 202, "async", map[string]any{"id": "op1", "status_code": 103, "metadata": map[string]any{"fds": map[string]string{"0": "s0"}}}, "")
		}
	})
	ctx := context.Background()
	in, etag, err := c.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	wantIn := &Instance{
		InstancePut: InstancePut{Profiles: []string{"default"}, Config: map[string]string{"volatile.uuid": "u"}},
		Name:        "a", StatusCode: Running, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if diff := cmp.Diff(wantIn, in); diff != "" || etag != "e1" {
		t.Errorf("Instance (-want +got):\n%s\netag %q", diff, etag)
	}
	if _, err := c.Instances(ctx, "container"); err != nil {
		t.Fatal(err)
	}
	op, err := c.UpdateInstance(ctx, "a", in.InstancePut, etag)
	if err != nil {
		t.Fatal(err)
	}
	if op.ID != "op1" || op.StatusCode != Running || op.StatusCode.IsFinal() {
		t.Errorf("operation = %+v", op)
	}
	if _, err := c.UpdateInstanceState(ctx, "a", InstanceStatePut{Action: "stop", Timeout: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "a", ExecPost{Command: []string{"true"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitOperation(ctx, "op1", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateInstance(ctx, InstancesPost{Name: "b", Type: "container", Source: InstanceSource{Type: "image", Fingerprint: "f"}}); err != nil {
		t.Fatal(err)
	}

	ua := "berth/test"
	want := []seen{
		{Method: "GET", Path: "/1.0/instances/a", UserAgent: ua},
		{Method: "GET", Path: "/1.0/instances", Query: "instance-type=container&recursion=1", UserAgent: ua},
		{Method: "PUT", Path: "/1.0/instances/a", IfMatch: "e1", UserAgent: ua, Body: map[string]any{
			"architecture": "", "config": map[string]any{"volatile.uuid": "u"}, "devices": nil, "ephemeral": false,
			"profiles": []any{"default"}, "stateful": false, "description": "",
		}},
		{Method: "PUT", Path: "/1.0/instances/a/state", UserAgent: ua, Body: map[string]any{"action": "stop", "timeout": 3.0, "force": false, "stateful": false}},
		{Method: "POST", Path: "/1.0/instances/a/exec", UserAgent: ua, Body: map[string]any{
			"command": []any{"true"}, "environment": nil, "wait-for-websocket": false, "interactive": false, "user": 0.0, "group": 0.0, "cwd": "",
		}},
		{Method: "GET", Path: "/1.0/operations/op1/wait", Query: "timeout=3", UserAgent: ua},
		{Method: "POST", Path: "/1.0/instances", UserAgent: ua, Body: map[string]any{
			"name": "b", "type": "container", "source": map[string]any{"type": "image", "fingerprint": "f"},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestOperationDecoding(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter)
		wantErr bool
		want    *Operation
	}{
		{"async", func(w http.ResponseWriter) {
			reply(w, 202, "async", map[string]any{"id": "x", "class": "websocket", "status_code": 103,
				"metadata": map[string]any{"fds": map[string]any{"0": "a", "control": "c"}}}, "")
		}, false, &Operation{ID: "x", Class: "websocket", StatusCode: Running,
			Metadata: map[string]any{"fds": map[string]any{"0": "a", "control": "c"}}}},
		{"sync where an operation was due", func(w http.ResponseWriter) { reply(w, 200, "sync", nil, "") }, true, nil},
		{"refused", func(w http.ResponseWriter) { reply(w, 400, "error", nil, "Instance is not running") }, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := serve(t, func(w http.ResponseWriter, r *http.Request) { tt.answer(w) })
			op, err := c.DeleteInstance(context.Background(), "a")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, op); diff != "" {
				t.Errorf("operation (-want +got):\n%s", diff)
			}
		})
	}
}

// Wait looks at a failed operation with a plain GET, since the wait
// answers with the error alone, and waits again for one that runs on.
func TestWait(t *testing.T) {
	tests := []struct {
		name    string
		waits   []func(w http.ResponseWriter) // one per wait request, the last repeated
		get     map[string]any                // what GET answers
		wantErr string
		wantRet float64
	}{
		{"success", []func(http.ResponseWriter){func(w http.ResponseWriter) {
			reply(w, 200, "sync", map[string]any{"id": "o", "status_code": 200, "metadata": map[string]any{"return": 3}}, "")
		}}, nil, "", 3},
		{"failed: the metadata comes from GET", []func(http.ResponseWriter){func(w http.ResponseWriter) {
			reply(w, 400, "error", nil, "Command not found")
		}}, map[string]any{"id": "o", "status_code": 400, "err": "Command not found", "metadata": map[string]any{"return": 127}}, "Command not found", 127},
		{"timed-out wait, then success", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { reply(w, 200, "sync", map[string]any{"id": "o", "status_code": 103}, "") },
			func(w http.ResponseWriter) {
				reply(w, 200, "sync", map[string]any{"id": "o", "status_code": 200, "metadata": map[string]any{"return": 0}}, "")
			},
		}, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			c := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/1.0/operations/o" {
					reply(w, 200, "sync", tt.get, "")
					return
				}
				mu.Lock()
				i := min(n, len(tt.waits)-1)
				n++
				mu.Unlock()
				tt.waits[i](w)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			op, err := c.Wait(ctx, "o")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if got := op.Metadata["return"]; got != tt.wantRet {
				t.Errorf("return = %v, want %v", got, tt.wantRet)
			}
		})
	}
}

// Exec connects the websockets the operation names: stdin goes in and ends
// with the barrier, stdout and stderr come out, DataDone closes after them.
func TestExecStreams(t *testing.T) {
	up := websocket.Upgrader{}
	var mu sync.Mutex
	var stdinGot bytes.Buffer
	var ctlConn *websocket.Conn
	// As cat does, the output comes after the input has been read: a
	// client may let go of stdin once the output has ended.
	stdinRead := make(chan struct{})
	c := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/1.0/instances/a/exec":
			reply(w, 202, "async", map[string]any{"id": "op", "metadata": map[string]any{"fds": map[string]string{
				"0": "s0", "1": "s1", "2": "s2", "control": "sc"}}}, "")
		case "/1.0/operations/op/websocket":
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			switch r.URL.Query().Get("secret") {
			case "s0": // read to the barrier
				for {
					typ, data, err := conn.ReadMessage()
					if err != nil || typ == websocket.TextMessage {
						break
					}
					mu.Lock()
					stdinGot.Write(data)
					mu.Unlock()
				}
				close(stdinRead)
				conn.Close()
			case "s1":
				<-stdinRead
				_ = conn.WriteMessage(websocket.BinaryMessage, []byte("out"))
				_ = conn.WriteMessage(websocket.TextMessage, nil)
				conn.Close()
			case "s2":
				<-stdinRead
				_ = conn.WriteMessage(websocket.BinaryMessage, []byte("err"))
				_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
				conn.Close()
			case "sc":
				mu.Lock()
				ctlConn = conn
				mu.Unlock()
			}
		}
	})
	var stdout, stderr bytes.Buffer
	done := make(chan bool)
	var gotCtl *websocket.Conn
	op, err := c.Exec(context.Background(), "a", ExecPost{Command: []string{"cat"}, WaitForWS: true}, &ExecStreams{
		Stdin:    bytes.NewReader([]byte("in")),
		Stdout:   &stdout,
		Stderr:   &stderr,
		Control:  func(c *websocket.Conn) { gotCtl = c },
		DataDone: done,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("DataDone not closed")
	}
	if op.ID != "op" || gotCtl == nil || stdout.String() != "out" || stderr.String() != "err" {
		t.Errorf("op %q, control %v, stdout %q, stderr %q", op.ID, gotCtl != nil, stdout.String(), stderr.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		in := stdinGot.String()
		mu.Unlock()
		if in == "in" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stdin got %q, want in", in)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if ctlConn != nil {
		ctlConn.Close()
	}
	mu.Unlock()
	gotCtl.Close()
}

var unixBase = url.URL{Scheme: "http", Host: "unix.socket"}

func httpsBase(host string) url.URL { return url.URL{Scheme: "https", Host: host} }
