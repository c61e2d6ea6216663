package main_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
)

// These tests hold berth to docs/protocol.md, "Docker Compose": the dev
// service of a Compose project is the workspace's instance, brought up by
// the user's Compose CLI, on the fixture testdata/workspaces/compose (a
// JSONC devcontainer.json with an array of compose files, YAML anchors, a
// .env, a db service, a "db:5432" forward and object-form hooks).

// composeCLI is the Compose CLI the tests check with, as berth picks it;
// the test skips without one, or fails where Docker is required.
func composeCLI(t *testing.T) []string {
	t.Helper()
	if v := strings.Fields(os.Getenv("BERTH_COMPOSE")); len(v) > 0 {
		return v
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if backendtest.Required(docker.Name) {
		t.Fatal("Docker is required here (CI=true or BERTH_REQUIRE) but there is no Compose CLI: run testdata/setup/compose.sh")
	}
	t.Skip("no Compose CLI: neither docker compose nor docker-compose")
	return nil
}

// composeWorkspace copies the fixture into a workspace of its own, whose
// name is also its Compose project's (the files sit at its root), and
// takes the project down after the test.
func composeWorkspace(t *testing.T, e engine) (ws, project string) {
	t.Helper()
	var rnd [4]byte
	rand.Read(rnd[:])
	project = "berth-compose-" + hex.EncodeToString(rnd[:])
	parent, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ws = filepath.Join(parent, project)
	src := filepath.Join("..", "..", "testdata", "workspaces", "compose")
	if err := os.CopyFS(ws, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := e.b.Find(ctx, ws); err == nil {
			if d, ok := e.b.(backends.Downer); ok {
				_ = d.Down(ctx, inst.ID, true)
			}
		}
		removeProject(ctx, project)
		if cache, err := os.UserCacheDir(); err == nil {
			os.RemoveAll(filepath.Join(cache, "berth", "compose", session.InstanceName(ws)))
		}
	})
	return ws, project
}

// removeProject removes whatever is left of a project, through the engine.
func removeProject(ctx context.Context, project string) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	_ = cli.NetworkRemove(ctx, project+"_default")
	_ = cli.NetworkRemove(ctx, project+"-default")
}

// sweepComposeProjects removes what earlier runs left of the tests'
// Compose projects: those whose project directory is gone.
func sweepComposeProjects(ctx context.Context) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project"))})
	if err != nil {
		return
	}
	gone := map[string]bool{}
	for _, c := range list {
		p := c.Labels["com.docker.compose.project"]
		if !strings.HasPrefix(p, "berth-compose-") {
			continue
		}
		if _, err := os.Stat(c.Labels["com.docker.compose.project.working_dir"]); err == nil {
			continue
		}
		gone[p] = true
	}
	for p := range gone {
		removeProject(ctx, p)
	}
}

// projectStates maps each service of a project to its container's state.
func projectStates(t *testing.T, project string) map[string]string {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range list {
		out[c.Labels[backends.LabelComposeService]] = c.State
	}
	return out
}

