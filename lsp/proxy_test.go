package lsp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/pathmap"
	"github.com/berthdev/berth/rpc"
)

// echoProxy runs a Proxy whose "server" is argv on the host, for a
// workspace mapped to /workspaces/proj, and returns the editor's ends.
func echoProxy(t *testing.T, ws string, argv []string, start func(string) error) (in io.WriteCloser, out *rpc.FrameReader, done <-chan proxyResult, gotWS *string) {
	t.Helper()
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: ws, Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var seen string
	p := &Proxy{
		Argv: argv, Dir: t.TempDir(), Stderr: io.Discard, Log: slog.New(slog.DiscardHandler),
		Start: func(ctx context.Context, w string) (*Target, error) {
			seen = w
			if start != nil {
				if err := start(w); err != nil {
					return nil, err
				}
			}
			return &Target{Mapper: m, Exec: hostExec}, nil
		},
	}
	ch := make(chan proxyResult, 1)
	go func() {
		code, err := p.Run(context.Background(), inR, outW)
		outW.Close()
		ch <- proxyResult{code, err}
	}()
	t.Cleanup(func() { inW.Close() })
	return inW, rpc.NewFrameReader(outR, 0), ch, &seen
}

type proxyResult struct {
	code int
	err  error
}

func send(t *testing.T, w io.Writer, msg string) {
	t.Helper()
	if err := rpc.WriteFrame(w, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, r *rpc.FrameReader) map[string]any {
	t.Helper()
	b, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func wait(t *testing.T, done <-chan proxyResult) proxyResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not return")
	}
	return proxyResult{}
}

// TestProxyEcho relays through cat, which sends every message back: what
// comes back is what the server got, mapped back for the editor.
func TestProxyEcho(t *testing.T) {
	ws := t.TempDir()
	if err := os.Mkdir(filepath.Join(ws, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(ws, "pkg")
	in, out, done, gotWS := echoProxy(t, ws, []string{"cat"}, nil)

	send(t, in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":4242,"rootPath":"`+sub+`","rootUri":"file://`+sub+`","capabilities":{}}}`)
	v := recv(t, out)
	params := v["params"].(map[string]any)
	if params["processId"] != nil {
		t.Errorf("the server got processId %v, want null", params["processId"])
	}
	if params["rootPath"] != "/workspaces/proj/pkg" {
		t.Errorf("the server got rootPath %v", params["rootPath"])
	}
	if params["rootUri"] != "file://"+sub {
		t.Errorf("rootUri came back as %v", params["rootUri"])
	}
	if *gotWS != ws {
		t.Errorf("workspace = %q, want %q (found from rootUri by its .git)", *gotWS, ws)
	}

	// A 5 MB didOpen passes whole, its text untouched.
	text := strings.Repeat("x = 'file:///workspaces/proj/a.py'\n", 5<<20/35)
	msg, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": map[string]any{
		"textDocument": map[string]any{"uri": "file://" + ws + "/a.py", "text": text}}})
	send(t, in, string(msg))
	v = recv(t, out)
	doc := v["params"].(map[string]any)["textDocument"].(map[string]any)
	if doc["text"] != text || doc["uri"] != "file://"+ws+"/a.py" {
		t.Errorf("didOpen came back with uri %v and %d bytes of text", doc["uri"], len(doc["text"].(string)))
	}

	// The editor closes its end: cat exits 0, and so does the proxy.
	in.Close()
	if r := wait(t, done); r.err != nil || r.code != 0 {
		t.Errorf("Run = %d, %v; want 0, nil", r.code, r.err)
	}
}

// TestProxyExitCode: berth lsp exits with the server's code.
func TestProxyExitCode(t *testing.T) {
	in, out, done, _ := echoProxy(t, t.TempDir(), []string{"sh", "-c", "head -c 60 >/dev/null; exit 3"}, nil)
	send(t, in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":1,"capabilities":{}}}`)
	if r := wait(t, done); r.err != nil || r.code != 3 {
		t.Errorf("Run = %d, %v; want 3", r.code, r.err)
	}
	if _, err := out.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Errorf("after exit: %v, want EOF", err)
	}
}

// TestProxyStartFails: initialize is answered with the error.
func TestProxyStartFails(t *testing.T) {
	in, out, done, _ := echoProxy(t, t.TempDir(), []string{"cat"}, func(string) error {
		return errors.New("docker daemon not reachable")
	})
	send(t, in, `{"jsonrpc":"2.0","id":7,"method":"initialize","params":{"processId":1,"capabilities":{}}}`)
	v := recv(t, out)
	if v["id"] != float64(7) || !strings.Contains(v["error"].(map[string]any)["message"].(string), "docker daemon not reachable") {
		t.Errorf("answer = %v", v)
	}
	if r := wait(t, done); r.err == nil {
		t.Error("Run succeeded")
	}
}

// TestProxyServerNotFound: a server missing in the container is an error.
func TestProxyServerNotFound(t *testing.T) {
	in, out, done, _ := echoProxy(t, t.TempDir(), []string{"/nonexistent/server"}, nil)
	send(t, in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":1,"capabilities":{}}}`)
	v := recv(t, out)
	if v["error"] == nil {
		t.Errorf("answer = %v, want an error", v)
	}
	if r := wait(t, done); r.err == nil {
		t.Error("Run succeeded")
	}
}

var _ backends.Process = (*hostProc)(nil)

// TestProxyKillsLingeringServer: a server that outlives the editor's EOF
// is killed after exitGrace.
func TestProxyKillsLingeringServer(t *testing.T) {
	in, _, done, _ := echoProxy(t, t.TempDir(), []string{"sh", "-c", "cat >/dev/null; exec sleep 100"}, nil)
	send(t, in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":1,"capabilities":{}}}`)
	in.Close()
	start := time.Now()
	r := wait(t, done)
	if r.err != nil || r.code != 128+9 {
		t.Errorf("Run = %d, %v; want 137 (killed)", r.code, r.err)
	}
	if d := time.Since(start); d < exitGrace-time.Second || d > exitGrace+5*time.Second {
		t.Errorf("killed after %s, want about %s", d, exitGrace)
	}
}
