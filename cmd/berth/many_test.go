package main_test

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// One berth serves several workspaces at once, and none sees another's
// processes, tunnels or files: berth/processes and berth/tunnels filtered
// by workspace list only its own; inside, each container has only its own
// workspace's files and processes; and each workspace's tunnel to the same
// container port reaches its own container. (bench -many measures 50.)
func TestManyWorkspacesIsolated(t *testing.T) {
	const n = 5
	e := needBackend(t, docker.Name)
	b := startBerth(t, e)
	wss := make([]string, n)
	for i := range wss {
		wss[i] = workspace(t, e.b)
		writeFile(t, filepath.Join(wss[i], "marker.txt"), fmt.Sprintf("workspace %d\n", i))
	}
	b.initialize(wss[0], nil)

	type served struct {
		inst rpc.Instance
		srv  string // pid of its httpd
		fwd  rpc.ForwardResult
	}
	// Up, a process and a tunnel in each, all at once, as editors would.
	got := make([]served, n)
	var wg sync.WaitGroup
	for i, ws := range wss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &got[i]
			var res rpc.ExecResult
			err := b.call("berth/up", rpc.UpParams{Workspace: ws}, &s.inst)
			if err == nil {
				err = b.call("berth/exec", rpc.ExecParams{Workspace: ws, Argv: []string{"httpd", "-f", "-p", "127.0.0.1:8000", "-h", "."}}, &res)
			}
			if err == nil {
				s.srv = res.PID
				err = b.call("berth/forward", rpc.ForwardParams{Workspace: ws, ContainerPort: 8000}, &s.fwd)
			}
			if err != nil {
				t.Errorf("workspace %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ids := map[string]bool{}
	for i, s := range got {
		ids[s.inst.ID] = true
		var procs []rpc.ProcessInfo
		b.mustCall("berth/processes", rpc.ProcessesParams{Workspace: wss[i]}, &procs)
		if len(procs) != 1 || procs[0].PID != s.srv || procs[0].Workspace != wss[i] {
			t.Errorf("workspace %d: processes = %+v, want only its httpd %s", i, procs, s.srv)
		}
		var tuns []rpc.TunnelInfo
		b.mustCall("berth/tunnels", rpc.WorkspaceParams{Workspace: wss[i]}, &tuns)
		if len(tuns) != 1 || tuns[0].TunnelID != s.fwd.TunnelID || tuns[0].Workspace != wss[i] {
			t.Errorf("workspace %d: tunnels = %+v, want only %s", i, tuns, s.fwd.TunnelID)
		}

		// Inside: its own workspace's files, under its own folder only, and
		// no process of another container.
		var run rpc.RunResult
		b.mustCall("berth/run", rpc.ExecParams{Workspace: wss[i], MapPaths: new(bool), Argv: []string{"sh", "-c",
			"cat marker.txt; ls /workspaces; ps -o args | grep -c '[h]ttpd -f'"}}, &run)
		want := fmt.Sprintf("workspace %d\n%s\n1\n", i, filepath.Base(wss[i]))
		if run.Stdout != want {
			t.Errorf("workspace %d inside: %q, want %q", i, run.Stdout, want)
		}

		// The same container port, through each workspace's tunnel,
		// reaches that workspace's container.
		// httpd may not listen yet: the tunnel resets until it does.
		var body string
		var err error
		for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			body, err = httpGet(fmt.Sprintf("http://%s:%d/marker.txt", s.fwd.Host, s.fwd.HostPort))
			if err == nil || time.Since(t0) > 30*time.Second {
				break
			}
		}
		if err != nil || body != fmt.Sprintf("workspace %d\n", i) {
			t.Errorf("workspace %d through its tunnel: %q, %v", i, body, err)
		}
	}
	if len(ids) != n {
		t.Errorf("%d workspaces got %d containers", n, len(ids))
	}
	var all []rpc.ProcessInfo
	b.mustCall("berth/processes", rpc.ProcessesParams{}, &all)
	var pids []string
	for _, p := range all {
		pids = append(pids, p.PID)
	}
	for _, s := range got {
		if !slices.Contains(pids, s.srv) {
			t.Errorf("unfiltered processes %v lack %s", pids, s.srv)
		}
	}
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	return string(data), err
}
