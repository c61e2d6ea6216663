package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A Containerfile in the workspace is built, once; a change makes the
// instance stale, and recreate rebuilds it.
func TestContainerfileBuildAndStale(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, "Containerfile"), "FROM "+backendtest.Image()+"\nRUN echo first > /built.txt\n")
	writeFile(t, filepath.Join(ws, ".dockerignore"), "secret.txt\n")
	writeFile(t, filepath.Join(ws, "secret.txt"), "not for the build\n")

	b := startBerth(t, e)
	b.client.Notify(context.Background(), "initialized", struct{}{})
	b.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + ws, InitializationOptions: &rpc.InitializationOptions{}}, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", map[string]any{"workDoneToken": "up-1"}, &inst)
	if !inst.Created || inst.ConfigSource != "containerfile" || inst.BuildPID == "" || inst.Stale {
		t.Fatalf("up = %+v", inst)
	}
	if exit, out := b.waitExit(inst.BuildPID); exit.Code != 0 || !strings.Contains(out["stdout"], "Step") {
		t.Errorf("build log: exit %+v, %q", exit, out["stdout"])
	}
	if begin, end := b.progress("up-1"); !begin || !end {
		t.Errorf("$/progress for the token: begin %v end %v", begin, end)
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "/built.txt"}}, &run)
	if run.Stdout != "first\n" {
		t.Errorf("built file = %q", run.Stdout)
	}

	// Another berth: no rebuild, same container.
	b2 := startBerth(t, e)
	b2.initialize(ws, &rpc.InitializationOptions{})
	var again rpc.Instance
	b2.mustCall("berth/up", rpc.UpParams{}, &again)
	if again.Created || again.BuildPID != "" || again.ID != inst.ID || again.Stale {
		t.Errorf("second up = %+v, want the same instance, no build, not stale", again)
	}

	// The Containerfile changes, saved the way editors do (a temp file
	// renamed over it): configChanged, stale, reused until recreate.
	writeFile(t, filepath.Join(ws, ".Containerfile.swp"), "FROM "+backendtest.Image()+"\nRUN echo second > /built.txt\n")
	if err := os.Rename(filepath.Join(ws, ".Containerfile.swp"), filepath.Join(ws, "Containerfile")); err != nil {
		t.Fatal(err)
	}
	changed := b2.waitNote("berth/configChanged")
	var cc rpc.ConfigChangedParams
	json.Unmarshal(changed, &cc)
	if cc.Workspace != ws || len(cc.Files) != 1 || cc.Files[0] != filepath.Join(ws, "Containerfile") {
		t.Errorf("configChanged = %+v", cc)
	}
	var st rpc.Instance
	b2.mustCall("berth/status", struct{}{}, &st)
	if !st.Stale {
		t.Errorf("status after the change = %+v, want stale", st)
	}
	b2.mustCall("berth/up", rpc.UpParams{}, &again)
	if !again.Stale || again.ID != inst.ID || again.BuildPID != "" {
		t.Errorf("up of a stale instance = %+v, want it reused and marked stale", again)
	}
	b2.mustCall("berth/up", rpc.UpParams{Recreate: true}, &again)
	if again.Stale || again.ID == inst.ID || again.BuildPID == "" {
		t.Errorf("up with recreate = %+v, want a rebuilt instance", again)
	}
	b2.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "/built.txt"}}, &run)
	if run.Stdout != "second\n" {
		t.Errorf("rebuilt file = %q", run.Stdout)
	}

	// A failing build names its step.
	writeFile(t, filepath.Join(ws, "Containerfile"), "FROM "+backendtest.Image()+"\nRUN exit 3\n")
	err := b2.call("berth/up", rpc.UpParams{Recreate: true}, nil)
	if code(err) != rpc.CodeBuildFailed || !strings.Contains(err.Error(), "RUN exit 3") {
		t.Errorf("failing build: %v, want code %d naming the step", err, rpc.CodeBuildFailed)
	}
}

// waitNote waits for the first notification of method and returns its
// params.
func (b *berth) waitNote(method string) json.RawMessage {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	timer := time.AfterFunc(20*time.Second, b.cond.Broadcast)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for _, n := range b.notes {
			if n.method == method {
				return n.params
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no %s notification", method)
		}
		b.cond.Wait()
	}
}

