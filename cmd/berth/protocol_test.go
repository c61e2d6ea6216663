package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/rpc"
)

// rawBerth drives berth --stdio with hand-written frames, to test what a
// well-behaved client can't send.
type rawBerth struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startRaw(t *testing.T) *rawBerth {
	t.Helper()
	cmd := exec.Command(berthBin, "--stdio")
	cmd.Stderr = &testWriter{t: t}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &rawBerth{t: t, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (r *rawBerth) send(raw string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, raw); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawBerth) sendBody(body string) {
	r.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Method string `json:"method"`
}

// recv reads the next frame that is a response (skipping notifications).
func (r *rawBerth) recv() response {
	r.t.Helper()
	for {
		length := -1
		for {
			line, err := r.out.ReadString('\n')
			if err != nil {
				r.t.Fatalf("reading header: %v", err)
			}
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				length, _ = strconv.Atoi(v)
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(r.out, body); err != nil {
			r.t.Fatal(err)
		}
		var resp response
		if err := json.Unmarshal(body, &resp); err != nil {
			r.t.Fatalf("server sent invalid JSON %q: %v", body, err)
		}
		if resp.Method == "" {
			return resp
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	r := startRaw(t)
	big := strings.Repeat("x", rpc.MaxFrame+10)
	steps := []struct {
		name string
		send string // a body, framed for us, unless raw
		raw  bool
		id   string // expected response id, as JSON
		code int64  // expected error code, 0 for success
		msg  string // substring of the error message
	}{
		{name: "request before initialize", send: `{"jsonrpc":"2.0","id":1,"method":"berth/list"}`, id: "1", code: rpc.CodeServerNotInitialized, msg: "initialize"},
		{name: "body not JSON", send: `{"jsonrpc":"2.0","id":2,`, id: "null", code: rpc.CodeParseError, msg: "parse error"},
		{name: "no Content-Length", send: "Content-Type: application/json\r\n\r\n", raw: true, id: "null", code: rpc.CodeParseError, msg: "Content-Length"},
		{name: "frame too large", send: fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(big), big), raw: true, id: "null", code: rpc.CodeInvalidRequest, msg: "limit"},
		{name: "batch", send: `[{"jsonrpc":"2.0","id":3,"method":"initialize"}]`, id: "null", code: rpc.CodeInvalidRequest, msg: "batch"},
		{name: "no method", send: `{"jsonrpc":"2.0","id":4}`, id: "4", code: rpc.CodeInvalidRequest, msg: "method"},
		{name: "wrong version", send: `{"jsonrpc":"1.0","id":5,"method":"initialize"}`, id: "5", code: rpc.CodeInvalidRequest, msg: "2.0"},
		{name: "params not structured", send: `{"jsonrpc":"2.0","id":6,"method":"initialize","params":42}`, id: "6", code: rpc.CodeInvalidParams, msg: "params"},
		{name: "negative id", send: `{"jsonrpc":"2.0","id":-1,"method":"berth/list"}`, id: "null", code: rpc.CodeInvalidRequest, msg: "id"},
		{name: "fractional id", send: `{"jsonrpc":"2.0","id":2.5,"method":"berth/list"}`, id: "null", code: rpc.CodeInvalidRequest, msg: "id"},
		{name: "stray response, then a header line too long", send: `{"jsonrpc":"2.0","id":5,"result":1}` + "\r\n" + "X-Long: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 2\r\n\r\n{}", id: "null", code: rpc.CodeParseError, msg: "header line"},
		{name: "initialize", send: `{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"processId":null}}`, id: "7"},
		{name: "unknown method", send: `{"jsonrpc":"2.0","id":"s8","method":"berth/frobnicate"}`, id: `"s8"`, code: rpc.CodeMethodNotFound, msg: "berth/frobnicate"},
		{name: "wrong param type", send: `{"jsonrpc":"2.0","id":9,"method":"berth/exec","params":{"argv":[1,2]}}`, id: "9", code: rpc.CodeInvalidParams, msg: "argv"},
		{name: "no workspace and no default", send: `{"jsonrpc":"2.0","id":10,"method":"berth/exec","params":{"argv":["true"]}}`, id: "10", code: rpc.CodeNoWorkspace, msg: "workspace"},
		{name: "no workspace for up", send: `{"jsonrpc":"2.0","id":11,"method":"berth/up"}`, id: "11", code: rpc.CodeNoWorkspace, msg: "workspace"},
		{name: "workspace not a directory", send: `{"jsonrpc":"2.0","id":12,"method":"berth/status","params":{"workspace":"/no/such/dir"}}`, id: "12", code: rpc.CodeInvalidParams, msg: "workspace"},
		{name: "still serving", send: `{"jsonrpc":"2.0","id":13,"method":"berth/processes"}`, id: "13"},
	}
	for _, s := range steps {
		switch {
		case s.raw:
			r.send(s.send)
		case strings.Contains(s.send, "X-Long"):
			// A response nobody asked for gets no answer; the
			// oversized header after it does.
			body, rest, _ := strings.Cut(s.send, "\r\n")
			r.sendBody(body)
			r.send(rest)
		default:
			r.sendBody(s.send)
		}
		resp := r.recv()
		if string(resp.ID) != s.id {
			t.Errorf("%s: response id %s, want %s", s.name, resp.ID, s.id)
		}
		switch {
		case s.code == 0 && resp.Error != nil:
			t.Errorf("%s: error %+v, want success", s.name, *resp.Error)
		case s.code != 0 && resp.Error == nil:
			t.Errorf("%s: success %s, want error %d", s.name, resp.Result, s.code)
		case s.code != 0 && (resp.Error.Code != s.code || !strings.Contains(resp.Error.Message, s.msg)):
			t.Errorf("%s: error %d %q, want %d mentioning %q", s.name, resp.Error.Code, resp.Error.Message, s.code, s.msg)
		}
	}

	// exit without shutdown: exit code 1, as in LSP.
	r.sendBody(`{"jsonrpc":"2.0","method":"exit"}`)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("exit without shutdown: %v, want exit status 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not exit")
	}
}

func TestStdinEOFEndsServer(t *testing.T) {
	r := startRaw(t)
	r.sendBody(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`)
	r.recv()
	r.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after stdin EOF: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth did not exit on stdin EOF")
	}
}
