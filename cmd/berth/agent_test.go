package main_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// scratchImage returns an image with nothing in it at all, built once.
func scratchImage(t *testing.T) string {
	t.Helper()
	const ref = "berth-test/scratch:1"
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref
	}
	var empty bytes.Buffer
	tw := tar.NewWriter(&empty)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777})
	tw.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &empty, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	return ref
}

// copyEcho puts the echo server fixture at /tmp/echoserver in the instance.
func copyEcho(t *testing.T, d backends.Backend, id string) {
	t.Helper()
	data, err := os.ReadFile(echoBin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "echoserver", Mode: 0o755, Size: int64(len(data))})
	tw.Write(data)
	tw.Close()
	if err := d.CopyTo(context.Background(), id, "/tmp", &buf); err != nil {
		t.Fatal(err)
	}
}

// The agent runs an image that has nothing but itself. Only Docker runs
// application containers; Incus images boot their own init.
func TestAgentScratchImage(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: scratchImage(t)})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	if !inst.Agent.Enabled {
		t.Fatalf("agent not enabled: %+v", inst.Agent)
	}
	copyEcho(t, e.b, inst.ID)
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"/tmp/echoserver"}}, &run)
	if run.Code != 2 || !strings.Contains(run.Stderr, "usage") {
		t.Errorf("run in a scratch image = %+v, want exit 2 with usage", run)
	}
	testForwardTunnel(t, b, inst)
}

// Tunnels carry 100 concurrent connections of 1 MiB each way, every byte
// checked.
func TestAgentForwardTunnel(t *testing.T) { eachBackend(t, testAgentForwardTunnel) }

func testAgentForwardTunnel(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	copyEcho(t, e.b, inst.ID)
	testForwardTunnel(t, b, inst)
}

func testForwardTunnel(t *testing.T, b *berth, inst rpc.Instance) {
	var srv rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"/tmp/echoserver", "127.0.0.1:7007"}}, &srv)
	b.waitOutput(srv.PID, "listening on")

	var fwd rpc.ForwardResult
	b.mustCall("berth/forward", rpc.ForwardParams{ContainerPort: 7007}, &fwd)
	if fwd.Host != "127.0.0.1" || fwd.HostPort == 0 {
		t.Fatalf("forward = %+v", fwd)
	}

	const conns, size = 100, 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoCheck(fmt.Sprintf("%s:%d", fwd.Host, fwd.HostPort), size, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	var list []rpc.TunnelInfo
	b.mustCall("berth/tunnels", struct{}{}, &list)
	if len(list) != 1 || list[0].TunnelID != fwd.TunnelID || list[0].Direction != "forward" || list[0].ContainerPort != 7007 {
		t.Errorf("tunnels = %+v", list)
	}
	b.mustCall("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: fwd.TunnelID}, nil)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", fwd.HostPort), time.Second); err == nil {
		c.Close()
		t.Errorf("tunnel port still accepts after closeTunnel")
	}
	if err := b.call("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: fwd.TunnelID}, nil); code(err) != rpc.CodeNoSuchTunnel {
		t.Errorf("second closeTunnel: %v, want code %d", err, rpc.CodeNoSuchTunnel)
	}
	// A taken host port is a clear error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = b.call("berth/forward", rpc.ForwardParams{ContainerPort: 7007, HostPort: ln.Addr().(*net.TCPAddr).Port}, nil)
	if code(err) != rpc.CodeBindFailed {
		t.Errorf("forward on a taken port: %v, want code %d", err, rpc.CodeBindFailed)
	}
}

// echoCheck sends size random bytes through addr and checks the echo.
func echoCheck(addr string, size, n int) error { return echoCheckOn("tcp", addr, size, n) }

