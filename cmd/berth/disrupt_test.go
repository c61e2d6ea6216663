//go:build disrupt

package main_test

// These tests freeze, kill and restart a container engine's daemon under a
// running berth (docs/protocol.md: "Deadlines" under "The instance's
// lifecycle", and "Engine restarts" under "Notification
// berth/instanceChanged"). Each runs against a private daemon that it
// starts for itself, with its own socket and state directory, so that it
// never disturbs the machine's shared daemon, nor leaves it frozen or down
// for other tests when it fails. `make test` runs them serially after the
// rest: go test -tags disrupt -p 1 -run Disrupt ./cmd/berth/

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

// daemon is a private dockerd or incusd that a test started and may
// freeze, kill and start again.
type daemon struct {
	t    *testing.T
	name string   // docker.Name or incus.Name
	dir  string   // its state, socket and log
	env  []string // what points clients at it: DOCKER_HOST=… or INCUS_DIR=…
	argv []string
	// bridge is the network bridge made for a private dockerd, removed
	// with it.
	bridge string

	mu   sync.Mutex    // guards the following
	cmd  *exec.Cmd     // the current process
	done chan struct{} // closed when cmd has exited
}

// eachDaemon runs f once per engine, as subtests, each on a private daemon
// of its own that berth, started with startBerth, reaches.
func eachDaemon(t *testing.T, f func(t *testing.T, d *daemon, e engine)) {
	for _, name := range []string{docker.Name, incus.Name} {
		t.Run(name, func(t *testing.T) {
			d, e := privateDaemon(t, name)
			f(t, d, e)
		})
	}
}

// privateDaemon starts a daemon of the named engine, with the test image
// in it, and points this test's clients (and the berth it starts) at it.
// It skips the test when the engine can't be had, or fails it when the
// engine is required (backendtest.Required).
func privateDaemon(t *testing.T, name string) (*daemon, engine) {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if backendtest.Required(name) {
			t.Fatalf("%s is required here but a private daemon can't be had: %s", name, fmt.Sprintf(format, args...))
		}
		t.Skipf("no private %s daemon: %s", name, fmt.Sprintf(format, args...))
	}
	if os.Geteuid() != 0 {
		unavailable("starting one needs root")
	}
	// A short path: the daemon's unix sockets live under it.
	dir, err := os.MkdirTemp("", "berth-"+name+"d-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, name: name, dir: dir}
	var image string
	switch name {
	case docker.Name:
		bin, err := lookSbin("dockerd")
		if err != nil {
			os.RemoveAll(dir)
			unavailable("%v", err)
		}
		// A bridge of its own, made here: with the default it would share
		// the shared daemon's docker0 (and its addresses), and with
		// --bridge=none it would delete docker0 at start. No iptables,
		// NAT or ip_forward changes either.
		d.bridge = fmt.Sprintf("berth-dd%d", os.Getpid()%1000000)
		if out, err := exec.Command("ip", "link", "add", d.bridge, "type", "bridge").CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			unavailable("making bridge %s: %v: %s", d.bridge, err, out)
		}
		if out, err := exec.Command("ip", "link", "set", d.bridge, "up").CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", d.bridge).Run()
			os.RemoveAll(dir)
			unavailable("bringing bridge %s up: %v: %s", d.bridge, err, out)
		}
		sock := "unix://" + filepath.Join(dir, "sock")
		d.env = []string{"DOCKER_HOST=" + sock}
		d.argv = []string{bin, "-H", sock,
			"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
			"--pidfile", filepath.Join(dir, "pid"), "--bridge=" + d.bridge, "--iptables=false",
			"--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
			"--cgroup-parent=berth-disrupt", "--shutdown-timeout=2"}
		image = backendtest.Image()
	case incus.Name:
		bin := "/usr/libexec/incus/incusd"
		if _, err := os.Stat(bin); err != nil {
			os.RemoveAll(dir)
			unavailable("%v", err)
		}
		d.env = []string{"INCUS_DIR=" + dir, "PATH=/usr/libexec/incus:/usr/sbin:/usr/bin:/sbin:/bin"}
		d.argv = []string{bin, "--group", "incus-admin"}
		image = backendtest.IncusImage()
	}
	t.Cleanup(func() {
		start := time.Now()
		d.cleanup()
		t.Logf("private %s daemon cleaned up in %v", name, time.Since(start).Round(time.Millisecond))
	})
	_, sharedBridge := net.InterfaceByName("docker0")
	start := time.Now()
	if err := d.start(); err != nil {
		unavailable("%v", err)
	}
	if _, err := net.InterfaceByName("docker0"); sharedBridge == nil && err != nil {
		t.Fatalf("the private %s daemon took the shared daemon's docker0 away: %v", name, err)
	}
	up := time.Now()
	if err := d.prepare(image); err != nil {
		unavailable("preparing it: %v", err)
	}
	t.Logf("private %s daemon up in %v, prepared in %v more", name, up.Sub(start).Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		if k != "PATH" {
			t.Setenv(k, v)
		}
	}

	log := slog.New(slog.DiscardHandler)
	var b backends.Backend
	switch name {
	case docker.Name:
		db, err := docker.New(log, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		b = db
	case incus.Name:
		ib, err := incus.New(log, "test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ib.Close() })
		b = ib
	}
	backendtest.Need(t, b)
	return d, engine{name: name, b: b, image: image}
}

// lookSbin finds a daemon binary, which may be outside a user's PATH.
func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode()&0o111 != 0
}

