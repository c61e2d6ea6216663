package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

// These tests hold berth to issue 13's "every other key": engine settings
// and runArgs reach the container, initializeCommand runs on the host
// first, waitFor and userEnvProbe behave as the spec says, and whatever
// berth leaves out is said, on stderr and as window/showMessage.

// fixture copies testdata/workspaces/name to a temp workspace whose
// instance the test removes. Fixtures take their image from BERTH_IMAGE,
// as a project might from its own variable, so it is set for the test.
func fixture(t *testing.T, e engine, name string) string {
	t.Helper()
	ws := workspace(t, e.b)
	if err := os.CopyFS(ws, os.DirFS(filepath.Join("../../testdata/workspaces", name))); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_IMAGE", e.image)
	return ws
}

// run runs argv through b and returns its stdout, failing on a non-zero
// exit.
func (b *berth) runOut(argv ...string) string {
	b.t.Helper()
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: argv, MapPaths: new(bool)}, &run)
	if run.Code != 0 {
		b.t.Fatalf("%v: code %d, stderr %q", argv, run.Code, run.Stderr)
	}
	return run.Stdout
}

func TestEngineSettings(t *testing.T) { eachBackend(t, testEngineSettings) }

func testEngineSettings(t *testing.T, e engine) {
	ws := fixture(t, e, "keys-engine")
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	from := b.mark()
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)

	// initializeCommand ran on the host, before the first hook.
	host, _ := os.Hostname()
	data, err := os.ReadFile(filepath.Join(ws, ".devcontainer", ".initialized"))
	if err != nil || strings.TrimSpace(string(data)) != host {
		t.Errorf("initializeCommand's record = %q, %v; want the host's name %q", data, err, host)
	}
	if got := b.runOut("cat", "/tmp/init-seen"); strings.TrimSpace(got) != host {
		t.Errorf("onCreateCommand saw %q: initializeCommand did not run first", got)
	}
	if got := b.runOut("cat", "/tmp/hooks.log"); got != "onCreate\nupdateContent\npostCreate\n" {
		t.Errorf("hooks = %q", got)
	}

	// Environment: runArgs -e over --env-file, remoteEnv for processes.
	if got := b.runOut("sh", "-c", "echo $RUNARGS_ENV $ENVFILE_VAR $ORDERS_ENV"); got != "from-runArgs from-env-file dev\n" {
		t.Errorf("environment = %q", got)
	}
	// Capabilities: capAdd and runArgs' --cap-add. Incus containers hold
	// both in their own namespace already.
	capEff := b.runOut("sh", "-c", "grep CapEff /proc/self/status | cut -f2")
	var caps uint64
	fmt.Sscanf(strings.TrimSpace(capEff), "%x", &caps)
	const capNetAdmin, capSysPtrace = 12, 19
	if caps&(1<<capNetAdmin) == 0 || caps&(1<<capSysPtrace) == 0 {
		t.Errorf("CapEff %s lacks NET_ADMIN or SYS_PTRACE", strings.TrimSpace(capEff))
	}
	// The hard limit: the agent, a Go program, raises its soft limit to it.
	if got := b.runOut("sh", "-c", "ulimit -Hn"); got != "8192\n" {
		t.Errorf("hard ulimit nofile = %q, want 8192", got)
	}

	warnings := strings.Join(inst.Warnings, "\n")
	notes := b.notesSince("window/showMessage", from)
	var shown []string
	for _, n := range notes {
		var m protocol.ShowMessageParams
		json.Unmarshal(n, &m)
		if m.Type != protocol.MessageTypeWarning {
			t.Errorf("showMessage of type %v, want Warning: %s", m.Type, m.Message)
		}
		shown = append(shown, m.Message)
	}
	if len(shown) != len(inst.Warnings) || len(shown) == 0 {
		t.Errorf("showMessage %q, want one per warning %q", shown, inst.Warnings)
	}
	for _, w := range []string{"futureKey", "hostRequirements", "4096 CPUs"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings %q do not name %s", warnings, w)
		}
	}
	for _, quiet := range []string{"settings", "customizations", "portsAttributes", "runArgs", "capAdd", "initializeCommand"} {
		if strings.Contains(warnings, " "+quiet) {
			t.Errorf("warnings %q name %s, which berth honours or editors own", warnings, quiet)
		}
	}

	switch e.name {
	case docker.Name:
		out, err := exec.Command("docker", "inspect", "--format",
			`{{index .Config.Labels "com.example.team"}} {{.Config.Hostname}} {{.HostConfig.ExtraHosts}} {{.HostConfig.SecurityOpt}}`, inst.Name).CombinedOutput()
		if want := "orders orders-dev [db.internal:10.9.8.7] [seccomp=unconfined]\n"; err != nil || string(out) != want {
			t.Errorf("docker inspect = %q, %v; want %q", out, err, want)
		}
		if got := b.runOut("sh", "-c", "hostname; grep db.internal /etc/hosts | cut -f1"); got != "orders-dev\n10.9.8.7\n" {
			t.Errorf("hostname and hosts = %q", got)
		}
	case incus.Name:
		// What an Incus system container can't take is named.
		for _, w := range []string{"securityOpt seccomp=unconfined", "--hostname orders-dev", "--add-host db.internal:10.9.8.7"} {
			if !strings.Contains(warnings, w) {
				t.Errorf("incus warnings %q do not name %s", warnings, w)
			}
		}
	}
}

