package main_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// berth/forward with hostSocket: a unix socket only the user reaches,
// carrying connections to a server in the container, removed with its
// tunnel; an existing file is never replaced.
func TestForwardHostSocket(t *testing.T) {
	e := needBackend(t, docker.Name)
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	copyEcho(t, e.b, inst.ID)
	var srv rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"/tmp/echoserver", "127.0.0.1:7008"}}, &srv)
	b.waitOutput(srv.PID, "listening on")

	// Not t.TempDir, whose parent is private: here only the socket's own
	// mode keeps other users out.
	dir, err := os.MkdirTemp("", "berth-socket-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "dap.sock")
	var fwd rpc.ForwardResult
	b.mustCall("berth/forward", rpc.ForwardParams{ContainerPort: 7008, HostSocket: sock}, &fwd)
	if fwd.HostSocket != sock || fwd.HostPort != 0 || fwd.Host != "" {
		t.Fatalf("forward = %+v", fwd)
	}
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}

	const conns, size = 10, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoCheckOn("unix", sock, size, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	otherUserDenied(t, sock)

	var list []rpc.TunnelInfo
	b.mustCall("berth/tunnels", struct{}{}, &list)
	if len(list) != 1 || list[0].HostSocket != sock || list[0].HostPort != 0 || list[0].ContainerPort != 7008 {
		t.Errorf("tunnels = %+v", list)
	}
	// The path is taken while the tunnel lives.
	if err := b.call("berth/forward", rpc.ForwardParams{ContainerPort: 7008, HostSocket: sock}, nil); code(err) != rpc.CodeBindFailed {
		t.Errorf("a second forward on the socket: %v, want code %d", err, rpc.CodeBindFailed)
	}
	b.mustCall("berth/closeTunnel", rpc.CloseTunnelParams{TunnelID: fwd.TunnelID}, nil)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after closeTunnel: %v", err)
	}

	// A file that is not a socket is never replaced.
	plain := filepath.Join(dir, "notes.txt")
	writeFile(t, plain, "mine")
	err = b.call("berth/forward", rpc.ForwardParams{ContainerPort: 7008, HostSocket: plain}, nil)
	if code(err) != rpc.CodeBindFailed {
		t.Errorf("forward onto a plain file: %v, want code %d", err, rpc.CodeBindFailed)
	}
	if data, err := os.ReadFile(plain); err != nil || string(data) != "mine" {
		t.Errorf("the plain file is now %q, %v", data, err)
	}
	// The end of the session removes its sockets.
	b.mustCall("berth/forward", rpc.ForwardParams{ContainerPort: 7008, HostSocket: sock}, &fwd)
	b.client.Close()
	<-b.waited
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket still there after berth exited: %v", err)
	}
}

// otherUserDenied checks, when the test runs as root and the host has
// setpriv and perl, that user nobody can't connect to sock, and can once
// its mode lets it (so the check itself works).
func otherUserDenied(t *testing.T, sock string) {
	t.Helper()
	setpriv, err1 := exec.LookPath("setpriv")
	perl, err2 := exec.LookPath("perl")
	if os.Geteuid() != 0 || err1 != nil || err2 != nil {
		t.Log("not checking another user's access: needs root, setpriv and perl")
		return
	}
	dial := func() int {
		cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", perl,
			"-MIO::Socket::UNIX", "-e", `IO::Socket::UNIX->new(Peer => $ARGV[0]) or exit 13; exit 0`, sock)
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return 0
	}
	if rc := dial(); rc != 13 {
		t.Errorf("user nobody's connect to the 0600 socket: exit %d, want 13 (refused)", rc)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(sock, 0o600)
	if rc := dial(); rc != 0 {
		t.Errorf("control: user nobody's connect to a 0666 socket: exit %d, want 0", rc)
	}
}