// The whole life of a Compose workspace, as an editor lives it.
func TestComposeEndToEnd(t *testing.T) {
	e := needBackend(t, docker.Name)
	cc := composeCLI(t)
	ws, project := composeWorkspace(t, e)
	writeFile(t, filepath.Join(ws, "src", "hello.txt"), "from the host\n")
	trustWorkspace(t, ws)

	b := startBerth(t, e)
	b.initialize(ws, nil)
	var up rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	wd := "/workspaces/" + project
	if !up.Created || up.Workdir != wd || up.Compose == nil || *up.Compose != (rpc.ComposeInfo{Project: project, Service: "app"}) {
		t.Errorf("up = created %v, workdir %q, compose %+v; want created, %s, {%s app}", up.Created, up.Workdir, up.Compose, wd, project)
	}
	if len(up.Hooks) != 2 || up.Hooks[0].Code != 0 || up.Hooks[1].Code != 0 {
		t.Errorf("hooks = %+v, want both postCreateCommand entries to succeed", up.Hooks)
	}
	if got := projectStates(t, project); got["app"] != "running" || got["db"] != "running" || got["worker"] != "" {
		t.Errorf("services = %v, want app and db running and no worker (profile extra)", got)
	}

	// The workspace at workspaceFolder, the env of every layer, the hooks.
	var run rpc.RunResult
	noMap := false
	b.mustCall("berth/run", rpc.ExecParams{MapPaths: &noMap, Argv: []string{"sh", "-c",
		"pwd; cat src/hello.txt; echo $SHOP_ENV $FROM_DEV_FILE $DATABASE_URL; cat /tmp/created /tmp/db"}}, &run)
	if want := wd + "\nfrom the host\ndev yes tcp://db:5432\ncreated\nping\n"; run.Stdout != want {
		t.Errorf("run in the dev service = %q (stderr %q), want %q", run.Stdout, run.Stderr, want)
	}
	// Paths map both ways.
	var paths rpc.PathsResult
	b.mustCall("berth/toContainer", rpc.PathsParams{Paths: []string{filepath.Join(ws, "src", "hello.txt")}}, &paths)
	if len(paths.Paths) != 1 || paths.Paths[0] == nil || *paths.Paths[0] == "" || *paths.Paths[0] != wd+"/src/hello.txt" {
		t.Errorf("toContainer = %v, want %s/src/hello.txt", derefAll(paths.Paths), wd)
	}
	// The db is reachable by name, and through the "db:5432" forward.
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "echo by-name | nc -w 1 db 5432"}}, &run)
	if run.Stdout != "by-name\n" {
		t.Errorf("db by name = %q (stderr %q)", run.Stdout, run.Stderr)
	}
	var tunnels []rpc.TunnelInfo
	b.mustCall("berth/tunnels", struct{}{}, &tunnels)
	if len(tunnels) != 1 || tunnels[0].ContainerHost != "db" || tunnels[0].ContainerPort != 5432 {
		t.Fatalf("tunnels = %+v, want one to db:5432", tunnels)
	}
	if got := echoThrough(t, tunnels[0].HostPort, "forwarded"); got != "forwarded" {
		t.Errorf("through the db:5432 forward: %q", got)
	}

	// The user's own Compose CLI sees the same project.
	ps := exec.Command(cc[0], append(cc[1:], "-p", project, "ps")...)
	ps.Dir = ws
	out, err := ps.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "app") || !strings.Contains(string(out), "db") {
		t.Errorf("%v -p %s ps: %v\n%s", cc, project, err, out)
	}

	// berth down stops every service; up brings them all back.
	b.mustCall("berth/down", rpc.DownParams{}, nil)
	if got := projectStates(t, project); got["app"] != "exited" || got["db"] != "exited" {
		t.Errorf("after down: %v, want every service stopped", got)
	}
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	if up.Created || up.State != backends.StateRunning {
		t.Errorf("up after down: created %v, state %s; want the same container running", up.Created, up.State)
	}
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", "echo again | nc -w 1 db 5432"}}, &run)
	if run.Stdout != "again\n" {
		t.Errorf("db after up again = %q (stderr %q)", run.Stdout, run.Stderr)
	}

	// A service stopped behind berth's back comes back with the next up.
	if out, err := exec.Command("docker", "stop", "-t", "0", dbContainer(t, project)).CombinedOutput(); err != nil {
		t.Fatalf("docker stop db: %v\n%s", err, out)
	}
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	if got := projectStates(t, project); got["db"] != "running" {
		t.Errorf("db after up = %q, want running", got["db"])
	}

	// Recreate recreates the dev service only.
	db := dbContainer(t, project)
	old := up.ID
	b.mustCall("berth/up", rpc.UpParams{Recreate: true}, &up)
	if !up.Created || up.ID == old || dbContainer(t, project) != db {
		t.Errorf("recreate: created %v, id changed %v, db kept %v; want a new dev service beside the same db", up.Created, up.ID != old, dbContainer(t, project) == db)
	}

	// shutdownAction stopCompose: the last editor leaving stops them all.
	b.mustCall("shutdown", nil, nil)
	b.client.Notify(context.Background(), "exit", nil)
	<-b.waited
	if got := projectStates(t, project); got["app"] != "exited" || got["db"] != "exited" {
		t.Errorf("after the last editor left: %v, want every service stopped (stopCompose)", got)
	}

	// berth down --rm removes the project.
	if _, stderr, code := cli(t, e, ws, "down", "--rm"); code != 0 {
		t.Fatalf("berth down --rm: %d %s", code, stderr)
	}
	if got := projectStates(t, project); len(got) != 0 {
		t.Errorf("after down --rm: %v, want no container", got)
	}
	if cache, err := os.UserCacheDir(); err == nil {
		if _, err := os.Stat(filepath.Join(cache, "berth", "compose", session.InstanceName(ws), "docker-compose.berth.yml")); err == nil {
			t.Error("berth's override file outlived the project")
		}
	}
}

