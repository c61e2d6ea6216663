package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/trust"
)

// trustWorkspace records the user's trust in ws's configuration as it is
// now, in the tests' store (TestMain), for tests about something else.
func trustWorkspace(t *testing.T, ws string) {
	t.Helper()
	cfg, err := devcontainer.Discover(ws, "", "", os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	path, err := trust.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if err := trust.NewStore(path).Trust(ws, cfg.Hash); err != nil {
		t.Fatal(err)
	}
}

// fakeEditor answers window/showMessageRequest as told and keeps the
// questions.
type fakeEditor struct {
	mu     sync.Mutex
	answer any // a MessageActionItem, or nil for null
	asked  []protocol.ShowMessageRequestParams
}

func (ed *fakeEditor) handle(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	if method != "window/showMessageRequest" {
		return nil, errors.New("no such method")
	}
	var p protocol.ShowMessageRequestParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	ed.mu.Lock()
	defer ed.mu.Unlock()
	ed.asked = append(ed.asked, p)
	return ed.answer, nil
}

func (ed *fakeEditor) questions() []protocol.ShowMessageRequestParams {
	ed.mu.Lock()
	defer ed.mu.Unlock()
	return append([]protocol.ShowMessageRequestParams(nil), ed.asked...)
}

// startEditor runs berth --stdio on e's backend, with env added to its
// environment, for a client that answers the server's requests with ed;
// it initializes on ws declaring window.showMessage when ed is not nil.
func startEditor(t *testing.T, e engine, ws string, ed *fakeEditor, opts *rpc.InitializationOptions, env ...string) (*berth, error) {
	t.Helper()
	cmd := exec.Command(berthBin, "--stdio", "--backend", e.name)
	cmd.Env = append(append(os.Environ(), "BERTH_IMAGE="+e.image), env...)
	cmd.Stderr = &testWriter{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &berth{t: t, cmd: cmd, stdin: stdin, stdout: stdout, waited: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	var answer rpc.RequestFunc
	if ed != nil {
		answer = ed.handle
	}
	b.client = rpc.NewClientAnswering(context.Background(), pipes{stdout, stdin}, slog.New(slog.DiscardHandler), b.record, answer)
	go func() {
		<-b.client.Done()
		b.err = cmd.Wait()
		close(b.waited)
	}()
	t.Cleanup(func() {
		b.client.Close()
		select {
		case <-b.waited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-b.waited
		}
	})
	p := rpc.InitializeParams{InitializationOptions: opts}
	if ws != "" {
		p.RootURI = "file://" + ws
	}
	if ed != nil {
		p.Capabilities = &rpc.ClientCapabilities{Window: &rpc.WindowClientCapabilities{ShowMessage: &protocol.ShowMessageRequestClientCapabilities{}}}
	}
	return b, b.call("initialize", p, nil)
}

// TestRefusedWorkspaces: the real binary refuses system directories, the
// home directory, links to them and other users' directories as
// workspaces, over the protocol and on the command line, with -32030 and
// the reason. Nothing here reaches an engine.
func TestRefusedWorkspaces(t *testing.T) {
	e := engine{name: docker.Name, image: "berth-test/none:0"}
	home := t.TempDir()
	dir := t.TempDir()
	etcLink := filepath.Join(dir, "etc-link")
	if err := os.Symlink("/etc", etcLink); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ws, why string
	}{
		{"root", "/", "filesystem root"},
		{"etc", "/etc", "system directory /etc"},
		{"under etc", "/etc/x", "inside the system directory /etc"},
		{"usr", "/usr", "system directory /usr"},
		{"home", home, "home directory itself"},
		{"link to etc", etcLink, "system directory /etc"},
	}
	if os.Geteuid() == 0 {
		others := t.TempDir()
		if err := os.Chown(others, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, ws, why string }{"owned by nobody", others, "owned by uid 65534"})
	}
	b, err := startEditor(t, e, "", nil, nil, "HOME="+home)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.call("berth/up", rpc.UpParams{Workspace: tt.ws}, nil)
			if code(err) != rpc.CodeRefusedPath || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("berth/up %s: %v; want code %d saying %q", tt.ws, err, rpc.CodeRefusedPath, tt.why)
			}
			_, err = startEditor(t, e, tt.ws, nil, nil, "HOME="+home)
			if code(err) != rpc.CodeRefusedPath || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("initialize on %s: %v; want code %d saying %q", tt.ws, err, rpc.CodeRefusedPath, tt.why)
			}
			cmd := exec.Command(berthBin, "--backend", e.name, "--workspace", tt.ws, "up")
			cmd.Env = append(os.Environ(), "HOME="+home)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.why) {
				t.Errorf("berth --workspace %s up: %v\n%s; want a failure saying %q", tt.ws, err, out, tt.why)
			}
		})
	}
}

