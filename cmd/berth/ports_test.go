package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/rpc"
)

// startBerthEditor is startBerth with a client that answers
// window/showDocument as an editor does, recording each URI it is asked
// to open on shown.
func startBerthEditor(t *testing.T, e engine, shown chan<- rpc.ShowDocumentParams) *berth {
	t.Helper()
	cmd := exec.Command(berthBin, "--stdio", "--backend", e.name)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+e.image)
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
	answer := func(ctx context.Context, method string, raw json.RawMessage) (any, error) {
		if method != "window/showDocument" {
			return nil, fmt.Errorf("unexpected request %s", method)
		}
		var p rpc.ShowDocumentParams
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		shown <- p
		return rpc.ShowDocumentResult{Success: true}, nil
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
	return b
}

// waitPorts waits for a berth/portsChanged of ws whose ports satisfy ok,
// and returns them.
func (b *berth) waitPorts(ws string, ok func(map[int]rpc.Port) bool) map[int]rpc.Port {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	timer := time.AfterFunc(30*time.Second, b.cond.Broadcast)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	seen := 0
	var last map[int]rpc.Port
	for {
		for ; seen < len(b.notes); seen++ {
			n := b.notes[seen]
			var p rpc.PortsChangedParams
			if n.method != "berth/portsChanged" || json.Unmarshal(n.params, &p) != nil || p.Workspace != ws {
				continue
			}
			last = map[int]rpc.Port{}
			for _, port := range p.Ports {
				last[port.Port] = port
			}
			if ok(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no berth/portsChanged as wanted; the last: %+v", last)
		}
		b.cond.Wait()
	}
}

// A server started in the container is detected, auto-forwarded as
// portsAttributes say (ignore is not; the label travels with the port),
// and reachable from the host; closing an auto-forward sticks until the
// port listens anew; a $BROWSER call in the container reaches the editor
// as window/showDocument with the URL rewritten to the forward's host
// port.
func TestPortsAutoForward(t *testing.T) { eachBackend(t, testPortsAutoForward) }

func testPortsAutoForward(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`",
		"portsAttributes": {"7010": {"label": "web", "onAutoForward": "openBrowser"}, "7020-7030": {"label": "quiet", "onAutoForward": "ignore"}},
		"otherPortsAttributes": {"onAutoForward": "silent"}}`)
	shown := make(chan rpc.ShowDocumentParams, 4)
	b := startBerthEditor(t, e, shown)
	b.initialize(ws, &rpc.InitializationOptions{Trust: true})
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	copyEcho(t, e.b, inst.ID)

	serve := func(addr string) string {
		var srv rpc.ExecResult
		b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"/tmp/echoserver", addr}}, &srv)
		b.waitOutput(srv.PID, "listening on")
		return srv.PID
	}
	web := serve("0.0.0.0:7010")
	serve("127.0.0.1:7025")
	serve("127.0.0.1:7040")
	ports := b.waitPorts(ws, func(ps map[int]rpc.Port) bool {
		return ps[7010].TunnelID != "" && ps[7025].Port != 0 && ps[7040].TunnelID != ""
	})
	if p := ports[7010]; p.Label != "web" || p.OnAutoForward != "openBrowser" || (p.BindAddress != "0.0.0.0" && p.BindAddress != "::") || p.Process == nil || p.Process.Name != "echoserver" || p.HostPort == 0 {
		t.Errorf("port 7010 = %+v, want label web, openBrowser, on 0.0.0.0 or ::, by echoserver, forwarded", p)
	}
	if p := ports[7025]; p.Label != "quiet" || p.OnAutoForward != "ignore" || p.TunnelID != "" || p.BindAddress != "127.0.0.1" {
		t.Errorf("port 7025 = %+v, want label quiet, ignore, not forwarded", p)
	}
	if p := ports[7040]; p.OnAutoForward != "silent" || p.Label != "" {
		t.Errorf("port 7040 = %+v, want otherPortsAttributes' silent", p)
	}
	for _, port := range []int{7010, 7040} {
		if err := echoCheck(fmt.Sprintf("127.0.0.1:%d", ports[port].HostPort), 64<<10, port); err != nil {
			t.Errorf("auto-forward of %d: %v", port, err)
		}
	}
	for port := range ports {
		if port != 7010 && port != 7025 && port != 7040 {
			t.Errorf("port %d reported: the agent's or berth's own? %+v", port, ports[port])
		}
	}

	// berth/ports and berth/tunnels agree.
	var res rpc.PortsResult
	b.mustCall("berth/ports", rpc.WorkspaceParams{Workspace: ws}, &res)
	if len(res.Ports) != 3 || len(res.Forwards) != 2 {
		t.Errorf("berth/ports = %+v, want 3 ports and 2 forwards", res)
	}
	var tunnels []rpc.TunnelInfo
	b.mustCall("berth/tunnels", struct{}{}, &tunnels)
	auto := 0
	for _, tn := range tunnels {
		if tn.Auto && tn.Direction == "forward" && (tn.TunnelID == ports[7010].TunnelID || tn.TunnelID == ports[7040].TunnelID) {
			auto++
		}
	}
	if auto != 2 {
		t.Errorf("berth/tunnels = %+v, want both auto-forwards with auto: true", tunnels)
	}

	// Closing an auto-forward sticks while the port listens.
	b.mustCall("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: ports[7010].TunnelID}, nil)
	b.waitPorts(ws, func(ps map[int]rpc.Port) bool { return ps[7010].Port != 0 && ps[7010].TunnelID == "" })
	time.Sleep(1500 * time.Millisecond) // several scans
	var again rpc.PortsResult
	b.mustCall("berth/ports", rpc.WorkspaceParams{Workspace: ws}, &again)
	for _, p := range again.Ports {
		if p.Port == 7010 && p.TunnelID != "" {
			t.Errorf("port 7010 auto-forwarded again after closeTunnel: %+v", p)
		}
	}
	// Once it stops listening and listens again, it is new.
	b.mustCall("berth/signal", rpc.SignalParams{PID: web, Signal: json.RawMessage(`"SIGKILL"`)}, nil)
	b.waitExit(web)
	b.waitPorts(ws, func(ps map[int]rpc.Port) bool { return ps[7010].Port == 0 })
	serve("0.0.0.0:7010")
	b.waitPorts(ws, func(ps map[int]rpc.Port) bool { return ps[7010].TunnelID != "" })

	// $BROWSER: a localhost URL gets its port forwarded (7025 was not:
	// ignore) and rewritten; the editor is asked to open it.
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", `"$BROWSER" 'http://localhost:7025/x?y=1#z'`}}, &run)
	if run.Code != 0 {
		t.Fatalf("$BROWSER: %+v", run)
	}
	var got rpc.ShowDocumentParams
	select {
	case got = <-shown:
	case <-time.After(10 * time.Second):
		t.Fatal("no window/showDocument")
	}
	ports = b.waitPorts(ws, func(ps map[int]rpc.Port) bool { return ps[7025].TunnelID != "" })
	want := fmt.Sprintf("http://localhost:%d/x?y=1#z", ports[7025].HostPort)
	if got.URI != want || !got.External {
		t.Errorf("window/showDocument = %+v, want %s, external", got, want)
	}
	if err := echoCheck(fmt.Sprintf("127.0.0.1:%d", ports[7025].HostPort), 1024, 1); err != nil {
		t.Errorf("the $BROWSER URL's forward: %v", err)
	}
	// Not http(s): refused in the container, never shown.
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"sh", "-c", `"$BROWSER" file:///etc/passwd`}}, &run)
	if run.Code == 0 {
		t.Errorf("$BROWSER file:///etc/passwd exited 0: %+v", run)
	}
	select {
	case p := <-shown:
		t.Errorf("window/showDocument for %+v", p)
	case <-time.After(300 * time.Millisecond):
	}
}