// client runs the engine's CLI against the private daemon.
func (d *daemon) client(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.name, args...)
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", d.name, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// start starts the daemon and waits until it answers.
func (d *daemon) start() error {
	logf, err := os.OpenFile(filepath.Join(d.dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.argv[0], d.argv[1:]...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: it and its helpers (containerd, shims) form a
	// group that cleanup can end as a whole, and a signal meant for the
	// test doesn't reach them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	d.mu.Lock()
	d.cmd, d.done = cmd, done
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if d.name == incus.Name {
		_, err := d.client(ctx, "admin", "waitready", "--timeout=60")
		if err != nil {
			return fmt.Errorf("%v; log: %s", err, d.logTail())
		}
		return nil
	}
	for {
		if _, err := d.client(ctx, "info"); err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("dockerd exited; log: %s", d.logTail())
		case <-ctx.Done():
			return fmt.Errorf("dockerd did not answer in a minute; log: %s", d.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "daemon.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// prepare gives a new daemon the test image, copied from the shared one,
// and, for Incus, the storage pool and root disk the setup script makes.
func (d *daemon) prepare(image string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if d.name == docker.Name {
		// The shared daemon is whatever the environment names.
		script := fmt.Sprintf("set -o pipefail; docker save %q | DOCKER_HOST=%q docker load", image, strings.TrimPrefix(d.env[0], "DOCKER_HOST="))
		if out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput(); err != nil {
			return fmt.Errorf("copying %s: %v: %s", image, err, out)
		}
		return nil
	}
	for _, args := range [][]string{
		{"storage", "create", "default", "dir"},
		{"profile", "device", "add", "default", "root", "disk", "path=/", "pool=default"},
	} {
		if _, err := d.client(ctx, args...); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(d.dir, "export"), 0o700); err != nil {
		return err
	}
	export := filepath.Join(d.dir, "export", "image")
	if out, err := exec.CommandContext(ctx, "incus", "image", "export", image, export).CombinedOutput(); err != nil {
		return fmt.Errorf("exporting %s from the shared incusd: %v: %s", image, err, out)
	}
	files, _ := filepath.Glob(export + "*")
	// A split image is its metadata tarball, then its rootfs.
	sort.Slice(files, func(i, j int) bool { return strings.Contains(files[i], ".tar") && !strings.Contains(files[j], ".tar") })
	_, err := d.client(ctx, append(append([]string{"image", "import"}, files...), "--alias", image)...)
	return err
}

// pid is the current daemon process's.
func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// freeze stops the daemon with SIGSTOP; thaw undoes it, and may be called
// any number of times.
func (d *daemon) freeze() {
	d.t.Helper()
	pid := d.pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		d.t.Fatal(err)
	}
	// kill returns before every thread has stopped, and until they have
	// the daemon may still answer a request.
	for deadline := time.Now().Add(5 * time.Second); !allStopped(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			d.t.Fatalf("%s (pid %d) not stopped 5 s after SIGSTOP", d.name, pid)
		}
	}
}

// allStopped reports whether every thread of pid is stopped.
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue // the thread is gone
		}
		// The state follows the command name, which ends with ") ".
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

func (d *daemon) thaw() { _ = syscall.Kill(d.pid(), syscall.SIGCONT) }

// stop ends the daemon with SIGTERM and waits up to limit for it to exit;
// then its whole group gets SIGKILL.
func (d *daemon) stop(limit time.Duration) (time.Duration, error) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.mu.Unlock()
	start := time.Now()
	select {
	case <-done:
		return 0, nil
	default:
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		return time.Since(start), nil
	case <-time.After(limit):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return time.Since(start), fmt.Errorf("%s did not exit within %v of SIGTERM; killed", d.name, limit)
}

// running reports whether the daemon process is alive.
func (d *daemon) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// cleanup removes every container of the daemon, ends it, and removes its
// state. A daemon that a failed test left down is started again first, so
// that no container of it outlives the test: a killed dockerd leaves its
// shims, and a stopped incusd its monitors, running their containers.
func (d *daemon) cleanup() {
	d.mu.Lock()
	started := d.cmd != nil
	d.mu.Unlock()
	if started {
		d.thaw()
		if !d.running() {
			if err := d.start(); err != nil {
				d.t.Logf("starting the private %s daemon again to clean it up: %v", d.name, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if d.running() {
			if err := d.removeAll(ctx); err != nil {
				d.t.Logf("removing the private %s daemon's containers: %v", d.name, err)
			}
		}
		if _, err := d.stop(30 * time.Second); err != nil {
			d.t.Log(err)
		}
	}
	d.unmountAll()
	if d.bridge != "" {
		if out, err := exec.Command("ip", "link", "del", d.bridge).CombinedOutput(); err != nil {
			d.t.Logf("removing bridge %s: %v: %s", d.bridge, err, out)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Logf("removing the private %s daemon's state: %v", d.name, err)
	}
}

// removeAll force-removes every container of the daemon.
func (d *daemon) removeAll(ctx context.Context) error {
	list := []string{"ps", "-aq"}
	if d.name == incus.Name {
		list = []string{"list", "-c", "n", "--format", "csv"}
	}
	out, err := d.client(ctx, list...)
	if err != nil {
		return err
	}
	for _, c := range strings.Fields(string(out)) {
		rm := []string{"rm", "-f", c}
		if d.name == incus.Name {
			rm = []string{"delete", "--force", c}
		}
		if _, err := d.client(ctx, rm...); err != nil {
			return err
		}
	}
	return nil
}

// unmountAll detaches whatever the daemon left mounted under its
// directory (incusd's shmounts and guestapi, a killed dockerd's overlays).
func (d *daemon) unmountAll() {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], d.dir+"/") {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			d.t.Logf("unmounting %s: %v", p, err)
		}
	}
}

// An engine that freezes: berth answers -32010 within seconds instead of
// hanging, and still exits within 5 s of stdin EOF.
func TestDisruptFrozen(t *testing.T) { eachDaemon(t, testDisruptFrozen) }

func testDisruptFrozen(t *testing.T, d *daemon, e engine) {
	ws := workspace(t, e.b)
	b := startPlainBerth(t, e, "--log-level", "debug") // its exit is timed
	b.initialize(ws, nil)
	var inst rpc.Instance
	b.mustCall("berth/up", rpc.UpParams{}, &inst)
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &rpc.ExecResult{})

	d.freeze()
	defer d.thaw()
	t.Cleanup(d.thaw) // also when a Fatal skips the defer's goroutine
	frozen := time.Now()

	type answer struct {
		err  error
		took time.Duration
	}
	methods := []string{"berth/status", "berth/list"}
	answers := make([]answer, len(methods))
	var wg sync.WaitGroup
	for i, m := range methods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
			defer cancel()
			start := time.Now()
			err := b.client.Call(ctx, m, struct{}{}, nil)
			answers[i] = answer{err, time.Since(start)}
		}()
	}
	wg.Wait()
	for i, a := range answers {
		t.Logf("%s with %s frozen: %v after %v", methods[i], d.name, a.err, a.took.Round(time.Millisecond))
		if code(a.err) != rpc.CodeBackendUnavailable || a.took > 8*time.Second {
			t.Errorf("%s with %s frozen: %v after %v; want code %d within 8 s", methods[i], d.name, a.err, a.took.Round(time.Millisecond), rpc.CodeBackendUnavailable)
		}
	}

	start := time.Now()
	t.Logf("closing stdin at %s", start.UTC().Format("15:04:05.000"))
	b.stdin.Close()
	b.exited(t, start, 5*time.Second, "stdin EOF with "+d.name+" frozen")
	d.thaw()
	t.Logf("%s was frozen for %v", d.name, time.Since(frozen).Round(time.Millisecond))

	// What berth could not end itself, its agent ends once the engine
	// lets it notice the lost connection.
	backendtest.AssertNoProcess(t, e.b, inst.ID, "sleep 1000")
}

