package main_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// podmanBed is one Podman of the test bed, and how berth runs against it:
// rootless Podman's berth runs as its user, with that user's runtime dir.
type podmanBed struct {
	b    *docker.Backend
	host string              // the socket berth must find
	bin  string              // berth, where the bed's user can run it
	env  []string            // on top of the test's
	cred *syscall.Credential // nil for the test's own user
	uid  int                 // who owns the workspace's files on the host
	gid  int
}

// needPodman connects to rootful or rootless Podman, skipping or failing
// per backendtest.Required when the bed is missing.
func needPodman(t *testing.T, rootless bool) podmanBed {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if backendtest.Required(docker.PodmanName) {
			t.Fatalf(format+" (testdata/setup/podman.sh makes it)", args...)
		}
		t.Skipf(format, args...)
	}
	bed := podmanBed{bin: berthBin, uid: os.Getuid(), gid: os.Getgid()}
	env := map[string]string{}
	if rootless {
		u, err := user.Lookup(backendtest.PodmanUser)
		if err != nil {
			missing("rootless Podman's user: %v", err)
		}
		if os.Getuid() != 0 {
			missing("rootless Podman: berth runs as %s, which needs root", backendtest.PodmanUser)
		}
		bed.uid, _ = strconv.Atoi(u.Uid)
		bed.gid, _ = strconv.Atoi(u.Gid)
		run := "/run/user/" + u.Uid
		env["XDG_RUNTIME_DIR"] = run
		bed.cred = &syscall.Credential{Uid: uint32(bed.uid), Gid: uint32(bed.gid), Groups: []uint32{}}
		// berth and its config in a folder of the user's: the test's are
		// root's alone.
		dir := backendtest.PodmanWorkspace(t, bed.uid, bed.gid)
		bed.bin = filepath.Join(dir, "berth")
		copyFile(t, berthBin, bed.bin, 0o755)
		if err := os.Chown(bed.bin, bed.uid, bed.gid); err != nil {
			t.Fatal(err)
		}
		bed.env = []string{"HOME=" + u.HomeDir, "XDG_RUNTIME_DIR=" + run, "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
	}
	ep := docker.PodmanEndpoint(func(k string) string { return env[k] })
	bed.host = ep.Host
	b, err := docker.NewAt(slog.New(slog.DiscardHandler), "test", docker.PodmanName, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	bed.b = b
	return bed
}

// workspace makes a workspace the bed's user owns, with files (path:
// content) in it, whose container is removed after t.
func (bed podmanBed) workspace(t *testing.T, files map[string]string) string {
	t.Helper()
	var ws string
	if bed.cred != nil {
		ws = backendtest.PodmanWorkspace(t, bed.uid, bed.gid)
	} else {
		ws = workspace(t, bed.b)
	}
	for name, content := range files {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if bed.cred != nil {
		filepath.Walk(ws, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, bed.uid, bed.gid) })
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if inst, err := bed.b.Find(ctx, ws); err == nil {
			_ = bed.b.Remove(ctx, inst.ID)
		}
	})
	return ws
}

// command is berth with args on ws, as the bed runs it.
func (bed podmanBed) command(ws string, args ...string) *exec.Cmd {
	cmd := exec.Command(bed.bin, append([]string{"--backend", docker.PodmanName, "--workspace", ws}, args...)...)
	cmd.Env = append(append(os.Environ(), "BERTH_IMAGE="+backendtest.Image()), bed.env...)
	cmd.Dir = ws
	if bed.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: bed.cred}
	}
	return cmd
}

// run runs berth to its end: stdout, stderr and exit code.
func (bed podmanBed) run(t *testing.T, ws string, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, bed.command(ws, args...))
}

// up runs berth up on ws and returns its instance.
func (bed podmanBed) up(t *testing.T, ws string, args ...string) rpc.Instance {
	t.Helper()
	out, errOut, code := bed.run(t, ws, append([]string{"up"}, args...)...)
	var inst rpc.Instance
	if code != 0 || json.Unmarshal([]byte(out), &inst) != nil {
		t.Fatalf("berth up: code %d stdout %q stderr %q", code, out, errOut)
	}
	return inst
}

