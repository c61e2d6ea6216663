package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
)

// StartService starts the command once, in a session of its own that
// outlives the connection, with its output in the log; a second call,
// from another connection, finds it running; once it has died, the next
// call starts it again.
func TestStartService(t *testing.T) {
	serviceDir = t.TempDir()
	t.Cleanup(func() { serviceDir = Dir })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c1, _ := newClient(t)
	pid, running, err := c1.StartService(ctx, backends.ExecSpec{Argv: []string{"sh", "-c", "echo service up; exec sleep 60"}})
	if err != nil || running || pid <= 0 {
		t.Fatalf("StartService = %d, %v, %v; want a new pid", pid, running, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if sid, _ := syscall.Getpgid(pid); sid != pid {
		t.Errorf("service's group %d, want its own (%d)", sid, pid)
	}
	c1.Close()

	c2, _ := newClient(t)
	again, running, err := c2.StartService(ctx, backends.ExecSpec{Argv: []string{"sh", "-c", "exec sleep 60"}})
	if err != nil || !running || again != pid {
		t.Errorf("second StartService after the first connection closed = %d, %v, %v; want %d still running", again, running, err, pid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(serviceDir, "service.log"))
		if strings.Contains(string(b), "service up") && strings.Contains(string(b), "starting the service") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service log %q; want the start line and the service's output", b)
		}
		time.Sleep(20 * time.Millisecond)
	}

	kill := func(pid int) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if st, _, err := procStat(pid); err != nil || st == 'Z' {
				return
			}
		}
		t.Fatalf("pid %d outlived SIGKILL", pid)
	}
	kill(pid)
	third, running, err := c2.StartService(ctx, backends.ExecSpec{Argv: []string{"sleep", "60"}})
	if err != nil || running || third == pid {
		t.Errorf("StartService after the service died = %d, %v, %v; want a new one", third, running, err)
	}
	kill(third)

	if _, _, err := c2.StartService(ctx, backends.ExecSpec{Argv: []string{"no-such-command-here"}}); !errors.Is(err, backends.ErrCommandNotFound) {
		t.Errorf("StartService of a missing command = %v, want ErrCommandNotFound", err)
	}
}

// Processes counts the live processes of every connection, and leaves
// helpers out.
func TestProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _ := newClient(t)
	count := func() int {
		t.Helper()
		n, err := c.Processes(ctx)
		if err != nil {
			t.Fatalf("Processes: %v", err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("Processes with none started = %d", n)
	}
	var procs []backends.Process
	for _, helper := range []bool{false, true} {
		p, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"sleep", "60"}, Helper: helper, Stdout: io.Discard, Stderr: io.Discard}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { killGroup(p.(*process).PID()) })
		procs = append(procs, p)
	}
	if n := count(); n != 1 {
		t.Errorf("Processes with one process and one helper = %d, want 1", n)
	}
	for _, p := range procs {
		_ = p.Kill(ctx)
		_, _ = p.Wait(ctx)
	}
	deadline := time.Now().Add(5 * time.Second)
	for count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Processes after the process exited = %d, want 0", count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
