package agent

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestWatchPortsAndBrowse runs the agent behind its door in-process: a
// listener of another process shows up in the watch with its owner and
// goes when it ends; the $BROWSER helper's request reaches the watch's
// handler; the agent's own listeners are never reported.
func TestWatchPortsAndBrowse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	browseDir := filepath.Join(t.TempDir(), "browse")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := &inProcess{version: testHash, door: doorConfig{runDir: dir, initNS: true, browseDir: browseDir, browserLink: filepath.Join(t.TempDir(), "browser")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, b, "test", &Binary{Hash: testHash}, discard, Options{FastDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		b.stopDaemons(t)
		b.waitAgents(t)
	})
	// One of the agent's own: never reported.
	own, err := c.Listen(ctx, "127.0.0.1:0", func(nc net.Conn) { nc.Close() })
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()

	reports := make(chan []ListenPort, 100)
	urls := make(chan string, 1)
	wctx, wcancel := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() {
		watched <- c.WatchPorts(wctx, func(ps []ListenPort) { reports <- ps }, func(_ context.Context, u string) error {
			urls <- u
			return nil
		})
	}()
	defer func() {
		wcancel()
		<-watched
	}()
	find := func(want func([]ListenPort) bool) []ListenPort {
		t.Helper()
		for {
			select {
			case ps := <-reports:
				if want(ps) {
					return ps
				}
			case <-ctx.Done():
				t.Fatal("no matching port report")
			}
		}
	}
	has := func(ps []ListenPort, port int) *ListenPort {
		for i := range ps {
			if ps[i].Port == port {
				return &ps[i]
			}
		}
		return nil
	}
	first := find(func([]ListenPort) bool { return true })
	if has(first, own.Port) != nil {
		t.Errorf("the agent's own listener %d was reported: %+v", own.Port, first)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := exec.Command("python3", "-c", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',"+strconv.Itoa(port)+"))\ns.listen()\ntime.sleep(60)")
	if err := srv.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	defer srv.Process.Kill()
	ps := find(func(ps []ListenPort) bool { return has(ps, port) != nil })
	if p := has(ps, port); p.PID != srv.Process.Pid || p.Addr != "127.0.0.1" || p.Name == "" {
		t.Errorf("port %d reported as %+v, want pid %d on 127.0.0.1 with a name", port, *p, srv.Process.Pid)
	}
	srv.Process.Kill()
	srv.Wait()
	find(func(ps []ListenPort) bool { return has(ps, port) == nil })

	if err := Browser(browseDir, "http://localhost:"+strconv.Itoa(port)+"/x"); err != nil {
		t.Fatalf("Browser: %v", err)
	}
	if u := <-urls; u != "http://localhost:"+strconv.Itoa(port)+"/x" {
		t.Errorf("browse handler got %q", u)
	}
	if err := Browser(browseDir, "file:///etc/passwd"); err == nil {
		t.Error("Browser took a file: URL")
	}
}
