package rpc_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/rpc"
)

// The agent runs in-process: the in-memory backend's command table gets a
// command at the agent's container path that serves agent.Serve on its
// stdio. Its tunnels then dial and listen on the host's loopback. These
// tests start no process through it: it would run on the host.

// withAgent gives the env's manager an agent that the backend serves
// in-process.
func (e *env) withAgent() {
	e.t.Helper()
	content := []byte("berth agent for " + e.t.Name())
	p := filepath.Join(e.t.TempDir(), "berth-agent")
	if err := os.WriteFile(p, content, 0o755); err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	bin := &agent.Binary{Path: p, Hash: hex.EncodeToString(sum[:]), GOOS: "linux", GOARCH: runtime.GOARCH}
	e.mem.Handle(bin.ContainerPath(), func(ctx context.Context, p *memory.Proc) int {
		_ = agent.Serve(ctx, stdio{p}, slog.New(slog.DiscardHandler), bin.Hash)
		return 0
	})
	e.mgr.SetAgents(agent.SetOf(bin), "")
}

type stdio struct{ p *memory.Proc }

func (s stdio) Read(b []byte) (int, error)  { return s.p.Stdin.Read(b) }
func (s stdio) Write(b []byte) (int, error) { return s.p.Stdout.Write(b) }
func (stdio) Close() error                  { return nil }

// hostEcho listens on the host's loopback and echoes lines back.
func hostEcho(t *testing.T) int {
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
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func echoThrough(t *testing.T, port int, line string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, line)
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("through port %d: %v", port, err)
	}
	return strings.TrimSpace(got)
}

func TestTunnels(t *testing.T) {
	e := newEnv(t, envOptions{Sync: true})
	e.withAgent()
	c := e.dial()
	echo := hostEcho(t)

	var up rpc.Instance
	c.mustCall("berth/up", nil, &up)
	if !up.Agent.Enabled {
		t.Errorf("agent %+v", up.Agent)
	}
	var fwd rpc.ForwardResult
	c.mustCall("berth/forward", rpc.ForwardParams{ContainerPort: echo}, &fwd)
	if got := echoThrough(t, fwd.HostPort, "forward"); got != "forward" {
		t.Errorf("through the forward tunnel: %q", got)
	}
	var rev rpc.ReverseResult
	c.mustCall("berth/reverse", rpc.ReverseParams{HostPort: echo}, &rev)
	if got := echoThrough(t, rev.ContainerPort, "reverse"); got != "reverse" {
		t.Errorf("through the reverse tunnel: %q", got)
	}
	var list []rpc.TunnelInfo
	c.mustCall("berth/tunnels", rpc.WorkspaceParams{Workspace: e.ws}, &list)
	want := []rpc.TunnelInfo{
		{TunnelID: fwd.TunnelID, Workspace: e.ws, Direction: "forward", Host: "127.0.0.1", HostPort: fwd.HostPort, ContainerHost: "127.0.0.1", ContainerPort: echo},
		{TunnelID: rev.TunnelID, Workspace: e.ws, Direction: "reverse", Host: "127.0.0.1", HostPort: echo, ContainerHost: "127.0.0.1", ContainerPort: rev.ContainerPort},
	}
	// Active counts connections still being torn down: not compared.
	if diff := cmp.Diff(want, list, cmpopts.IgnoreFields(rpc.TunnelInfo{}, "Active")); diff != "" {
		t.Errorf("berth/tunnels (-want +got):\n%s", diff)
	}

	// Ports that are taken: -32023.
	if err := c.call("berth/forward", rpc.ForwardParams{ContainerPort: echo, HostPort: fwd.HostPort}, nil); code(err) != rpc.CodeBindFailed {
		t.Errorf("forward on a taken host port: %v, want code %d", err, rpc.CodeBindFailed)
	}
	if err := c.call("berth/reverse", rpc.ReverseParams{HostPort: echo, ContainerPort: rev.ContainerPort}, nil); code(err) != rpc.CodeBindFailed {
		t.Errorf("reverse on a taken container port: %v, want code %d", err, rpc.CodeBindFailed)
	}

	c.mustCall("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: fwd.TunnelID}, nil)
	if err := c.call("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: fwd.TunnelID}, nil); code(err) != rpc.CodeNoSuchTunnel {
		t.Errorf("closing it again: %v", err)
	}
	c.mustCall("berth/tunnels", nil, &list)
	if len(list) != 1 || list[0].TunnelID != rev.TunnelID {
		t.Errorf("tunnels after the close: %+v", list)
	}
}

// berth/debug checks its request once the agent is there: a custom
// adapter without a command is the client's mistake, and the reverse
// tunnel opened for it is closed again.
func TestDebugBadRequest(t *testing.T) {
	e := newEnv(t, envOptions{Sync: true})
	e.withAgent()
	c := e.dial()
	for _, p := range []rpc.DebugParams{
		{Adapter: "custom", Port: 5678},
		{Adapter: "custom", ConnectBack: &rpc.ConnectBack{HostPort: hostEcho(t)}},
		{Adapter: "debugpy", Program: filepath.Join(e.ws, "app.py"), Module: "app", Port: 5678},
		{Adapter: "debugpy", Test: true, Program: filepath.Join(e.ws, "app.py"), Port: 5678},
		{Adapter: "delve", Test: true, Tests: []string{"ex.com/a.TestA", "ex.com/b.TestB"}, Port: 5678},
		{Adapter: "delve", Test: true, Port: 5678},
	} {
		if err := c.call("berth/debug", p, nil); code(err) != rpc.CodeInvalidParams {
			t.Errorf("berth/debug %+v: %v, want code %d", p, err, rpc.CodeInvalidParams)
		}
	}
	var list []rpc.TunnelInfo
	c.mustCall("berth/tunnels", nil, &list)
	if len(list) != 0 {
		t.Errorf("tunnels left behind: %+v", list)
	}
}