// progress reports whether $/progress begin and end arrived for token.
func (b *berth) progress(token string) (begin, end bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.notes {
		if n.method != "$/progress" {
			continue
		}
		var p struct {
			Token string `json:"token"`
			Value struct {
				Kind string `json:"kind"`
			} `json:"value"`
		}
		json.Unmarshal(n.params, &p)
		if p.Token == token {
			begin = begin || p.Value.Kind == "begin"
			end = end || p.Value.Kind == "end"
		}
	}
	return begin, end
}

// devcontainer.json: image, env, remoteUser, lifecycle hooks with the
// spec's semantics, forwarded ports.
func TestDevcontainerJSON(t *testing.T) { eachBackend(t, testDevcontainerJSON) }

func testDevcontainerJSON(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	// JSONC: comments and trailing commas.
	"image": "`+e.image+`",
	"workspaceFolder": "/src/${localWorkspaceFolderBasename}",
	"workspaceMount": "source=${localWorkspaceFolder},target=/src/${localWorkspaceFolderBasename},type=bind",
	"containerEnv": {"GREETING": "hello"},
	"remoteEnv": {"FROM_REMOTE": "${containerEnv:GREETING} there", "PATH": "${containerEnv:PATH}:/opt/extra"},
	"remoteUser": "user",
	"postCreateCommand": "echo created >> /tmp/hooks.log",
	"postStartCommand": ["sh", "-c", "echo started >> /tmp/hooks.log"],
	"postAttachCommand": {"a": "echo attach-a >> /tmp/attach.log", "b": ["sh", "-c", "echo attach-b >> /tmp/attach.log"]},
	"customizations": {"berth": {"frobnicate": true}, "vscode": {"extensions": []}},
	"features": {},
}`)
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	base := filepath.Base(ws)
	if inst.ConfigSource != "devcontainer.json" || inst.Workdir != "/src/"+base || len(inst.Hooks) != 4 {
		t.Fatalf("up = %+v", inst)
	}
	for _, h := range inst.Hooks {
		if h.Code != 0 || h.Error != "" {
			t.Errorf("hook %+v failed", h)
		}
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "id -un; pwd; echo $GREETING; echo $FROM_REMOTE; case $PATH in *:/opt/extra) echo path-ok;; esac"}, MapPaths: new(bool)}, &run)
	if want := "user\n/src/" + base + "\nhello\nhello there\npath-ok\n"; run.Stdout != want {
		t.Errorf("exec under the config = %q, want %q", run.Stdout, want)
	}
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "/tmp/hooks.log", "/tmp/attach.log"}}, &run)
	if run.Stdout != "created\nstarted\nattach-a\nattach-b\n" && run.Stdout != "created\nstarted\nattach-b\nattach-a\n" {
		t.Errorf("hooks after the first up = %q", run.Stdout)
	}

	// Stop and start again: postStart runs, postCreate doesn't.
	b.mustCall("berth/down", rpc.DownParams{}, nil)
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "/tmp/hooks.log"}}, &run)
	if run.Stdout != "created\nstarted\nstarted\n" {
		t.Errorf("hooks after a restart = %q, want postCreate once and postStart twice", run.Stdout)
	}

	// shutdownAction defaults to stopContainer for a devcontainer.json:
	// the last client leaving stops the container.
	b.mustCall("shutdown", nil, nil)
	b.client.Notify(context.Background(), "exit", nil)
	<-b.waited
	if got, err := e.b.Find(context.Background(), ws); err != nil || got.State != "stopped" {
		t.Errorf("after the last client left: %+v, %v; want stopped", got.State, err)
	}
}

// A broken devcontainer.json is an error naming the file, line and column;
// Incus explains that it can't build.
func TestConfigErrors(t *testing.T) { eachBackend(t, testConfigErrors) }

func testConfigErrors(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	cfg := filepath.Join(ws, ".devcontainer.json")
	writeFile(t, cfg, "{\n  \"image\": \"x\"\n  \"remoteUser\": \"y\"\n}\n")
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	err := b.call("berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeBadConfig || !strings.Contains(err.Error(), cfg+":3:") {
		t.Errorf("broken config: %v, want code %d naming %s:3:col", err, rpc.CodeBadConfig, cfg)
	}
	if e.name == incus.Name {
		os.Remove(cfg)
		writeFile(t, filepath.Join(ws, "Dockerfile"), "FROM scratch\n")
		err := b.call("berth/up", rpc.UpParams{}, nil)
		if code(err) != rpc.CodeBuildFailed || !strings.Contains(err.Error(), "cannot build") {
			t.Errorf("incus build: %v, want a clear cannot-build error", err)
		}
	}
}

// Sync mode: the workspace is copied in (minus what git's ignore rules
// and .dockerignore leave out) and kept in sync: edits, deletes, renames,
// mode bits and symlinks; paths map as with a mount.
func TestSyncMode(t *testing.T) { eachBackend(t, testSyncMode) }

func testSyncMode(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer.json"), `{"image": "`+e.image+`", "workspaceMount": "copy"}`)
	writeFile(t, filepath.Join(ws, ".gitignore"), "/build\n*.log\n!keep.log\n")
	writeFile(t, filepath.Join(ws, "src", ".gitignore"), "*.tmp\n")
	writeFile(t, filepath.Join(ws, "build", "out.bin"), "ignored\n")
	writeFile(t, filepath.Join(ws, "src", "debug.log"), "ignored too\n")
	writeFile(t, filepath.Join(ws, "src", "x.tmp"), "ignored by src/.gitignore\n")
	writeFile(t, filepath.Join(ws, "src", "keep.log"), "kept by a negation\n")
	writeFile(t, filepath.Join(ws, "src", "build", "x.o"), "not under /build\n")
	writeFile(t, filepath.Join(ws, "src", "keep.txt"), "v1\n")
	writeFile(t, filepath.Join(ws, "src", "gone.txt"), "delete me\n")
	writeFile(t, filepath.Join(ws, "src", "old-name.txt"), "rename me\n")

	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	if len(inst.Mounts) == 0 || inst.Mounts[0].Type != "sync" {
		t.Fatalf("up in sync mode = %+v", inst)
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "cat src/keep.txt; echo $PWD/src/keep.txt; ls build src/debug.log 2>&1 | wc -l"}}, &run)
	if want := "v1\n" + ws + "/src/keep.txt\n"; !strings.HasPrefix(run.Stdout, want) {
		t.Errorf("after the first copy: %q, want it to start %q", run.Stdout, want)
	}
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "test -e build || test -e src/debug.log || test -e src/x.tmp || echo ignored-ok; cat src/keep.log src/build/x.o"}}, &run)
	if want := "ignored-ok\nkept by a negation\nnot under /build\n"; run.Stdout != want {
		t.Errorf("ignore rules: %q, want %q", run.Stdout, want)
	}

	// Create, modify, delete and rename on the host; then 1,000 files.
	writeFile(t, filepath.Join(ws, "src", "keep.txt"), "v2\n")
	os.Remove(filepath.Join(ws, "src", "gone.txt"))
	os.Rename(filepath.Join(ws, "src", "old-name.txt"), filepath.Join(ws, "src", "new-name.txt"))
	for i := range 1000 {
		writeFile(t, filepath.Join(ws, "many", fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d.txt", i)), fmt.Sprintf("file %d %s\n", i, strings.Repeat("x", i%97)))
	}
	var sr rpc.SyncResult
	b.mustCall("berth/sync", struct{}{}, &sr)
	if !sr.Synced {
		t.Errorf("sync = %+v", sr)
	}

	// Every file, checksummed on both sides.
	want := hostSums(t, ws)
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "find . -type f | sed 's|^./||' | sort | while read f; do sha256sum \"$f\"; done"}, MapPaths: new(bool)}, &run)
	if run.Code != 0 || run.Truncated {
		t.Fatalf("checksums in the container: %+v", run)
	}
	if got := strings.TrimSpace(run.Stdout); got != want {
		gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
		t.Errorf("container has %d files, host %d; first container lines %q, host %q", len(gl), len(wl), gl[:min(3, len(gl))], wl[:min(3, len(wl))])
	}

	// Mode bits, a symlink, a file turned into a symlink, a renamed
	// directory; then an edit arrives by itself, without berth/sync.
	os.Chmod(filepath.Join(ws, "src", "keep.txt"), 0o750)
	os.Symlink("keep.txt", filepath.Join(ws, "src", "link"))
	os.Remove(filepath.Join(ws, "src", "new-name.txt"))
	os.Symlink("../src/keep.txt", filepath.Join(ws, "src", "new-name.txt"))
	os.Rename(filepath.Join(ws, "many", "d00"), filepath.Join(ws, "many", "moved"))
	b.mustCall("berth/sync", struct{}{}, &sr)
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "stat -c %a src/keep.txt; readlink src/link; readlink src/new-name.txt; ls many/moved | wc -l; test -e many/d00 || echo renamed"}}, &run)
	if want := "750\nkeep.txt\n../src/keep.txt\n50\nrenamed\n"; strings.ReplaceAll(run.Stdout, " ", "") != want {
		t.Errorf("modes, links and renames: %q, want %q", run.Stdout, want)
	}
	writeFile(t, filepath.Join(ws, "src", "keep.txt"), "v3\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "src/keep.txt"}}, &run)
		if run.Stdout == "v3\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an edit never arrived by itself: %q", run.Stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two-way sync: what the container writes comes back, ignored build
// outputs too when "back" names them; a file both sides changed keeps the
// host's copy and saves the container's beside it.
func TestSyncTwoWay(t *testing.T) { eachBackend(t, testSyncTwoWay) }

func testSyncTwoWay(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer.json"), `{"image": "`+e.image+`", "workspaceMount": "copy",
	"customizations": {"berth": {"sync": {"twoWay": true, "back": ["/build/**"]}}}}`)
	writeFile(t, filepath.Join(ws, ".gitignore"), "/build\n*.o\n")
	writeFile(t, filepath.Join(ws, "src", "a.txt"), "host\n")
	writeFile(t, filepath.Join(ws, "src", "gone.txt"), "remove me inside\n")

	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", `set -e
