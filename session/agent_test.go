package session

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends/memory"
)

// The agent runs in-process here: the in-memory backend's command table
// gets a command at the agent's container path that serves agent.Serve on
// its stdio. What the agent does for tunnels (dial, listen) then happens
// on the host's loopback, which is all a tunnel test needs; processes it
// would start would be the host's, so these tests start none through it
// but on a terminal in /tmp.

// fakeAgent returns an agent build and installs its in-process server in
// b's command table, unless serve is false (the agent then fails to
// start).
func fakeAgent(t *testing.T, b *memory.Backend, serve bool) *agent.Binary {
	t.Helper()
	return fakeAgentFor(t, b, serve, runtime.GOARCH)
}

// fakeAgentFor is fakeAgent for a linux/goarch build.
func fakeAgentFor(t *testing.T, b *memory.Backend, serve bool, goarch string) *agent.Binary {
	t.Helper()
	content := []byte("berth agent for " + t.Name() + " on " + goarch)
	p := filepath.Join(t.TempDir(), "berth-agent")
	if err := os.WriteFile(p, content, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	bin := &agent.Binary{Path: p, Hash: hex.EncodeToString(sum[:]), GOOS: "linux", GOARCH: goarch}
	if serve {
		b.Handle(bin.ContainerPath(), func(ctx context.Context, p *memory.Proc) int {
			if len(p.Argv) < 2 || p.Argv[1] != "serve" {
				return 2
			}
			_ = agent.Serve(ctx, procConn{p}, slog.New(slog.DiscardHandler), bin.Hash)
			return 0
		})
	}
	return bin
}

// procConn is a command's stdio as the agent's connection.
type procConn struct{ p *memory.Proc }

func (c procConn) Read(b []byte) (int, error)  { return c.p.Stdin.Read(b) }
func (c procConn) Write(b []byte) (int, error) { return c.p.Stdout.Write(b) }
func (procConn) Close() error                  { return nil }

// echoServer listens on the host's loopback and echoes each line with a
// prefix, until the test ends.
func echoServer(t *testing.T, prefix string) int {
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, prefix+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// roundTrip sends a line through a connection to port and returns the
// answer.
func roundTrip(t *testing.T, port int, line string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("through port %d: %v", port, err)
	}
	return strings.TrimSuffix(got, "\n"), c
}

// usedPort returns a host loopback port that is taken until the test ends.
func usedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestForwardTunnel(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	target := echoServer(t, "container says ")

	info, err := c.Forward(ctx, e.ws, "", "127.0.0.1", target, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "t1" || info.Direction != Forward || info.ContainerPort != target || info.HostPort == 0 {
		t.Errorf("Forward: %+v", info)
	}
	got, conn := roundTrip(t, info.HostPort, "hello")
	if got != "container says hello" {
		t.Errorf("through the tunnel: %q", got)
	}
	if ts := c.Tunnels(e.ws); len(ts) != 1 || ts[0].Active != 1 {
		t.Errorf("Tunnels: %+v", ts)
	}
	if ts := c.Tunnels("/elsewhere"); len(ts) != 0 {
		t.Errorf("Tunnels of another workspace: %+v", ts)
	}

	// The host port is taken now: asking for it again fails to bind.
	if _, err := c.Forward(ctx, e.ws, "", "127.0.0.1", target, info.HostPort); !errors.Is(err, ErrBind) {
		t.Errorf("Forward on a taken port: %v", err)
	}
	// Nothing listens in the container: the host connection is closed.
	dead, err := c.Forward(ctx, e.ws, "", "127.0.0.1", usedPortClosed(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", dead.HostPort))
	if err != nil {
		t.Fatal(err)
	}
	dc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := dc.Read(make([]byte, 1)); err == nil {
		t.Errorf("read %d bytes from a tunnel to nothing", n)
	}
	dc.Close()

	// Closing the tunnel closes its connections.
	if err := c.CloseTunnel(info.ID); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("the connection outlived its tunnel")
	}
	conn.Close()
	if err := c.CloseTunnel(info.ID); !errors.Is(err, ErrNoSuchTunnel) {
		t.Errorf("closing it again: %v", err)
	}
	r, err := c.Ready(ctx, e.ws, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.NeedAgent(ctx, r); err != nil {
		t.Errorf("NeedAgent with the agent: %v", err)
	}
}

// usedPortClosed returns a port nothing listens on.
func usedPortClosed(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestReverseTunnel(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	host := echoServer(t, "host says ")

	info, err := c.Reverse(ctx, e.ws, "", host, 0)
	if err != nil {
		t.Fatal(err)
	}
	if info.Direction != Reverse || info.HostPort != host || info.ContainerPort == 0 || info.ContainerHost != "127.0.0.1" {
		t.Errorf("Reverse: %+v", info)
	}
	// The agent listens on the "container's" loopback, which is the host's
	// here.
	got, conn := roundTrip(t, info.ContainerPort, "hi")
	if got != "host says hi" {
		t.Errorf("through the tunnel: %q", got)
	}
	conn.Close()

	if _, err := c.Reverse(ctx, e.ws, "", host, usedPort(t)); !errors.Is(err, ErrBind) {
		t.Errorf("Reverse on a taken container port: %v", err)
	}
	// A tunnel to a host port nothing listens on drops its connections.
	dead, err := c.Reverse(ctx, e.ws, "", usedPortClosed(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", dead.ContainerPort))
	if err != nil {
		t.Fatal(err)
	}
	dc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := dc.Read(make([]byte, 1)); err == nil {
		t.Errorf("read from a tunnel to nothing")
	}
	dc.Close()
	if n := len(c.Tunnels("")); n != 2 {
		t.Errorf("%d tunnels, want 2", n)
	}
	// Close closes them all.
	c.Close(ctx)
	if n := len(c.Tunnels("")); n != 0 {
		t.Errorf("%d tunnels after Close", n)
	}
	if _, err := c.Reverse(ctx, e.ws, "", host, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Reverse after Close: %v", err)
	}
}

// A tunnel tied to a process closes when it exits.
func TestTunnelClosesOnExit(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	info, err := c.Forward(ctx, e.ws, "", "127.0.0.1", echoServer(t, ""), 0)
	if err != nil {
		t.Fatal(err)
	}
	// A terminal runs through the agent, which runs it on the host here.
	p, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "30"}, Cwd: "/tmp", TTY: true, Cols: 80, Rows: 24})
	if err != nil {
		t.Skipf("no terminal through the in-process agent: %v", err)
	}
	p.Release()
	if err := c.CloseTunnelOnExit(p, info.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, p.ID(), 9); err != nil {
		t.Fatal(err)
	}
	sink.waitExit(t, p.ID())
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Tunnels("")) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tunnels after the exit: %+v", c.Tunnels(""))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The agent's status says which build runs, or why processes use plain
// exec; the choice is made once per start of the instance, for the
// instance's platform.
func TestAgentStatus(t *testing.T) {
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	onOther := memory.Options{Images: map[string]string{testImage: "linux/" + otherArch}}
	tests := []struct {
		name   string
		opts   memEnvOptions
		serve  bool
		both   bool // berth has a build for otherArch, too
		want   AgentStatus
		build  string // GOARCH of the build status names; "" for none
		prefix bool   // want.Reason is a prefix
	}{
		{name: "running", opts: memEnvOptions{Sync: true}, serve: true, want: AgentStatus{Enabled: true, Connected: true}, build: runtime.GOARCH},
		{name: "failed to start", opts: memEnvOptions{Sync: true}, want: AgentStatus{Reason: "agent failed to start, using plain exec: "}, build: runtime.GOARCH, prefix: true},
		{name: "another platform", opts: memEnvOptions{Sync: true, Memory: onOther}, serve: true,
			want: AgentStatus{Reason: fmt.Sprintf("no agent build for this platform: the container is linux/%s but berth has agents for linux/%s only; using plain exec", otherArch, runtime.GOARCH)}},
		{name: "another platform, with its build", opts: memEnvOptions{Sync: true, Memory: onOther}, serve: true, both: true,
			want: AgentStatus{Enabled: true, Connected: true}, build: otherArch},
		{name: "disabled by the config", opts: memEnvOptions{Sync: true, Files: dcFiles(`"customizations": {"berth": {"agent": false}}`)}, serve: true,
			want: AgentStatus{Reason: "agent disabled by customizations.berth.agent in "}, prefix: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, tt.opts)
			builds := agent.SetOf(fakeAgentFor(t, e.mem, tt.serve, runtime.GOARCH))
			if tt.both {
				other := fakeAgentFor(t, e.mem, tt.serve, otherArch)
				builds[other.Platform()] = other
			}
			e.m.SetAgents(builds, "")
			if tt.build != "" {
				tt.want.Build = builds["linux/"+tt.build]
			}
			c, _ := e.client(nil, false)
			if tt.want.Enabled {
				// The agent would run a process on the host: start it alone.
				r, err := c.Ready(testCtx(t), e.ws, "")
				if err != nil {
					t.Fatal(err)
				}
				if err := c.NeedAgent(testCtx(t), r); err != nil {
					t.Fatal(err)
				}
			} else if res := e.run(c, "echo", "ok"); res.Stdout != "ok\n" {
				t.Errorf("plain exec said %q", res.Stdout)
			}
			check := func(what string, got AgentStatus) {
				t.Helper()
				match := got == tt.want
				if tt.prefix {
					match = got.Enabled == tt.want.Enabled && strings.HasPrefix(got.Reason, tt.want.Reason) && got.Build == tt.want.Build
				}
				if !match {
					t.Errorf("%s: agent %+v, want %+v", what, got, tt.want)
				}
			}
			inst, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
			if err != nil {
				t.Fatal(err)
			}
			check("Status", inst.Agent)
			list, err := e.m.List(testCtx(t))
			if err != nil || len(list) != 1 {
				t.Fatalf("List: %v, %v", list, err)
			}
			check("List", list[0].Agent)
			up, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
			if err != nil {
				t.Fatal(err)
			}
			check("Up", up.Agent)

			// A failed agent isn't retried at once.
			execs := e.mem.Calls("Exec")
			if !tt.want.Enabled {
				e.run(c, "true")
				if n := e.mem.Calls("Exec") - execs; n != 1 {
					t.Errorf("%d execs for one process: the agent was tried again", n)
				}
			}
		})
	}
}

// Before berth starts an agent, status asks the engine for the platform to
// name the build it would run; a list, which asks nothing, names none.
func TestAgentStatusBeforeStart(t *testing.T) {
	tests := []struct {
		name     string
		platform string
		want     string // GOARCH of the build named; "" for none
		reason   string
	}{
		{"amd64", "linux/amd64", "amd64", ""},
		{"arm64", "linux/arm64", "arm64", ""},
		{"riscv64", "linux/riscv64", "", "no agent build for this platform: the container is linux/riscv64 but berth has agents for linux/amd64, linux/arm64 only; using plain exec"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Sync: true, Memory: memory.Options{Images: map[string]string{testImage: tt.platform}}})
			builds := agent.SetOf(fakeAgentFor(t, e.mem, false, "amd64"), fakeAgentFor(t, e.mem, false, "arm64"))
			e.m.SetAgents(builds, "")
			// Up starts no agent: nothing needs one yet.
			c, _ := e.client(nil, false)
			if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
				t.Fatal(err)
			}
			inst, err := e.m.Workspace(e.ws).Status(testCtx(t), "", "")
			if err != nil || inst == nil {
				t.Fatalf("Status: %v, %v", inst, err)
			}
			want := AgentStatus{Enabled: tt.want != "", Reason: tt.reason}
			if tt.want != "" {
				want.Build = builds["linux/"+tt.want]
			}
			if inst.Agent != want {
				t.Errorf("Status: agent %+v, want %+v", inst.Agent, want)
			}
			list, err := e.m.List(testCtx(t))
			if err != nil || len(list) != 1 {
				t.Fatalf("List: %v, %v", list, err)
			}
			if want := (AgentStatus{Enabled: true}); list[0].Agent != want {
				t.Errorf("List: agent %+v, want %+v", list[0].Agent, want)
			}
		})
	}
}