// hostUserInside is the uid in ws's container that is the host user
// (rootless Podman's user): 0 without keep-id, the remote user's with it.
func (bed podmanBed) hostUserInside(t *testing.T, ws string) string {
	t.Helper()
	out, errOut, code := bed.run(t, ws, "exec", "--", "cat", "/proc/self/uid_map")
	if code != 0 {
		t.Fatalf("berth exec cat uid_map: code %d, stderr %q", code, errOut)
	}
	for line := range strings.SplitSeq(out, "\n") {
		// Keep-id nests the container in rootless Podman's namespace,
		// where uid 0 is the host user.
		if f := strings.Fields(line); len(f) == 3 && (f[1] == strconv.Itoa(bed.uid) || f[1] == "0") {
			return f[0]
		}
	}
	t.Fatalf("no host user in the container's uid_map:\n%s", out)
	return ""
}

// cgroup2 reports whether this machine has cgroup v2 alone.
func cgroup2() bool {
	var fs syscall.Statfs_t
	return syscall.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == 0x63677270 // CGROUP2_SUPER_MAGIC
}

// owner is the uid and gid that own path on the host.
func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestPodmanEndToEnd drives the real berth binary against Debian's Podman,
// rootful and rootless (as rootless Podman's own user): up binds the
// workspace, exec runs with its output and exit code, a forward reaches a
// server inside, and files cross the bind mount both ways owned by the
// host user. Rootless, keep-id gives a non-root remote user the host
// user's files, and is left off for root and for host networking.
func TestPodmanEndToEnd(t *testing.T) {
	for _, rootless := range []bool{false, true} {
		name := "rootful"
		if rootless {
			name = "rootless"
		}
		t.Run(name, func(t *testing.T) {
			bed := needPodman(t, rootless)
			testPodmanSpine(t, bed)
			if rootless {
				t.Run("keep-id", func(t *testing.T) { testPodmanKeepID(t, bed) })
			}
		})
	}
}