mkdir -p build/bin
echo out > build/bin/tool; chmod 755 build/bin/tool
echo gen > src/gen.txt; ln -s gen.txt src/gen.link
echo container > src/a.txt
echo object > src/x.o
rm src/gone.txt`}}, &run)
	if run.Code != 0 {
		t.Fatalf("writing inside: %+v", run)
	}
	// The scan every second may bring some back before berth/sync does.
	var sr rpc.SyncResult
	b.mustCall("berth/sync", struct{}{}, &sr)
	if !sr.Synced {
		t.Errorf("sync = %+v", sr)
	}
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(ws, rel))
		if err != nil {
			return err.Error()
		}
		return string(data)
	}
	got := map[string]string{}
	for _, rel := range []string{"build/bin/tool", "src/gen.txt", "src/a.txt"} {
		got[rel] = read(rel)
	}
	want := map[string]string{"build/bin/tool": "out\n", "src/gen.txt": "gen\n", "src/a.txt": "container\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("came back (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(filepath.Join(ws, "build", "bin", "tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("build/bin/tool mode: %v, %v", fi, err)
	}
	if l, _ := os.Readlink(filepath.Join(ws, "src", "gen.link")); l != "gen.txt" {
		t.Errorf("src/gen.link -> %q", l)
	}
	if _, err := os.Lstat(filepath.Join(ws, "src", "x.o")); err == nil {
		t.Errorf("src/x.o came back: ignored and not in back")
	}
	if _, err := os.Lstat(filepath.Join(ws, "src", "gone.txt")); err == nil {
		t.Errorf("src/gone.txt, removed inside, is still on the host")
	}
}

// Two-way sync, a race: the container and the host change the same file
// within one scan window. Nothing is lost: the host's copy wins and goes
// in, and the container's comes back as NAME.berth-conflict. A scan that
// falls between the two writes makes them one after the other, so the
// race is tried again, on a new file, until it happens.
func TestSyncTwoWayRace(t *testing.T) { eachBackend(t, testSyncTwoWayRace) }

func testSyncTwoWayRace(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, ".devcontainer.json"), `{"image": "`+e.image+`", "workspaceMount": "copy",
	"customizations": {"berth": {"sync": {"twoWay": true}}}}`)
	for i := range 3 {
		writeFile(t, filepath.Join(ws, fmt.Sprintf("race%d.txt", i)), "base\n")
	}
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	b.mustCall("berth/up", rpc.UpParams{}, nil)
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(ws, rel))
		if err != nil {
			return "<none>"
		}
		return string(data)
	}
	for i := range 3 {
		name := fmt.Sprintf("race%d.txt", i)
		var run rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "echo container-edit > " + name}}, &run)
		writeFile(t, filepath.Join(ws, name), "host-edit\n")
		if run.Code != 0 {
			t.Fatalf("writing inside: %+v", run)
		}
		var sr rpc.SyncResult
		b.mustCall("berth/sync", struct{}{}, &sr)
		b.mustCall("berth/sync", struct{}{}, &sr) // the conflict copy's removal inside is a batch of its own
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "cat " + name + "; ls " + name + ".berth-conflict 2>/dev/null; true"}}, &run)
		if run.Stdout != "host-edit\n" {
			t.Errorf("%s inside = %q, want the host's copy and no conflict copy left inside", name, run.Stdout)
		}
		if got := read(name); got != "host-edit\n" {
			t.Errorf("%s on the host = %q, want the host's edit", name, got)
		}
		conflict := read(name + ".berth-conflict")
		if conflict == "container-edit\n" {
			return // the race happened, and nothing was lost
		}
		if conflict != "<none>" {
			t.Fatalf("%s.berth-conflict = %q", name, conflict)
		}
		t.Logf("%s: a scan came between the two writes; trying again", name)
	}
	t.Errorf("the container's edit was lost each time: no NAME.berth-conflict")
}

// hostSums lists "sha256  path" for every file the sync should carry.
func hostSums(t *testing.T, ws string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(ws, func(p string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(ws, p)
		if d.IsDir() && (rel == "build" || rel == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || strings.HasSuffix(rel, ".log") && filepath.Base(rel) != "keep.log" || strings.HasSuffix(rel, ".tmp") {
			return nil
		}
		data, _ := os.ReadFile(p)
		lines = append(lines, fmt.Sprintf("%x  %s", sha256.Sum256(data), rel))
		return nil
	})
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return strings.Join(lines, "\n")
}

// customizations.berth picks the backend, turns the agent off, and gives
// test defaults.
func TestCustomizationsBerth(t *testing.T) {
	d := needBackend(t, docker.Name)
	in := needBackend(t, incus.Name)
	ws := workspace(t, in.b)
	writeFile(t, filepath.Join(ws, ".devcontainer.json"), `{
	"image": "`+in.image+`",
	"customizations": {"berth": {"backend": "incus", "agent": false, "test": {"framework": "go"}}},
}`)
	b := startBerth(t, d) // started for docker; the workspace asks for incus
	init := b.initialize(ws, &rpc.InitializationOptions{})
	if init.Capabilities.Berth.Backend != "incus" {
		t.Fatalf("backend = %q, want incus from customizations.berth", init.Capabilities.Berth.Backend)
	}
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var st rpc.Instance
	b.mustCall("berth/status", struct{}{}, &st)
	if inst.Backend != "incus" || st.Agent.Enabled || !strings.Contains(st.Agent.Reason, "customizations.berth.agent") {
		t.Errorf("up = %+v, status agent = %+v", inst, st.Agent)
	}
	// The test default says go, and this image has no go: a clear failure
	// rather than pytest.
	err := b.call("berth/test", rpc.TestParams{}, nil)
	if err == nil || !strings.Contains(err.Error(), "go") {
		t.Errorf("berth/test with framework go from the config: %v", err)
	}
}

// With neither remoteUser nor containerUser, processes run as the image's
// USER, as the spec says and the engine's own exec does: through the
// agent (which is root) as through plain exec.
func TestImageUserIsTheDefault(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	writeFile(t, filepath.Join(ws, "Containerfile"), "FROM "+backendtest.Image()+"\nUSER 1234:1234\n")
	for _, args := range [][]string{nil, {"--no-agent"}} {
		b := startBerth(t, e, args...)
		b.initialize(ws, &rpc.InitializationOptions{})
		var run rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"id", "-u"}}, &run)
		if run.Stdout != "1234\n" {
			t.Errorf("%v: id -u = %q, want the image's user 1234", args, run.Stdout)
		}
		b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"id", "-u"}, User: "0"}, &run)
		if run.Stdout != "0\n" {
			t.Errorf("%v: id -u as user 0 = %q", args, run.Stdout)
		}
	}
}
