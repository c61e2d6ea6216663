// Command berth-agent is berth's in-container agent. berth copies it into
// each instance. With a local engine berth runs `berth-agent door` with the
// backend's exec, which launches the agent as a daemon behind its door, a
// unix socket shared with the host; otherwise it runs `berth-agent serve`,
// which speaks yamux on stdin/stdout and ends with them (see package
// agent). `berth-agent init` is an instance's main process, and only that.
// `berth-agent scan DIR` lists a tree for two-way sync; `berth-agent
// untar DIR` extracts sync mode's copies.
// It must be built static (CGO_ENABLED=0) so that it runs in any image,
// even one FROM scratch.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/berthdev/berth/agent"
)

func main() {
	// As $BROWSER (agent.BrowserPath, a link to this binary), it is the
	// helper that asks berth to open a URL on the host.
	if filepath.Base(os.Args[0]) == filepath.Base(agent.BrowserPath) {
		if err := browser(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "berth browser:", err)
			os.Exit(1)
		}
		return
	}
	oneProc()
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "berth-agent:", err)
		os.Exit(1)
	}
}

// oneProc runs the agent's goroutines on one thread at a time, unless
// GOMAXPROCS says otherwise. The agent moves bytes between pipes and a
// socket: its work is in the kernel, and what it costs of its own is
// handing each frame between goroutines. On several threads every hand-off
// is a futex wake-up and the idle ones spin, which on a virtual machine
// cost more than the work (docs/benchmarks.md).
func oneProc() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

func run(ctx context.Context, args []string) error {
	switch {
	case len(args) == 1 && args[0] == "init":
		return initProcess(ctx)
	case len(args) >= 1 && args[0] == "browser":
		return browser(args[1:])
	case len(args) == 1 && args[0] == "door":
		// The launcher holds no key: it passes the request on to the
		// daemon, which makes itself non-dumpable before reading it.
		self, err := os.Executable()
		if err != nil {
			self = "/proc/self/exe"
		}
		return agent.Launch(ctx, os.Stdin, os.Stdout, self, "door", "--daemon")
	case len(args) == 2 && args[0] == "door" && args[1] == "--daemon":
		return daemon(ctx)
	case len(args) == 1 && args[0] == "serve":
		if err := agent.NoDump(); err != nil {
			return fmt.Errorf("cannot make the guard non-dumpable: %w", err)
		}
		return guard()
	case len(args) == 2 && args[0] == "scan":
		return scan(args[1], os.Stdout)
	case len(args) == 2 && args[0] == "untar":
		return agent.Untar(args[1], os.Stdin)
	case len(args) == 2 && args[0] == "serve" && args[1] == "--guarded":
	default:
		return fmt.Errorf("usage: berth-agent serve|door|init|browser URL|scan DIR|untar DIR (berth starts it; it is not for people)")
	}
	// Before the key arrives: nothing in the instance short of root with
	// CAP_SYS_PTRACE may read the agent's memory or descriptors, or
	// ptrace it. execve made this process dumpable again.
	if err := agent.NoDump(); err != nil {
		return fmt.Errorf("cannot make the agent non-dumpable: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	version, err := agent.SelfHash()
	if err != nil {
		return err
	}
	removeOldBuilds(version, log)
	// berth's death is our stdin's EOF; SIGTERM (container stop) ends us too.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	return agent.ServeInstance(ctx, stdio{}, log, version)
}

// browser opens each URL on the host through berth.
func browser(urls []string) error {
	if len(urls) == 0 {
		return errors.New("usage: $BROWSER URL...")
	}
	for _, u := range urls {
		if err := agent.Browser(agent.BrowseDir, u); err != nil {
			return err
		}
	}
	return nil
}

// guard is the process the engine's exec starts. It runs the real agent as
// its child, in a session of its own, and stays as a tripwire: some engines
// (Incus) SIGKILL an exec's process when its client disconnects, and the
// agent must outlive that long enough to kill what it started. The kernel
// sends the agent SIGTERM when the guard dies (Pdeathsig), and the agent
// treats that as berth gone.
func guard() error {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	// Pdeathsig follows the thread that forked the child: keep it.
	runtime.LockOSThread()
	cmd := exec.Command(self, "serve", "--guarded")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return err
	}
	// The child has our stdio now; ours must not keep the pipes open.
	os.Stdin.Close()
	os.Stdout.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				os.Exit(ee.ExitCode())
			}
			return err
		}
	}
}

// removeOldBuilds deletes other agent builds beside this one. A build still
// running elsewhere keeps running: unlinking a running binary is safe.
func removeOldBuilds(version string, log *slog.Logger) {
	self := "agent-" + version[:16]
	old, _ := filepath.Glob(filepath.Join(agent.Dir, "agent-*"))
	for _, p := range old {
		if base := filepath.Base(p); base != self && !strings.Contains(base, ".") {
			if err := os.Remove(p); err == nil {
				log.Debug("removed old agent build", "path", p)
			}
		}
	}
}

// daemon is the agent behind its door. Its log goes to a file in the
// door's root-only directory, kept small.
func daemon(ctx context.Context) error {
	if err := agent.NoDump(); err != nil {
		return fmt.Errorf("cannot make the agent non-dumpable: %w", err)
	}
	w := io.Discard
	if f, err := os.OpenFile(filepath.Join(agent.DoorDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600); err == nil {
		defer f.Close()
		w = &cappedLog{f: f}
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	version, err := agent.SelfHash()
	if err != nil {
		return err
	}
	removeOldBuilds(version, log)
	// SIGTERM (the instance stopping) ends every connection's processes.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	err = agent.Daemon(ctx, os.Stdin, os.Stdout, log, version)
	if err != nil {
		log.Error("daemon", "err", err)
	}
	return err
}

// maxLog bounds the daemon's log file: past it, the file starts over.
const maxLog = 1 << 20

// cappedLog is a log file that starts over once it passes maxLog.
type cappedLog struct {
	mu sync.Mutex // guards the following
	f  *os.File
	n  int64
}

func (c *cappedLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n+int64(len(p)) > maxLog {
		if err := c.f.Truncate(0); err == nil {
			_, _ = c.f.Seek(0, io.SeekStart)
			c.n = 0
		}
	}
	n, err := c.f.Write(p)
	c.n += int64(n)
	return n, err
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error {
	os.Stdin.Close()
	return os.Stdout.Close()
}

// initProcess is an instance's main process: it keeps the instance up,
// reaps orphans when it is PID 1, and exits at once on SIGTERM so that
// stopping is fast.
func initProcess(ctx context.Context) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for {
		s := <-sigs
		if s != syscall.SIGCHLD {
			return nil
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