// dbContainer is the id of a project's db container.
func dbContainer(t *testing.T, project string) string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.project="+project, "--filter", "label=com.docker.compose.service=db").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// echoThrough sends a line to an echo server at host port and returns
// the answer.
func echoThrough(t *testing.T, port int, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	return strings.TrimSpace(got)
}

// berth killed by SIGKILL leaves no process in the dev service and no
// Compose run behind; the project stays as shutdownAction found it.
func TestComposeKilledBerth(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	ws, project := composeWorkspace(t, e)
	trustWorkspace(t, ws)

	b := startBerth(t, e)
	b.initialize(ws, nil)
	var up rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &up)
	var res rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &res)
	time.Sleep(300 * time.Millisecond)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.waited
	backendtest.AssertNoProcess(t, e.b, up.ID, "sleep 1000")
	if got := projectStates(t, project); got["app"] != "running" || got["db"] != "running" {
		t.Errorf("after kill -9: %v; want the project as it was (shutdownAction acts on a clean exit only)", got)
	}

	// A Compose run dies with the berth that started it.
	dir := t.TempDir()
	fake := filepath.Join(dir, "compose")
	pidFile := filepath.Join(dir, "pid")
	writeFile(t, fake, "#!/bin/sh\necho $$ > "+pidFile+"\nexec sleep 1000\n")
	if err := os.Chmod(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli(t, e, ws, "down", "--rm"); code != 0 {
		t.Fatalf("berth down --rm: %d %s", code, stderr)
	}
	cmd := exec.Command(berthBin, "--backend", "docker", "--workspace", ws, "up")
	cmd.Env = append(os.Environ(), "BERTH_COMPOSE="+fake)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if data, err := os.ReadFile(pidFile); err == nil {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
				break
			}
		}
	}
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("berth never ran the Compose CLI")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the Compose run (pid %d) outlived the berth that was killed", pid)
		}
	}
	if _, err := e.b.Find(context.Background(), ws); err == nil {
		t.Error("an instance is labelled as the workspace's after the interrupted up")
	}
}

// Two berth processes bringing one Compose workspace up at once end with
// one dev service, which both report. Without runServices every service
// starts, and COMPOSE_PROFILES in berth's environment reaches Compose, as
// in the user's shell.
func TestComposeConcurrentUp(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	ws, project := composeWorkspace(t, e)
	dc := filepath.Join(ws, ".devcontainer", "devcontainer.json")
	data, err := os.ReadFile(dc)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dc, strings.Replace(string(data), `"runServices": ["app", "db"],`, "", 1))
	trustWorkspace(t, ws)
	t.Setenv("COMPOSE_PROFILES", "extra")
	type result struct {
		out, stderr string
		code        int
	}
	results := make(chan result, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, stderr, code := cli(t, e, ws, "up")
			results <- result{out, stderr, code}
		}()
	}
	wg.Wait()
	close(results)
	var ids []string
	for r := range results {
		if r.code != 0 {
			t.Fatalf("berth up: %d\n%s", r.code, r.stderr)
		}
		var inst rpc.Instance
		if err := json.Unmarshal([]byte(r.out), &inst); err != nil {
			t.Fatalf("berth up printed %q: %v", r.out, err)
		}
		ids = append(ids, inst.ID)
	}
	if ids[0] != ids[1] {
		t.Errorf("two ups made two instances: %v", ids)
	}
	if got := projectStates(t, project); len(got) != 3 || got["app"] != "running" || got["db"] != "running" || got["worker"] != "running" {
		t.Errorf("services = %v, want app, db and the extra profile's worker running, once each", got)
	}
}

// A dev service built from a Dockerfile is built anew by recreate.
func TestComposeBuildRecreate(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	ws, project := composeWorkspace(t, e)
	image := "berth-test/compose-build:" + project
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })
	writeFile(t, filepath.Join(ws, ".devcontainer", "Dockerfile"), "FROM berth-test/busybox:1\nRUN echo v1 > /version\n")
	writeFile(t, filepath.Join(ws, ".devcontainer", "docker-compose.dev.yml"), `services:
  app:
    image: `+image+`
    build:
      context: .devcontainer
      dockerfile: Dockerfile
`)
	trustWorkspace(t, ws)
	version := func() string {
		t.Helper()
		out, stderr, code := cli(t, e, ws, "exec", "--", "cat", "/version")
		if code != 0 {
			t.Fatalf("berth exec: %d %s", code, stderr)
		}
		return strings.TrimSpace(out)
	}
	if got := version(); got != "v1" {
		t.Errorf("/version = %q, want v1", got)
	}
	writeFile(t, filepath.Join(ws, ".devcontainer", "Dockerfile"), "FROM berth-test/busybox:1\nRUN echo v2 > /version\n")
	trustWorkspace(t, ws)
	if _, stderr, code := cli(t, e, ws, "up", "--recreate"); code != 0 {
		t.Fatalf("berth up --recreate: %d %s", code, stderr)
	}
	if got := version(); got != "v2" {
		t.Errorf("/version after recreate = %q, want v2", got)
	}
}

