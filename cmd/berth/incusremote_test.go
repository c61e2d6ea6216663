package main_test

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

// The Incus remote beds: testdata/setup/incus-https.sh (the main incusd
// over HTTPS on 127.0.0.1) and testdata/setup/incus-cluster.sh (a
// two-member cluster, reached at m1), each an incus client configuration.
const (
	httpsConf   = "/var/lib/berth-incus-https/client"
	clusterConf = "/var/lib/berth-incus-cluster/client"
)

// needIncusBed points INCUS_CONF at a bed's client configuration and
// returns a backend on its remote (the default one when remote is ""),
// skipping or failing per backendtest.Required when the bed is missing.
func needIncusBed(t *testing.T, conf, remote string) engine {
	t.Helper()
	if _, err := os.Stat(filepath.Join(conf, "config.yml")); err != nil {
		if backendtest.Required(incus.Name) {
			t.Fatalf("Incus remote bed missing (make deps sets it up): %v", err)
		}
		t.Skipf("Incus remote bed missing (make deps sets it up): %v", err)
	}
	t.Setenv("INCUS_CONF", conf)
	t.Setenv("BERTH_INCUS_REMOTE", "")
	b, err := incus.NewRemote(slog.New(slog.DiscardHandler), "test", remote)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	return engine{name: incus.Name, b: b, image: backendtest.IncusImage()}
}

// berth on an Incus remote, named two ways: over HTTPS by --incus-remote,
// and on a two-member cluster by initializationOptions.incusRemote, where the
// instance lands on m2 though berth talks to m1. Each is remote although
// on this machine: the workspace is synced, nothing takes the fast path,
// and berth status says so; exec, a tunnel and sync work.
func TestIncusRemotes(t *testing.T) {
	for _, bed := range []struct {
		name, conf, remote string
		byInit             bool   // name the remote in initializationOptions, not by flag
		target             string // BERTH_INCUS_TARGET
	}{
		{name: "https by flag", conf: httpsConf, remote: "berth-https"},
		{name: "cluster member m2 by initializationOptions", conf: clusterConf, remote: "berth-cluster", byInit: true, target: "m2"},
	} {
		t.Run(bed.name, func(t *testing.T) {
			e := needIncusBed(t, bed.conf, bed.remote)
			t.Setenv("BERTH_INCUS_TARGET", bed.target)
			ws := workspace(t, e.b)
			writeFile(t, filepath.Join(ws, "hello.txt"), "hi from the host\n")

			var args []string
			opts := &rpc.InitializationOptions{}
			switch {
			case bed.byInit:
				opts.IncusRemote = bed.remote
			case bed.remote != "":
				args = []string{"--incus-remote", bed.remote}
			}
			b := startBerth(t, e, args...)
			b.initialize(ws, opts)
			var inst rpc.Instance
			b.mustCall("berth/up", rpc.UpParams{}, &inst)
			remoteName := bed.remote
			if inst.Engine == nil {
				t.Fatalf("up on a remote: no engine in %+v", inst)
			}
			en := *inst.Engine
			if !inst.Sync || !en.Remote || en.BindMounts || en.FastPath || en.NetNS || !strings.HasPrefix(en.Endpoint, "https://") || !strings.HasSuffix(en.Endpoint, "(incus remote "+remoteName+")") {
				t.Errorf("up on a remote: sync %v, engine %+v; want synced, remote, nothing local, endpoint naming %s", inst.Sync, en, remoteName)
			}
			if bed.target != "" {
				out, err := exec.Command("incus", "list", remoteName+":"+inst.Name, "-c", "L", "-f", "csv").CombinedOutput()
				if got := strings.TrimSpace(string(out)); err != nil || got != bed.target {
					t.Errorf("instance %s is on member %q (%v), want %s", inst.Name, got, err, bed.target)
				}
			}

			var run rpc.RunResult
			b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "hello.txt"}}, &run)
			if run.Code != 0 || run.Stdout != "hi from the host\n" {
				t.Errorf("run = %+v, want the synced file", run)
			}
			writeFile(t, filepath.Join(ws, "hello.txt"), "edited\n")
			var sr rpc.SyncResult
			b.mustCall("berth/sync", struct{}{}, &sr)
			b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"cat", "hello.txt"}}, &run)
			if run.Stdout != "edited\n" {
				t.Errorf("after an edit and berth/sync: %q", run.Stdout)
			}

			copyEcho(t, e.b, inst.ID)
			var srv rpc.ExecResult
			b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"/tmp/echoserver", "127.0.0.1:7007"}}, &srv)
			b.waitOutput(srv.PID, "listening on")
			var fwd rpc.ForwardResult
			b.mustCall("berth/forward", rpc.ForwardParams{ContainerPort: 7007}, &fwd)
			if err := echoCheck(fmt.Sprintf("%s:%d", fwd.Host, fwd.HostPort), 256<<10, 0); err != nil {
				t.Errorf("tunnel: %v", err)
			}

			var st *rpc.Instance
			b.mustCall("berth/status", rpc.WorkspaceParams{}, &st)
			if st == nil || st.Engine == nil || *st.Engine != en || !st.Sync || st.ID != inst.ID {
				t.Errorf("status = %+v, want the instance, synced, engine %+v", st, en)
			}
		})
	}
}

// A remote the client configuration lacks is a bad initialize parameter
// that names the remotes it has.
func TestIncusRemoteUnknown(t *testing.T) {
	e := needIncusBed(t, httpsConf, "")
	b := startBerth(t, e)
	var res rpc.InitializeResult
	err := b.call("initialize", rpc.InitializeParams{InitializationOptions: &rpc.InitializationOptions{IncusRemote: "nowhere"}}, &res)
	if code(err) != rpc.CodeInvalidParams || !strings.Contains(err.Error(), "berth-https") {
		t.Errorf("initialize with an unknown remote: %v, want invalid params naming berth-https", err)
	}
}