// hookMarker is where trustHookWorkspace's postCreateCommand leaves its
// mark, in the workspace.
const hookMarker = "hook-ran"

// trustHookWorkspace is a workspace whose devcontainer.json runs a
// postCreateCommand that leaves hookMarker in the workspace.
func trustHookWorkspace(t *testing.T, e engine) string {
	t.Helper()
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	"postCreateCommand": "touch ${containerWorkspaceFolder}/`+hookMarker+`"
}`)
	return ws
}

// checkNothingRan fails t if ws has a container or its hook ran.
func checkNothingRan(t *testing.T, e engine, ws string) {
	t.Helper()
	if _, err := find(t, e, ws); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("the untrusted workspace has a container (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(ws, hookMarker)); err == nil {
		t.Error("the untrusted workspace's postCreateCommand ran")
	}
}

// TestTrustPrompt: the first up of a configuration with a lifecycle
// command asks the editor with window/showMessageRequest; "Trust"
// proceeds and is remembered across berth processes, null refuses with
// -32029 before anything is made, and a changed configuration asks again.
func TestTrustPrompt(t *testing.T) {
	e := needBackend(t, docker.Name)

	t.Run("trust", func(t *testing.T) {
		ws := trustHookWorkspace(t, e)
		ed := &fakeEditor{answer: protocol.MessageActionItem{Title: rpc.TrustAction}}
		b, err := startEditor(t, e, ws, ed, nil)
		if err != nil {
			t.Fatal(err)
		}
		var inst rpc.Instance
		b.mustCall("berth/up", rpc.UpParams{}, &inst)
		if !inst.Created || len(inst.Hooks) != 1 || inst.Hooks[0].Code != 0 {
			t.Fatalf("up = %+v, want a new container whose hook ran", inst)
		}
		if _, err := os.Stat(filepath.Join(ws, hookMarker)); err != nil {
			t.Errorf("the trusted hook left no mark: %v", err)
		}
		qs := ed.questions()
		if len(qs) != 1 {
			t.Fatalf("asked %d times, want once", len(qs))
		}
		if q := qs[0]; q.Type != protocol.MessageTypeWarning || !strings.Contains(q.Message, ws) || !strings.Contains(q.Message, "postCreateCommand") {
			t.Errorf("question = %+v; want a warning naming the workspace and postCreateCommand", q)
		}
		b.mustCall("berth/up", rpc.UpParams{}, nil)
		// Another berth process, another client: remembered.
		ed2 := &fakeEditor{}
		b2, err := startEditor(t, e, ws, ed2, nil)
		if err != nil {
			t.Fatal(err)
		}
		b2.mustCall("berth/up", rpc.UpParams{}, nil)
		if n, n2 := len(ed.questions()), len(ed2.questions()); n != 1 || n2 != 0 {
			t.Errorf("asked %d and %d times after the first answer, want no more", n-1, n2)
		}

		// A changed configuration asks again; declined, nothing runs.
		writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	"postCreateCommand": "touch ${containerWorkspaceFolder}/changed"
}`)
		err = b2.call("berth/up", rpc.UpParams{Recreate: true}, nil)
		if code(err) != rpc.CodeUntrusted {
			t.Fatalf("up after a change, declined: %v; want code %d", err, rpc.CodeUntrusted)
		}
		if len(ed2.questions()) != 1 {
			t.Errorf("a changed configuration asked %d times, want once", len(ed2.questions()))
		}
		if _, err := find(t, e, ws); err != nil {
			t.Errorf("declining the changed configuration touched the old container: %v", err)
		}
	})

	t.Run("null", func(t *testing.T) {
		ws := trustHookWorkspace(t, e)
		ed := &fakeEditor{answer: nil}
		b, err := startEditor(t, e, ws, ed, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = b.call("berth/up", rpc.UpParams{}, nil)
		if code(err) != rpc.CodeUntrusted || !strings.Contains(err.Error(), "--trust") {
			t.Fatalf("up declined: %v; want code %d naming --trust", err, rpc.CodeUntrusted)
		}
		if len(ed.questions()) != 1 {
			t.Errorf("asked %d times, want once", len(ed.questions()))
		}
		// exec would create the container just the same.
		err = b.call("berth/run", rpc.ExecParams{Argv: []string{"true"}}, nil)
		if code(err) != rpc.CodeUntrusted {
			t.Errorf("run after declining: %v; want code %d", err, rpc.CodeUntrusted)
		}
		checkNothingRan(t, e, ws)
	})

	t.Run("client without showMessage", func(t *testing.T) {
		ws := trustHookWorkspace(t, e)
		b, err := startEditor(t, e, ws, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = b.call("berth/up", rpc.UpParams{}, nil)
		if code(err) != rpc.CodeUntrusted {
			t.Fatalf("up: %v; want code %d", err, rpc.CodeUntrusted)
		}
		for _, w := range []string{"--trust", "initializationOptions.trust", "window.showMessage", ws, "postCreateCommand"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not mention %q", err, w)
			}
		}
		checkNothingRan(t, e, ws)
	})

	t.Run("initializationOptions.trust", func(t *testing.T) {
		ws := trustHookWorkspace(t, e)
		b, err := startEditor(t, e, ws, nil, &rpc.InitializationOptions{Trust: true})
		if err != nil {
			t.Fatal(err)
		}
		b.mustCall("berth/up", rpc.UpParams{}, nil)
		if _, err := os.Stat(filepath.Join(ws, hookMarker)); err != nil {
			t.Errorf("the trusted hook left no mark: %v", err)
		}
	})
}