// The CLI says the warnings on stderr, and `berth config` reads the
// configuration without the engine.
func TestCLIWarningsAndConfig(t *testing.T) { eachBackend(t, testCLIWarningsAndConfig) }

func testCLIWarningsAndConfig(t *testing.T, e engine) {
	ws := fixture(t, e, "keys-engine")
	stdout, stderr, code := cli(t, e, ws, "config")
	if code != 0 {
		t.Fatalf("berth config: code %d, stderr %s", code, stderr)
	}
	var cfg struct {
		Configuration       map[string]any `json:"configuration"`
		MergedConfiguration map[string]any `json:"mergedConfiguration"`
		Unsupported         []string       `json:"unsupported"`
	}
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatalf("berth config: %v\n%s", err, stdout)
	}
	if cfg.Configuration["image"] != e.image || cfg.Configuration["name"] != "orders-api" {
		t.Errorf("configuration: image %v, name %v; want the substituted file", cfg.Configuration["image"], cfg.Configuration["name"])
	}
	if p, _ := cfg.Configuration["configFilePath"].(map[string]any); p["fsPath"] != filepath.Join(ws, ".devcontainer", "devcontainer.json") {
		t.Errorf("configFilePath = %v", cfg.Configuration["configFilePath"])
	}
	if cfg.MergedConfiguration["image"] != e.image {
		t.Errorf("mergedConfiguration = %v", cfg.MergedConfiguration)
	}
	if !strings.Contains(strings.Join(cfg.Unsupported, "\n"), "futureKey") {
		t.Errorf("unsupported = %q, want futureKey", cfg.Unsupported)
	}
	if _, err := os.Stat(filepath.Join(ws, ".devcontainer", ".initialized")); err == nil {
		t.Errorf("berth config ran initializeCommand")
	}

	_, stderr, code = cli(t, e, ws, "--trust", "up")
	if code != 0 {
		t.Fatalf("berth up: code %d, stderr %s", code, stderr)
	}
	if strings.Count(stderr, "berth ignores futureKey") != 1 || !strings.Contains(stderr, "hostRequirements") {
		t.Errorf("berth up's stderr does not say each warning once:\n%s", stderr)
	}
}

// Named configs: several need a choice, which --config makes; berth
// config --list offers them.
func TestNamedConfigs(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := fixture(t, e, "keys-named")
	api, web := filepath.Join(ws, ".devcontainer", "api", "devcontainer.json"), filepath.Join(ws, ".devcontainer", "web", "devcontainer.json")
	stdout, stderr, exit := cli(t, e, ws, "config", "--list")
	if exit != 0 || stdout != api+"\n"+web+"\n" {
		t.Errorf("config --list = %q (code %d, %s)", stdout, exit, stderr)
	}
	_, stderr, exit = cli(t, e, ws, "up")
	if exit != 125 || !strings.Contains(stderr, api) || !strings.Contains(stderr, web) || !strings.Contains(stderr, "--config") {
		t.Errorf("up without a choice: code %d, stderr %q; want 125 listing both", exit, stderr)
	}
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	err := b.call("berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeAmbiguousConfig {
		t.Errorf("berth/up without a choice: %v, want code %d", err, rpc.CodeAmbiguousConfig)
	}
	stdout, stderr, exit = cli(t, e, ws, "--config", ".devcontainer/web/devcontainer.json", "exec", "--", "sh", "-c", "echo $ROLE")
	if exit != 0 || stdout != "web\n" {
		t.Errorf("exec with --config: %q, code %d, %s", stdout, exit, stderr)
	}
}

// A runArgs flag berth does not map is an error naming it, where it is.
func TestRunArgsUnknownFlag(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	cfg := filepath.Join(ws, ".devcontainer", "devcontainer.json")
	writeFile(t, cfg, "{\n\t\"image\": \""+e.image+"\",\n\t\"runArgs\": [\"--init\",\n\t\t\"--rm\"]\n}\n")
	_, stderr, code := cli(t, e, ws, "up")
	if want := cfg + `:4:3: runArgs[1]: docker run flag "--rm" is not supported`; code != 125 || !strings.Contains(stderr, want) {
		t.Errorf("up: code %d, stderr %q; want 125 and %q", code, stderr, want)
	}
}