// Bad input: every error names what is wrong, and nothing half-made is
// left labelled as the workspace's instance.
func TestComposeErrors(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	tests := []struct {
		name     string
		edit     func(t *testing.T, ws string)
		env      []string
		wantCode int
		want     []string
	}{
		{
			name: "broken YAML",
			edit: func(t *testing.T, ws string) {
				writeFile(t, filepath.Join(ws, ".devcontainer", "docker-compose.dev.yml"), "services:\n  app:\n    volumes: [\n")
			},
			want: []string{"docker-compose.dev.yml:3:", "did not find expected node content"},
		},
		{
			name: "a file Compose rejects",
			edit: func(t *testing.T, ws string) {
				writeFile(t, filepath.Join(ws, ".devcontainer", "docker-compose.dev.yml"), "services:\n  app:\n    restart: [1, 2]\n")
			},
			want: []string{"compose config", "restart"},
		},
		{
			name: "a dev service that can't start",
			edit: func(t *testing.T, ws string) {
				writeFile(t, filepath.Join(ws, ".env"), "BASE_IMAGE=berth-test/no-such-image:1\nDB_PORT=5432\n")
			},
			wantCode: 125,
			want:     []string{"compose up", "no-such-image"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, _ := composeWorkspace(t, e)
			tt.edit(t, ws)
			if _, err := devcontainer.Discover(ws, "", "", os.LookupEnv); err == nil {
				trustWorkspace(t, ws)
			}
			_, stderr, code := cli(t, e, ws, "up")
			if code == 0 {
				t.Fatalf("berth up succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := e.b.Find(context.Background(), ws); err == nil {
				t.Error("an instance is labelled as the workspace's after the failure")
			}
		})
	}
}

// On a remote engine, a service's bind mount is an error naming it: the
// engine can't see this host's files.
func TestComposeRemoteBind(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	ws, _ := composeWorkspace(t, e)
	trustWorkspace(t, ws)
	cmd := exec.Command(berthBin, "--backend", "docker", "--workspace", ws, "up")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+remoteEngine(t))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("up on a remote engine with a bind mount succeeded:\n%s", out)
	}
	for _, w := range []string{`service "app"`, `volume "` + filepath.Dir(ws) + `:/workspaces`, "remote"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// remoteEngine is a DOCKER_HOST that makes the local engine look remote: a
// TCP front for its socket, closed after the test.
func remoteEngine(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// On a remote engine a Compose workspace without host binds comes up, with
// the workspace copied in and kept in sync.
func TestComposeRemoteSync(t *testing.T) {
	e := needBackend(t, docker.Name)
	composeCLI(t)
	ws, project := composeWorkspace(t, e)
	writeFile(t, filepath.Join(ws, ".devcontainer", "docker-compose.dev.yml"), "services:\n  app:\n    environment:\n      FROM_DEV_FILE: remote\n")
	writeFile(t, filepath.Join(ws, "src", "hello.txt"), "copied in\n")
	trustWorkspace(t, ws)
	cmd := exec.Command(berthBin, "--backend", "docker", "--workspace", ws, "exec", "--", "sh", "-c",
		"cat /workspaces/"+project+"/src/hello.txt; echo $FROM_DEV_FILE; echo ping | nc -w 1 db 5432")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+remoteEngine(t))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copied in\nremote\nping\n") {
		t.Errorf("exec on a remote engine: %v\n%s", err, out)
	}
}

// Incus runs no Compose project, and says so.
func TestComposeOnIncus(t *testing.T) {
	e := needBackend(t, incus.Name)
	ws, _ := composeWorkspace(t, e)
	trustWorkspace(t, ws)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	err := b.call("berth/up", rpc.UpParams{}, nil)
	if code(err) != rpc.CodeNotSupported || !strings.Contains(err.Error(), "need the docker backend") {
		t.Errorf("up on Incus: %v, want code %d saying Compose needs the docker backend", err, rpc.CodeNotSupported)
	}
}