func testPodmanSpine(t *testing.T, bed podmanBed) {
	ws := bed.workspace(t, map[string]string{
		"hello.txt":                       "from the host\n",
		".devcontainer/devcontainer.json": `{"image": "` + backendtest.Image() + `", "remoteUser": "root"}`,
	})
	inst := bed.up(t, ws)
	if inst.Backend != docker.PodmanName || inst.Engine == nil || inst.Engine.Endpoint != bed.host || inst.Engine.Remote {
		t.Errorf("berth up: backend %q engine %+v, want podman at %s, local", inst.Backend, inst.Engine, bed.host)
	}
	if len(inst.Mounts) != 1 || inst.Mounts[0].Type != "" || inst.Mounts[0].Host != ws {
		t.Errorf("berth up: mounts %+v, want the workspace bound", inst.Mounts)
	}
	if !inst.Agent.Enabled {
		t.Errorf("berth up: agent %+v, want it serving", inst.Agent)
	}
	// Joining the container's network namespace takes root: rootless
	// Podman's user has tunnels ride the agent.
	if inst.Engine != nil && (!inst.Engine.BindMounts || !inst.Engine.FastPath || inst.Engine.NetNS != (bed.cred == nil)) {
		t.Errorf("berth up: engine %+v, want bind mounts and fast path, netns %v", *inst.Engine, bed.cred == nil)
	}

	if out, errOut, code := bed.run(t, ws, "exec", "--", "cat", "hello.txt"); code != 0 || out != "from the host\n" {
		t.Errorf("berth exec cat hello.txt: code %d, %q, stderr %q", code, out, errOut)
	}
	if out, errOut, code := bed.run(t, ws, "exec", "--", "sh", "-c", "echo out; echo err >&2; echo back >made.txt; exit 7"); code != 7 || out != "out\n" || !strings.Contains(errOut, "err\n") {
		t.Errorf("berth exec exit 7: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Root inside is the host user, rootless too: no keep-id for root.
	if got := bed.hostUserInside(t, ws); got != "0" {
		t.Errorf("the host user is uid %s in the container, want root's 0 (no keep-id)", got)
	}
	if data, err := os.ReadFile(filepath.Join(ws, "made.txt")); err != nil || string(data) != "back\n" {
		t.Errorf("made.txt on the host: %q, %v", data, err)
	} else if uid, gid := owner(t, filepath.Join(ws, "made.txt")); uid != bed.uid || gid != bed.gid {
		t.Errorf("made.txt on the host is %d:%d, want %d:%d", uid, gid, bed.uid, bed.gid)
	}

	// Limits: Debian's Podman 4 can't change them live, rootless on
	// cgroup v1 can't apply or measure them at all; berth says so.
	cgroupV1 := !cgroup2()
	out, errOut, code := bed.run(t, ws, "limits", "--memory", "256m")
	switch {
	case bed.cred != nil && cgroupV1:
		if code == 0 || !strings.Contains(errOut, "rootless Podman can't apply resource limits on cgroup v1") {
			t.Errorf("berth limits --memory rootless on cgroup v1: code %d, %q, stderr %q", code, out, errOut)
		}
	case code != 0 && !strings.Contains(errOut, "can't change a running container's limits"):
		t.Errorf("berth limits --memory: code %d, %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = bed.run(t, ws, "status")
	want := "memory "
	if bed.cred != nil && cgroupV1 {
		want = "usage            unknown"
	}
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("berth status: code %d, stderr %q, want %q in\n%s", code, errOut, want, out)
	}

	// A forward reaches a server in the container.
	server := bed.command(ws, "exec", "--", "sh", "-c", "echo hello | nc -l -p 8080")
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Process.Kill(); server.Wait() })
	fwd := bed.command(ws, "forward", "0:8080")
	addr, _ := startForward(t, fwd)
	got := readThrough(addr, 30*time.Second)
	if got != "hello\n" {
		t.Errorf("through the forward: %q, want hello", got)
	}
}

// testPodmanKeepID: the image's "user" is uid 1000, the bed's user 999;
// testPodmanSpine covers the root remote user.
func testPodmanKeepID(t *testing.T, bed podmanBed) {
	config := func(extra string) map[string]string {
		return map[string]string{".devcontainer/devcontainer.json": `{"image": "` + backendtest.Image() + `"` + extra + `}`}
	}
	t.Run("non-root", func(t *testing.T) {
		ws := bed.workspace(t, config(`, "remoteUser": "user"`))
		bed.up(t, ws)
		if got := bed.hostUserInside(t, ws); got != "1000" {
			t.Errorf("the host user is uid %s in the container, want the remote user's 1000 (keep-id)", got)
		}
		if out, errOut, code := bed.run(t, ws, "exec", "--", "sh", "-c", "id -u; touch by-user"); code != 0 || out != "1000\n" {
			t.Fatalf("berth exec as user: code %d, %q, stderr %q", code, out, errOut)
		}
		if uid, gid := owner(t, filepath.Join(ws, "by-user")); uid != bed.uid || gid != bed.gid {
			t.Errorf("a file the remote user made is %d:%d on the host, want the host user's %d:%d", uid, gid, bed.uid, bed.gid)
		}
	})
	// Podman refuses keep-id with the host's network.
	t.Run("host network", func(t *testing.T) {
		ws := bed.workspace(t, config(`, "remoteUser": "user", "runArgs": ["--network=host"]`))
		// Without keep-id the remote user is a stranger to the workspace:
		// let it in.
		if err := os.Chmod(ws, 0o755); err != nil {
			t.Fatal(err)
		}
		bed.up(t, ws, "--trust")
		if got := bed.hostUserInside(t, ws); got != "0" {
			t.Errorf("the host user is uid %s in the container, want root's 0 (no keep-id)", got)
		}
		if out, errOut, code := bed.run(t, ws, "exec", "--", "id", "-u"); code != 0 || out != "1000\n" {
			t.Errorf("berth exec as user: code %d, %q, stderr %q", code, out, errOut)
		}
	})
}