// waitFor: a command that creates the container waits for the hooks up to
// updateContentCommand; the rest run on; berth/up waits for them all.
func TestWaitForDefault(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := fixture(t, e, "keys-waitfor")
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	start := time.Now()
	if got := b.runOut("cat", "/tmp/hooks.log"); got != "onCreate\nupdateContent\n" {
		t.Errorf("the first command saw %q, want the hooks up to updateContentCommand only", got)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the first command took %v", d)
	}
	b.mustCall("berth/up", rpc.UpParams{}, nil)
	if got := b.runOut("cat", "/tmp/hooks.log", "/tmp/start.log"); got != "onCreate\nupdateContent\npostCreate\npostStart\n" {
		t.Errorf("after up: %q, want every hook", got)
	}
}

// userEnvProbe's default: every process, hooks included, sees what the
// remote user's login shell sets, under remoteEnv.
func TestUserEnvProbe(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := fixture(t, e, "keys-probe")
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	b.mustCall("berth/up", rpc.UpParams{}, nil)
	if got := b.runOut("sh", "-c", "echo $FROM_LOGIN_PROFILE $FROM_REMOTE_ENV; id -un"); got != "profile-was-read yes\nuser\n" {
		t.Errorf("exec saw %q, want the login profile's variable and remoteEnv", got)
	}
	// Probed once, kept in the container for every berth.
	if got := b.runOut("sh", "-c", "cat /.berth/userenv/user.loginInteractiveShell.json"); !strings.Contains(got, "profile-was-read") {
		t.Errorf("cached probe = %q", got)
	}
	stdout, stderr, code := cli(t, e, ws, "exec", "--", "sh", "-c", "echo $FROM_LOGIN_PROFILE")
	if code != 0 || stdout != "profile-was-read\n" {
		t.Errorf("berth exec: %q, code %d, %s", stdout, code, stderr)
	}
}

// updateRemoteUserUID: a host user who isn't root finds the remote user
// with their own uid and gid, and the files it makes theirs.
func TestUpdateRemoteUserUID(t *testing.T) {
	e := needBackend(t, docker.Name)
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another host user")
	}
	grp, err := user.LookupGroup("docker")
	if err != nil {
		if backendtest.Required(docker.Name) {
			t.Fatalf("Docker is required here (CI=true or BERTH_REQUIRE) but it has no docker group for a non-root user: %v", err)
		}
		t.Skipf("no docker group for a non-root user to reach the engine: %v", err)
	}
	const uid = 4321
	// Everything the other user needs lies in a folder it can reach.
	base, err := os.MkdirTemp("", "berth-uid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	ws, home, bin := filepath.Join(base, "ws"), filepath.Join(base, "home"), filepath.Join(base, "berth")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := e.b.Find(ctx, ws); err == nil {
			_ = e.b.Remove(ctx, inst.ID)
		}
	})
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{"image": "`+e.image+`", "remoteUser": "user"}`)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, berthBin, bin, 0o755)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{ws, home} {
		if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, uid), d).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v %s", err, out)
		}
	}
	as := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "setpriv", append([]string{fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", uid), "--groups=" + grp.Gid,
			"env", "HOME=" + home, "XDG_CONFIG_HOME=" + home + "/.config", "XDG_RUNTIME_DIR=" + home + "/run", bin, "--backend", e.name, "--workspace", ws}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	if _, stderr, err := as("up"); err != nil {
		t.Fatalf("up as uid %d: %v\n%s", uid, err, stderr)
	}
	stdout, stderr, err := as("exec", "--", "sh", "-c", "id -u; id -g; id -un; touch made-inside")
	if want := fmt.Sprintf("%d\n%d\nuser\n", uid, uid); err != nil || stdout != want {
		t.Errorf("exec as the remote user: %q, %v, %s; want %q", stdout, err, stderr, want)
	}
	if fi, err := os.Stat(filepath.Join(ws, "made-inside")); err != nil || fileUID(fi) != uid {
		t.Errorf("a file the remote user made: %v; want it owned by %d on the host", err, uid)
	}
}

func fileUID(fi os.FileInfo) int { return int(fi.Sys().(*syscall.Stat_t).Uid) }

// overrideCommand false: the image's own entrypoint and command are the
// container's main process, as containerUser; berth's agent comes in
// with an exec. appPort publishes on the engine's host.
func TestOverrideCommandFalse(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := fixture(t, e, "keys-override")
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	if !inst.Agent.Enabled {
		t.Errorf("agent: %+v; want it started with an exec", inst.Agent)
	}
	if got := b.runOut("cat", "/tmp/main-ran"); got != "user\n" {
		t.Errorf("the image's command ran as %q, want containerUser", got)
	}
	out, err := exec.Command("docker", "inspect", "--format", `{{json .Config.Cmd}} {{(index (index .HostConfig.PortBindings "8080/tcp") 0).HostIp}}`, inst.Name).CombinedOutput()
	if want := `["id -un > /tmp/main-ran; exec sleep 1000000"] 127.0.0.1` + "\n"; err != nil || string(out) != want {
		t.Errorf("docker inspect = %q, %v; want %q", out, err, want)
	}
}
