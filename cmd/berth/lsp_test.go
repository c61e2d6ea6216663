package main_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// lspClient is an editor's LSP client driving `berth lsp` on its pipes.
type lspClient struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	c     *rpc.Client
	cache string // XDG_CACHE_HOME of berth lsp: the mirror is under it

	waited chan struct{}
	err    error // from cmd.Wait, set before waited closes

	mu    sync.Mutex // guards diags
	cond  *sync.Cond
	diags map[string]json.RawMessage // publishDiagnostics by URI, the latest
}

// startLSP runs `berth lsp` in dir with args, on e's backend, with image
// for new containers.
func startLSP(t *testing.T, e engine, image, dir string, args ...string) *lspClient {
	t.Helper()
	cache := t.TempDir()
	cmd := exec.Command(berthBin, append([]string{"lsp", "--backend", e.name, "--trust"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+image, "XDG_CACHE_HOME="+cache)
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
	l := &lspClient{t: t, cmd: cmd, stdin: stdin, cache: cache, waited: make(chan struct{}), diags: map[string]json.RawMessage{}}
	l.cond = sync.NewCond(&l.mu)
	l.c = rpc.NewClientAnswering(context.Background(), pipes{stdout, stdin}, slog.New(slog.DiscardHandler), l.notify, l.answer)
	go func() {
		<-l.c.Done()
		l.err = cmd.Wait()
		close(l.waited)
	}()
	t.Cleanup(func() {
		l.c.Close()
		select {
		case <-l.waited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-l.waited
		}
	})
	return l
}

func (l *lspClient) notify(method string, params json.RawMessage) {
	if method != "textDocument/publishDiagnostics" {
		return
	}
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(params, &p) == nil {
		l.mu.Lock()
		l.diags[p.URI] = append(json.RawMessage(nil), params...)
		l.mu.Unlock()
		l.cond.Broadcast()
	}
}

// answer answers the server's requests as a plain editor does.
func (l *lspClient) answer(ctx context.Context, method string, params json.RawMessage) (any, error) {
	if method == "workspace/configuration" {
		var p struct {
			Items []json.RawMessage `json:"items"`
		}
		_ = json.Unmarshal(params, &p)
		return make([]any, len(p.Items)), nil
	}
	return nil, nil
}

func (l *lspClient) call(method string, params, result any) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := l.c.Call(ctx, method, params, result); err != nil {
		l.t.Fatalf("%s: %v", method, err)
	}
}

func (l *lspClient) notifyServer(method string, params any) {
	l.t.Helper()
	if err := l.c.Notify(context.Background(), method, params); err != nil {
		l.t.Fatalf("%s: %v", method, err)
	}
}

// initialize sends initialize with root as rootUri and the test's own pid
// as processId, which berth must not pass on.
func (l *lspClient) initialize(root string) {
	l.t.Helper()
	var res json.RawMessage
	l.call("initialize", map[string]any{
		"processId": os.Getpid(),
		"rootUri":   fileURI(root),
		"rootPath":  root,
		"capabilities": map[string]any{
			"textDocument": map[string]any{
				"hover":      map[string]any{"contentFormat": []string{"plaintext", "markdown"}},
				"definition": map[string]any{"linkSupport": false},
				"rename":     map[string]any{"prepareSupport": false},
			},
			"workspace": map[string]any{"workspaceEdit": map[string]any{"documentChanges": true}, "configuration": true},
		},
		"workspaceFolders": []map[string]string{{"uri": fileURI(root), "name": filepath.Base(root)}},
	}, &res)
	l.notifyServer("initialized", struct{}{})
}

func (l *lspClient) open(file, languageID string) {
	l.t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		l.t.Fatal(err)
	}
	l.notifyServer("textDocument/didOpen", map[string]any{"textDocument": map[string]any{
		"uri": fileURI(file), "languageId": languageID, "version": 1, "text": string(data)}})
}

type lspPos struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