// berth exec's $BROWSER opens the URL with the host's opener, which
// BERTH_OPENER overrides, on the direct path and on the full one; a
// localhost URL is forwarded and rewritten to the host port.
func TestPortsBrowserCLI(t *testing.T) { eachBackend(t, testPortsBrowserCLI) }

func testPortsBrowserCLI(t *testing.T, e engine) {
	ws := workspace(t, e.b)
	writeConfig(t, ws, `{"image": "`+e.image+`"}`)
	dir := t.TempDir()
	opened := filepath.Join(dir, "opened")
	script := filepath.Join(dir, "opener")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1\" >> "+opened+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_OPENER", script)
	if out, errOut, code := cli(t, e, ws, "up", "--trust"); code != 0 {
		t.Fatalf("berth up: code %d stdout %q stderr %q", code, out, errOut)
	}
	inst, err := find(t, e, ws)
	if err != nil {
		t.Fatal(err)
	}
	copyEcho(t, e.b, inst.ID)
	for _, path := range []string{"direct", "full"} {
		t.Run(path, func(t *testing.T) {
			if path == "full" {
				t.Setenv("BERTH_NO_DIRECT", "1")
			}
			os.Remove(opened)
			out, errOut, code := cli(t, e, ws, "exec", "--", "sh", "-c",
				`/tmp/echoserver 127.0.0.1:7050 >/dev/null & sleep 0.3; "$BROWSER" https://example.com/a && "$BROWSER" http://localhost:7050/p?q && echo done; kill $!`)
			if code != 0 || out != "done\n" {
				t.Fatalf("berth exec $BROWSER: code %d stdout %q stderr %q", code, out, errOut)
			}
			data, err := os.ReadFile(opened)
			lines := strings.Fields(string(data))
			if err != nil || len(lines) != 2 || lines[0] != "https://example.com/a" {
				t.Fatalf("the opener got %q (%v), want https://example.com/a and a localhost URL", data, err)
			}
			var port int
			if _, err := fmt.Sscanf(lines[1], "http://localhost:%d/p?q", &port); err != nil || port == 0 {
				t.Errorf("the opener got %q, want http://localhost:PORT/p?q", lines[1])
			}
		})
	}
}