// holdShutdown starts an exec of the test's own, lasting hold, in the
// private Incus's instance, and returns once it runs.
func holdShutdown(t *testing.T, d *daemon, instance string, hold time.Duration) {
	t.Helper()
	cmd := exec.Command(d.name, "exec", instance, "--", "sh", "-c", fmt.Sprintf("echo holding; sleep %d", int(hold.Seconds())))
	cmd.Env = append(os.Environ(), d.env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("holding exec: %q, %v", line, err)
	}
}

// An engine that goes down and comes back: berth says so with
// berth/instanceChanged, and serves again without a restart. A process
// ends with its container; one whose container outlives the engine's
// daemon (Incus's) runs on, reached through the agent's door, which needs
// no daemon.
func TestDisruptRestart(t *testing.T) { eachDaemon(t, testDisruptRestart) }

func testDisruptRestart(t *testing.T, d *daemon, e engine) {
	ws := workspace(t, e.b)
	b := startBerth(t, e)
	b.initialize(ws, nil)
	b.mustCall("berth/up", rpc.UpParams{}, nil)
	var ex rpc.ExecResult
	b.mustCall("berth/exec", rpc.ExecParams{Argv: []string{"sleep", "1000"}}, &ex)
	before, err := e.b.Find(context.Background(), ws)
	if err != nil {
		t.Fatal(err)
	}

	reason := func(rs ...string) func(string, json.RawMessage) bool {
		return changed(func(p rpc.InstanceChangedParams) bool { return p.Workspace == ws && slices.Contains(rs, p.Reason) })
	}
	from := b.mark()
	// Incus announces a graceful shutdown, which berth passes on as such
	// and not as a lost daemon besides; Docker just goes.
	lost := []string{"daemon lost", "daemon shutting down"}
	if d.name == incus.Name {
		lost = lost[1:] // see holdShutdown below
	}
	lostC := b.watchFor(from, time.Minute, reason(lost...))
	exitC := b.watchFor(from, time.Minute, exitOf(ex.PID))
	if d.name == incus.Name {
		// Someone else's exec holds incusd in its shutdown for a few
		// seconds (it waits for open execs), long enough for berth to see
		// the shutdown announced: berth lets go of what would hold the
		// daemon, but not of its agent behind the door.
		holdShutdown(t, d, before.Name, 4*time.Second)
	}
	// The engine must be able to go: berth lets go of what would hold it
	// (Incus waits core.shutdown_timeout for open execs).
	took, err := d.stop(15 * time.Second)
	if err != nil {
		t.Errorf("%v: was berth holding it?", err)
	}
	down := time.Now()
	t.Logf("%s exited %v after SIGTERM", d.name, took.Round(time.Millisecond))
	if a, ok := arrivedBy(lostC, down.Add(5*time.Second)); !ok {
		t.Errorf("no berth/instanceChanged {reason: daemon lost or daemon shutting down} within 5 s of %s's exit; got %s", d.name, b.notesSince("berth/instanceChanged", from))
	} else {
		t.Logf("told %v after %s exited: %s", a.at.Sub(down).Round(time.Millisecond), d.name, a.params)
	}
	exited, gotExit := arrivedBy(exitC, down.Add(5*time.Second))

	from = b.mark()
	backC := b.watchFor(from, time.Minute, reason("daemon back"))
	start := time.Now()
	if err := d.start(); err != nil {
		t.Fatalf("starting %s again: %v", d.name, err)
	}
	up := time.Now()
	t.Logf("%s answered again %v after it was started", d.name, up.Sub(start).Round(time.Millisecond))
	if a, ok := arrivedBy(backC, up.Add(10*time.Second)); !ok {
		t.Errorf("no berth/instanceChanged {reason: daemon back} within 10 s of %s answering again; got %s", d.name, b.notesSince("berth/instanceChanged", from))
	} else {
		t.Logf("daemon back %v after %s answered: %s", a.at.Sub(up).Round(time.Millisecond), d.name, a.params)
	}

	after, err := e.b.Find(context.Background(), ws)
	survived := err == nil && after.State == "running" && after.Started.Equal(before.Started)
	switch {
	case !survived && !gotExit:
		t.Errorf("no berth/exit for the sleep within 5 s of %s's exit, which took its container", d.name)
	case !survived:
		t.Logf("the sleep's berth/exit %v after %s exited: %s", exited.at.Sub(down).Round(time.Millisecond), d.name, exited.params)
	case gotExit:
		t.Errorf("the sleep ended (%s) though its container outlived %s", exited.params, d.name)
	default:
		var procs []rpc.ProcessInfo
		b.mustCall("berth/processes", struct{}{}, &procs)
		running := false
		for _, p := range procs {
			running = running || p.PID == ex.PID && p.State == "running"
		}
		if !running {
			t.Errorf("the sleep is not running after %s came back, though its container outlived it: %+v", d.name, procs)
		}
		t.Logf("the container outlived %s, and the sleep runs on", d.name)
	}

	var run rpc.RunResult
	if err := b.call("berth/run", rpc.ExecParams{Argv: []string{"echo", "back"}}, &run); err != nil {
		t.Errorf("berth/run after %s came back: %v (code %d)", d.name, err, code(err))
	} else if run.Stdout != "back\n" {
		t.Errorf("berth/run after %s came back = %+v, want back", d.name, run)
	}
}