// TestTrustCLI: berth up fails without --trust, naming it; with it the
// hook runs, and later commands need it no more.
func TestTrustCLI(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := trustHookWorkspace(t, e)
	_, stderr, code := cli(t, e, ws, "up")
	if code == 0 || !strings.Contains(stderr, "--trust") || !strings.Contains(stderr, "postCreateCommand") {
		t.Fatalf("up without --trust: exit %d, stderr %q; want a failure naming --trust", code, stderr)
	}
	checkNothingRan(t, e, ws)
	if _, stderr, code := cli(t, e, ws, "up", "--trust"); code != 0 {
		t.Fatalf("up --trust: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(ws, hookMarker)); err != nil {
		t.Errorf("the trusted hook left no mark: %v", err)
	}
	if _, stderr, code := cli(t, e, ws, "exec", "--", "true"); code != 0 {
		t.Errorf("exec after up --trust: exit %d, stderr %q", code, stderr)
	}
}

// TestTrustRefusedMount: an untrusted workspace's bind mount of / is
// refused with -32030, over the protocol and on the command line.
func TestTrustRefusedMount(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer.json"), `{
	"image": "`+e.image+`",
	"mounts": ["type=bind,source=/,target=/host"]
}`)
	b, err := startEditor(t, e, ws, &fakeEditor{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.call("berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeRefusedPath || !strings.Contains(err.Error(), "mounts[0]") || !strings.Contains(err.Error(), "filesystem root") {
		t.Fatalf("up: %v; want code %d naming mounts[0] and the root", err, rpc.CodeRefusedPath)
	}
	_, stderr, exit := cli(t, e, ws, "exec", "--", "ls", "/host")
	if exit == 0 || !strings.Contains(stderr, "filesystem root") {
		t.Errorf("exec: exit %d, stderr %q; want refused", exit, stderr)
	}
	checkNothingRan(t, e, ws)
}