// echoCheckOn is echoCheck on a network: tcp or unix.
func echoCheckOn(network, addr string, size, n int) error {
	c, err := net.DialTimeout(network, addr, 30*time.Second) // a loaded CI machine answers slowly
	if err != nil {
		return fmt.Errorf("conn %d: %w", n, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(append([]byte{'e'}, data...)) // 'e': echo mode
		c.(interface{ CloseWrite() error }).CloseWrite()
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil {
		return fmt.Errorf("conn %d: read after %d bytes: %w", n, got, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("conn %d: write: %w", n, err)
	}
	if got != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("conn %d: echoed %d bytes, checksum match %v", n, got, bytes.Equal(h.Sum(nil), want[:]))
	}
	return nil
}

// A client inside the container reaches a listener on the host.
func TestAgentReverseTunnel(t *testing.T) { eachBackend(t, testAgentReverseTunnel) }

func testAgentReverseTunnel(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	ln, got := hostListener(t)

	b := startBerth(t, e)
	b.initialize(ws, nil)
	var rev rpc.ReverseResult
	b.mustCall("berth/reverse", rpc.ReverseParams{HostPort: ln.Addr().(*net.TCPAddr).Port}, &rev)
	if rev.ContainerPort == 0 || rev.ContainerHost != "127.0.0.1" {
		t.Fatalf("reverse = %+v", rev)
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", fmt.Sprintf("echo hello from the container | nc %s %d", rev.ContainerHost, rev.ContainerPort)}}, &run)
	if run.Code != 0 {
		t.Fatalf("nc in container: %+v", run)
	}
	select {
	case s := <-got:
		if s != "hello from the container\n" {
			t.Errorf("host got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("host listener got nothing")
	}
}

// Signals reach the whole group, a TTY works, and kill -9 of berth leaves
// nothing running in the container.
func TestAgentProcessGroupsAndKill9(t *testing.T) { eachBackend(t, testAgentProcessGroupsAndKill9) }

func testAgentProcessGroupsAndKill9(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)

	var res rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "sleep 1000 & sleep 1000 & echo started; wait"}}, &res)
	b.waitOutput(res.PID, "started")
	b.mustCall("berth/signal", map[string]any{"pid": res.PID, "signal": 15}, nil)
	if exit, _ := b.waitExit(res.PID); exit.Signal != "SIGTERM" {
		t.Errorf("exit after SIGTERM: %+v", exit)
	}
	backendtest.AssertNoProcess(t, d, inst.ID, "sleep 1000")

	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "tty; stty size; read line; echo got $line"}, TTY: true, Cols: 100, Rows: 30, Stdin: true}, &res)
	b.waitOutput(res.PID, "30 100")
	b.mustCall("berth/resize", rpc.ResizeParams{PID: res.PID, Cols: 120, Rows: 40}, nil)
	b.mustCall("berth/stdin", rpc.StdinParams{PID: res.PID, Text: "hi\r"}, nil)
	exit, out := b.waitExit(res.PID)
	if exit.Code != 0 || !strings.Contains(out["stdout"], "/dev/pts/") || !strings.Contains(out["stdout"], "got hi") {
		t.Errorf("tty exec: %+v %q", exit, out["stdout"])
	}

	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", "sleep 1000 & sleep 1000"}}, &res)
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &res)
	time.Sleep(300 * time.Millisecond)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-b.waited
	backendtest.AssertNoProcess(t, d, inst.ID, "sleep 1000")
}

// With the agent disabled, exec still works and tunnels say what they need.
func TestNoAgentTunnelsExplain(t *testing.T) { eachBackend(t, testNoAgentTunnelsExplain) }

func testNoAgentTunnelsExplain(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	b := startBerth(t, e, "--no-agent")
	init := b.initialize(ws, nil)
	if init.Capabilities.Berth.Agent || !strings.Contains(init.Capabilities.Berth.AgentReason, "no-agent") {
		t.Errorf("capabilities = %+v, want agent false with a reason", init.Capabilities.Berth)
	}
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"echo", "plain"}}, &run)
	if run.Stdout != "plain\n" {
		t.Errorf("run = %+v", run)
	}
	err := b.call("berth/forward", rpc.ForwardParams{ContainerPort: 80}, nil)
	if code(err) != rpc.CodeNeedsAgent || !strings.Contains(err.Error(), "agent") {
		t.Errorf("forward without agent: %v, want code %d", err, rpc.CodeNeedsAgent)
	}
	err = b.call("berth/exec", rpc.ExecParams{Argv: []string{"sh"}, TTY: true}, nil)
	if code(err) != rpc.CodeNeedsAgent {
		t.Errorf("tty without agent: %v, want code %d", err, rpc.CodeNeedsAgent)
	}
	var st rpc.Instance
	b.mustCall("berth/status", struct{}{}, &st)
	if st.Agent.Enabled || st.Agent.Reason == "" {
		t.Errorf("status agent = %+v, want disabled with a reason", st.Agent)
	}
}