type lspLocation struct {
	URI   string `json:"uri"`
	Range struct {
		Start lspPos `json:"start"`
	} `json:"range"`
}

// posOf is the position of the first occurrence of s after the first
// occurrence of after in file, plus off characters.
func posOf(t *testing.T, file, after, s string, off int) lspPos {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, after)
	j := strings.Index(text[i:], s)
	if i < 0 || j < 0 {
		t.Fatalf("%s has no %q after %q", file, s, after)
	}
	k := i + j + off
	line := strings.Count(text[:k], "\n")
	return lspPos{Line: line, Character: k - (strings.LastIndex(text[:k], "\n") + 1)}
}

// definition asks for the definition at pos in file, and returns its
// first location.
func (l *lspClient) definition(file string, pos lspPos) lspLocation {
	l.t.Helper()
	var raw json.RawMessage
	l.call("textDocument/definition", map[string]any{"textDocument": map[string]string{"uri": fileURI(file)}, "position": pos}, &raw)
	var locs []lspLocation
	if json.Unmarshal(raw, &locs) != nil {
		var one lspLocation
		if err := json.Unmarshal(raw, &one); err != nil {
			l.t.Fatalf("definition: %s", raw)
		}
		locs = []lspLocation{one}
	}
	if len(locs) == 0 {
		l.t.Fatalf("definition at %s %+v: none", file, pos)
	}
	return locs[0]
}

// waitDiagnostics waits for diagnostics at uri whose JSON contains want.
func (l *lspClient) waitDiagnostics(uri, want string) {
	l.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	timer := time.AfterFunc(2*time.Minute, l.cond.Broadcast)
	defer timer.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	for !strings.Contains(string(l.diags[uri]), want) {
		if time.Now().After(deadline) {
			l.t.Fatalf("no diagnostics at %s containing %q; got %v", uri, want, l.diags)
		}
		l.cond.Wait()
	}
}

// shutdown ends the session as an editor does and checks the exit code.
func (l *lspClient) shutdown() {
	l.t.Helper()
	l.call("shutdown", nil, nil)
	l.notifyServer("exit", nil)
	select {
	case <-l.waited:
	case <-time.After(30 * time.Second):
		l.t.Fatal("berth lsp did not exit after exit")
	}
	if l.err != nil {
		l.t.Errorf("berth lsp exited with %v after shutdown and exit", l.err)
	}
}

// mirrorCheck checks that loc is a mirror URI whose file holds what the
// container's file does.
func (l *lspClient) mirrorCheck(e engine, ws string, loc lspLocation, containerSuffix string) (containerPath string) {
	// The mirror's URIs are the mapper's, percent-encoded; the temp
	// directories the tests use need none.
	t := l.t
	t.Helper()
	prefix := fileURI(filepath.Join(l.cache, "berth", "lsp")) + "/"
	if !strings.HasPrefix(loc.URI, prefix) || !strings.HasSuffix(loc.URI, containerSuffix) {
		t.Fatalf("definition in the container's library = %s, want a mirror URI under %s ending in %s", loc.URI, prefix, containerSuffix)
	}
	host := strings.TrimPrefix(loc.URI, "file://")
	got, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	// The mirror's path below its root is the container path.
	rest := strings.TrimPrefix(host, filepath.Join(l.cache, "berth", "lsp")+"/")
	parts := strings.SplitN(rest, "/", 3) // instance, image, container path
	want := readContainerFile(t, e, ws, "/"+parts[2])
	if !bytes.Equal(got, want) {
		t.Errorf("mirror %s differs from the container's /%s (%d bytes vs %d)", host, parts[2], len(got), len(want))
	}
	if fi, err := os.Stat(host); err != nil || fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("mirror file %s should be read-only: %v %v", host, fi.Mode(), err)
	}
	return "/" + parts[2]
}