// A new start of the instance needs a new agent; a stop lets go of it.
func TestAgentPerStart(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true, Clock: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	target := echoServer(t, "")
	if _, err := c.Forward(ctx, e.ws, "", "127.0.0.1", target, 0); err != nil {
		t.Fatal(err)
	}
	agents := func() int {
		procs, _ := e.mem.Processes(e.ws)
		n := 0
		for _, p := range procs {
			if strings.HasSuffix(p, " serve") {
				n++
			}
		}
		return n
	}
	if n := agents(); n != 1 {
		t.Fatalf("%d agents running", n)
	}
	e.waitWatchers()
	if err := e.mem.StopExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	sink.waitInstance(t, "stopped/"+ReasonStoppedOutside)
	e.startExternally()
	sink.waitInstance(t, "running/"+ReasonStartedOutside)
	info, err := c.Forward(ctx, e.ws, "", "127.0.0.1", target, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, conn := roundTrip(t, info.HostPort, "again"); got != "again" {
		t.Errorf("through the new agent: %q", got)
	} else {
		conn.Close()
	}
	if n := agents(); n != 1 {
		t.Errorf("%d agents after the restart, want 1", n)
	}
	// The engine shutting down lets go of the agent at once.
	e.mem.AnnounceShutdown()
	sink.waitInstance(t, "running/"+ReasonDaemonShutdown)
	deadline := time.Now().Add(10 * time.Second)
	for agents() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent outlived the engine's shutdown notice")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A terminal resized through the agent, then ended.
func TestResizeThroughAgent(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, sink := e.client(nil, false)
	ctx := testCtx(t)
	p, err := c.Exec(ctx, ExecOptions{Workspace: e.ws, Argv: []string{"sleep", "30"}, Cwd: "/tmp", TTY: true, Cols: 80, Rows: 24})
	if err != nil {
		t.Skipf("no terminal through the in-process agent: %v", err)
	}
	p.Release()
	if err := c.Resize(ctx, p.ID(), 100, 40); err != nil {
		t.Errorf("Resize: %v", err)
	}
	if err := c.Signal(ctx, p.ID(), 9); err != nil {
		t.Fatal(err)
	}
	if ex := sink.waitExit(t, p.ID()); ex.Status.Code != 137 {
		t.Errorf("exit %+v", ex)
	}
}

// A forward tunnel's host end can be a unix socket only the user reaches;
// closing the tunnel, or the client, removes it.
func TestForwardSocket(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Sync: true})
	e.m.SetAgents(agent.SetOf(fakeAgent(t, e.mem, true)), "")
	c, _ := e.client(nil, false)
	ctx := testCtx(t)
	target := echoServer(t, "container says ")
	sock := filepath.Join(t.TempDir(), "dap.sock")

	info, err := c.ForwardSocket(ctx, e.ws, "", "127.0.0.1", target, sock)
	if err != nil {
		t.Fatal(err)
	}
	if info.HostSocket != sock || info.HostPort != 0 || info.Direction != Forward || info.ContainerPort != target {
		t.Errorf("ForwardSocket: %+v", info)
	}
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v, %v", fi, err)
	}
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "hello\n")
	if got, err := bufio.NewReader(conn).ReadString('\n'); got != "container says hello\n" {
		t.Errorf("through the socket: %q, %v", got, err)
	}
	if ts := c.Tunnels(e.ws); len(ts) != 1 || ts[0].HostSocket != sock || ts[0].Active != 1 {
		t.Errorf("Tunnels: %+v", ts)
	}
	// Live: a second tunnel can't take the path.
	if _, err := c.ForwardSocket(ctx, e.ws, "", "127.0.0.1", target, sock); !errors.Is(err, ErrBind) {
		t.Errorf("a second tunnel on the same socket: %v", err)
	}
	if err := c.CloseTunnel(info.ID); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Errorf("the connection outlived its tunnel")
	}
	conn.Close()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after closeTunnel: %v", err)
	}

	// The client's end removes it too.
	if _, err := c.ForwardSocket(ctx, e.ws, "", "127.0.0.1", target, sock); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the client closed: %v", err)
	}
}