// A container restarted behind berth's back: running processes are
// reported as exited, and the next call brings a new agent up.
func TestAgentRestartsAfterContainerRestart(t *testing.T) {
	eachBackend(t, testAgentRestartsAfterContainerRestart)
}

func testAgentRestartsAfterContainerRestart(t *testing.T, e engine) {
	d := e.b
	ws := workspace(t, d)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var res rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &res)

	ctx := context.Background()
	if err := d.Stop(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	exit, _ := b.waitExit(res.PID)
	if exit.Code == 0 {
		t.Errorf("exit of a process whose container stopped = %+v, want a failure", exit)
	}
	t.Logf("exit after container stop: %+v", exit)

	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"echo", "back"}}, &run)
	if run.Stdout != "back\n" {
		t.Errorf("run after restart = %+v", run)
	}
}

// foreignArchImage is the busybox test image relabelled as linux/riscv64:
// it still runs here, but berth, which carries agents for amd64 and arm64
// only, has no agent to put into it.
func foreignArchImage(t *testing.T) string {
	t.Helper()
	const ref = "berth-test/busybox-riscv64:1"
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if img, err := cli.ImageInspect(ctx, ref); err == nil && img.Architecture == "riscv64" {
		return ref
	}
	rc, err := cli.ImageSave(ctx, []string{backendtest.Image()})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Rewrite the saved image: its config's architecture and its tag.
	var out bytes.Buffer
	tr, tw := tar.NewReader(rc), tar.NewWriter(&out)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case hdr.Name == "manifest.json":
			var m []map[string]any
			json.Unmarshal(data, &m)
			m[0]["RepoTags"] = []string{ref}
			data, _ = json.Marshal(m)
		case strings.HasSuffix(hdr.Name, ".json") && !strings.Contains(hdr.Name, "/"):
			var c map[string]any
			if json.Unmarshal(data, &c) == nil && c["architecture"] != nil {
				c["architecture"] = "riscv64"
				data, _ = json.Marshal(c)
			}
		}
		hdr.Size = int64(len(data))
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	resp, err := cli.ImageLoad(ctx, &out)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return ref
}

// A container whose platform doesn't match the agent falls back to plain
// exec, and says so.
func TestAgentPlatformMismatchFallsBack(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: foreignArchImage(t)})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"echo", "plain exec"}}, &run)
	if run.Stdout != "plain exec\n" {
		t.Errorf("run = %+v", run)
	}
	var st rpc.Instance
	b.mustCall("berth/status", struct{}{}, &st)
	if st.Agent.Enabled || !strings.Contains(st.Agent.Reason, "the container is linux/riscv64 but berth has agents for linux/amd64, linux/arm64 only") || st.Agent.Build != "" {
		t.Errorf("status agent = %+v, want disabled, naming riscv64 and the platforms berth has", st.Agent)
	}
	if err := b.call("berth/forward", rpc.ForwardParams{ContainerPort: 80}, nil); code(err) != rpc.CodeNeedsAgent || !strings.Contains(err.Error(), "riscv64") {
		t.Errorf("forward in a foreign-arch container: %v, want code %d naming riscv64", err, rpc.CodeNeedsAgent)
	}
}

// hostListener listens on host loopback and sends what its first
// connection carries, once that connection ends. The listener closes with
// the test.
func hostListener(t *testing.T) (net.Listener, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		got <- string(data)
	}()
	return ln, got
}