// lspRunIn runs argv in ws's instance as root, through the engine.
func lspRunIn(t *testing.T, e engine, ws string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := e.b.Find(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p, err := e.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: argv, User: "root", Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(ctx); err != nil || st.Code != 0 {
		t.Fatalf("%v: %v %v: %s", argv, st, err, out.String())
	}
}

// readContainerFile reads a file of ws's instance through the engine.
func readContainerFile(t *testing.T, e engine, ws, p string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := e.b.Find(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.b.CopyFrom(ctx, inst.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("read %s from the container: %v", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

// serversIn counts the processes in ws's instance whose command line
// contains name.
func serversIn(t *testing.T, e engine, ws, name string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := e.b.Find(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p, err := e.b.Exec(ctx, inst.ID, backends.ExecSpec{Argv: []string{"ps", "-eo", "args"}, Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, name) && !strings.HasPrefix(line, "ps ") {
			n++
		}
	}
	return n
}

// waitNoServer waits until no process named name runs in ws's instance.
func waitNoServer(t *testing.T, e engine, ws, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for serversIn(t, e, ws, name) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs in the container", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const pyMain = `import os
from pkg.mod import helper


def main():
    print(helper(1))
    print(os.path.join("a", "b"))
    return undefined_name
`

const pyMod = `def helper(x):
    """Add one to x."""
    return x + 1
`

// pyWorkspace makes a workspace with a .git, the folder berth lsp finds
// from a rootUri below it.
func pyWorkspace(t *testing.T, e engine) (ws, mainPy, modPy string) {
	t.Helper()
	ws = workspace(t, e.b)
	for name, text := range map[string]string{"src/main.py": pyMain, "src/pkg/__init__.py": "", "src/pkg/mod.py": pyMod} {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(ws, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	return ws, filepath.Join(ws, "src", "main.py"), filepath.Join(ws, "src", "pkg", "mod.py")
}

// TestLSPPylsp drives pylsp through berth lsp as an editor would, with
// the workspace found from initialize's rootUri (a folder below it).
func TestLSPPylsp(t *testing.T) { eachBackend(t, testLSPPylsp) }

func testLSPPylsp(t *testing.T, e engine) {
	ws, mainPy, modPy := pyWorkspace(t, e)
	src := filepath.Join(ws, "src")
	l := startLSP(t, e, debianImage(e), t.TempDir(), "--", "pylsp")
	l.initialize(src)
	l.open(mainPy, "python")

	// Diagnostics come back at the host URI.
	l.waitDiagnostics(fileURI(mainPy), "undefined_name")

	// Definition into another workspace file: its host URI.
	loc := l.definition(mainPy, posOf(t, mainPy, "print(helper", "helper", 1))
	if loc.URI != fileURI(modPy) || loc.Range.Start.Line != 0 {
		t.Errorf("definition of helper = %+v, want %s line 0", loc, fileURI(modPy))
	}

	// Definition into the standard library: a mirror of the container's file.
	loc = l.definition(mainPy, posOf(t, mainPy, "os.path.join", "join", 1))
	// (jedi answers posixpath.py or ntpath.py, as os.path is either.)
	lib := l.mirrorCheck(e, ws, loc, "path.py")

	// A change to it in the container, as a pip install makes, shows the
	// next time a result names it.
	// jedi may answer the other of the two files this time, so both change.
	dir := filepath.Dir(lib)
	lspRunIn(t, e, ws, "sh", "-c", "for f in "+dir+"/posixpath.py "+dir+"/ntpath.py; do echo '# changed in the container' >> $f; done")
	loc = l.definition(mainPy, posOf(t, mainPy, "os.path.join", "join", 1))
	l.mirrorCheck(e, ws, loc, "path.py") // the mirror equals the changed file
	if b, err := os.ReadFile(strings.TrimPrefix(loc.URI, "file://")); err != nil || !bytes.Contains(b, []byte("# changed in the container")) {
		t.Errorf("the mirror %s does not show the change made in the container (%v)", loc.URI, err)
	}

	// Hover.
	var hover struct {
		Contents json.RawMessage `json:"contents"`
	}
	l.call("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": fileURI(mainPy)}, "position": posOf(t, mainPy, "print(helper", "helper", 1)}, &hover)
	if !strings.Contains(string(hover.Contents), "Add one to x") {
		t.Errorf("hover on helper = %s, want its docstring", hover.Contents)
	}

	// Rename: a WorkspaceEdit keyed by host URIs.
	var edit json.RawMessage
	l.call("textDocument/rename", map[string]any{"textDocument": map[string]string{"uri": fileURI(mainPy)}, "position": posOf(t, mainPy, "print(helper", "helper", 1), "newName": "assist"}, &edit)
	checkEditURIs(t, edit, ws, fileURI(mainPy), fileURI(modPy))

	// The server never saw the editor's pid, nor a host path.
	if n := serversIn(t, e, ws, "pylsp"); n != 1 {
		t.Errorf("%d pylsp processes in the container, want 1", n)
	}
	l.shutdown()
	waitNoServer(t, e, ws, "pylsp")
}

// checkEditURIs checks that a WorkspaceEdit names exactly want, all host
// URIs, in changes or documentChanges.
func checkEditURIs(t *testing.T, raw json.RawMessage, ws string, want ...string) {
	t.Helper()
	var edit struct {
		Changes         map[string]json.RawMessage `json:"changes"`
		DocumentChanges []struct {
			TextDocument struct {
				URI string `json:"uri"`
			} `json:"textDocument"`
		} `json:"documentChanges"`
	}
	if err := json.Unmarshal(raw, &edit); err != nil {
		t.Fatalf("rename: %s: %v", raw, err)
	}
	got := map[string]bool{}
	for uri := range edit.Changes {
		got[uri] = true
	}
	for _, dc := range edit.DocumentChanges {
		got[dc.TextDocument.URI] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("rename edit lacks %s: %s", w, raw)
		}
		delete(got, w)
	}
	if len(got) > 0 {
		t.Errorf("rename edit has other URIs %v: %s", got, raw)
	}
}

// TestLSPServerDiesWithBerth: no server is left in the container after
// the editor disconnects, or after berth lsp is killed with SIGKILL.
func TestLSPServerDiesWithBerth(t *testing.T) { eachBackend(t, testLSPServerDiesWithBerth) }

func testLSPServerDiesWithBerth(t *testing.T, e engine) {
	ws, mainPy, _ := pyWorkspace(t, e)

	// The editor goes away without shutdown: stdin closes.
	l := startLSP(t, e, debianImage(e), ws, "--", "pylsp")
	l.initialize(ws)
	l.open(mainPy, "python")
	l.waitDiagnostics(fileURI(mainPy), "undefined_name")
	l.stdin.Close()
	select {
	case <-l.waited:
	case <-time.After(30 * time.Second):
		t.Fatal("berth lsp did not exit when the editor closed stdin")
	}
	waitNoServer(t, e, ws, "pylsp")

	// berth lsp is killed.
	l = startLSP(t, e, debianImage(e), ws, "--", "pylsp")
	l.initialize(ws)
	if n := serversIn(t, e, ws, "pylsp"); n != 1 {
		t.Fatalf("%d pylsp processes, want 1", n)
	}
	if err := l.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-l.waited
	waitNoServer(t, e, ws, "pylsp")
}

const lspGoMain = `package main

import "fmt"

func main() {
	fmt.Println(helper(1))
	var unused int
}
`

const lspGoUtil = `package main

// helper adds one to x.
func helper(x int) int { return x + 1 }
`

// TestLSPGopls drives gopls through berth lsp on each engine's Go image.
func TestLSPGopls(t *testing.T) { eachBackend(t, testLSPGopls) }

// goImageOn is the Go test image as e names it: Incus reads "a:b" as
// remote a, image b.
func goImageOn(e engine) string {
	if e.name == docker.Name {
		return goImage()
	}
	return envOr("BERTH_TEST_INCUS_DEBIAN_GO_IMAGE", "berth-test/debian-go-2")
}

func testLSPGopls(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	for name, text := range map[string]string{"go.mod": "module example.com/m\n\ngo 1.19\n", "main.go": lspGoMain, "util.go": lspGoUtil} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mainGo, utilGo := filepath.Join(ws, "main.go"), filepath.Join(ws, "util.go")
	l := startLSP(t, e, goImageOn(e), ws, "--", "gopls")
	l.initialize(ws)
	l.open(mainGo, "go")

	l.waitDiagnostics(fileURI(mainGo), "unused")

	loc := l.definition(mainGo, posOf(t, mainGo, "fmt.Println(helper", "helper", 1))
	if loc.URI != fileURI(utilGo) || loc.Range.Start.Line != 3 {
		t.Errorf("definition of helper = %+v, want %s line 3", loc, fileURI(utilGo))
	}
	loc = l.definition(mainGo, posOf(t, mainGo, "fmt.Println", "Println", 1))
	l.mirrorCheck(e, ws, loc, "/src/fmt/print.go")

	var hover struct {
		Contents json.RawMessage `json:"contents"`
	}
	l.call("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": fileURI(mainGo)}, "position": posOf(t, mainGo, "fmt.Println(helper", "helper", 1)}, &hover)
	if !strings.Contains(string(hover.Contents), "func helper(x int) int") {
		t.Errorf("hover on helper = %s", hover.Contents)
	}

	var edit json.RawMessage
	l.call("textDocument/rename", map[string]any{"textDocument": map[string]string{"uri": fileURI(mainGo)}, "position": posOf(t, mainGo, "fmt.Println(helper", "helper", 1), "newName": "assist"}, &edit)
	checkEditURIs(t, edit, ws, fileURI(mainGo), fileURI(utilGo))

	l.shutdown()
	waitNoServer(t, e, ws, "gopls")
}

// TestLSPServerNotFound: initialize is answered with -32015 and berth lsp
// exits 127, as `berth exec` does.
func TestLSPServerNotFound(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	l := startLSP(t, e, e.image, ws, "--", "no-such-server")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := l.c.Call(ctx, "initialize", map[string]any{"processId": nil, "rootUri": fileURI(ws), "capabilities": map[string]any{}}, nil)
	if code(err) != rpc.CodeCommandNotFound {
		t.Errorf("initialize: %v, want code %d", err, rpc.CodeCommandNotFound)
	}
	<-l.waited
	var ee *exec.ExitError
	if !errors.As(l.err, &ee) || ee.ExitCode() != 127 {
		t.Errorf("berth lsp exited with %v, want 127", l.err)
	}
}

// TestLSPWithoutDoor: with no door to the agent (--no-fastpath, as with a
// remote engine), berth lsp runs the server through its session's
// berth/exec, and everything works the same.
func TestLSPWithoutDoor(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws, mainPy, modPy := pyWorkspace(t, e)
	l := startLSP(t, e, debianImage(e), ws, "--no-fastpath", "--", "pylsp")
	l.initialize(ws)
	l.open(mainPy, "python")
	l.waitDiagnostics(fileURI(mainPy), "undefined_name")
	loc := l.definition(mainPy, posOf(t, mainPy, "print(helper", "helper", 1))
	if loc.URI != fileURI(modPy) {
		t.Errorf("definition of helper = %+v, want %s", loc, fileURI(modPy))
	}
	loc = l.definition(mainPy, posOf(t, mainPy, "os.path.join", "join", 1))
	l.mirrorCheck(e, ws, loc, "path.py")
	l.shutdown()
	waitNoServer(t, e, ws, "pylsp")

	// The server dies with berth lsp here too.
	l = startLSP(t, e, debianImage(e), ws, "--no-fastpath", "--", "pylsp")
	l.initialize(ws)
	if err := l.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-l.waited
	waitNoServer(t, e, ws, "pylsp")
}
