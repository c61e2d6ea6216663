package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthdev/berth/rpc"
)

var (
	manyOnly = flag.Bool("many", false, "only measure one berth serving many workspaces (-workspaces of them), each with a running container, agent, process and tunnel")
	manyN    = flag.Int("workspaces", 50, "workspaces in the -many run")
	manyPar  = flag.Int("many-parallel", 4, "berth/up calls at once in the -many run")
)

// manyProc is a berth whose stderr is kept, for the goroutine dump that
// SIGQUIT makes it print as it exits.
type manyProc struct {
	*berthProc
	stderr bytes.Buffer
}

func startMany(ctx context.Context, bin, ws string) (*manyProc, error) {
	cmd := exec.Command(bin, "--stdio", "--log-level", "error", "--backend", *engineArg)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+*image, "GOTRACEBACK=all")
	p := &manyProc{}
	cmd.Stderr = &p.stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.berthProc = &berthProc{cmd: cmd, c: rpc.NewClient(ctx, pipes{out, in}, slog.New(slog.DiscardHandler), nil)}
	if err := p.call(ctx, "initialize", rpc.InitializeParams{RootPath: ws}, nil); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// manyFigures are one berth's resources at one moment.
type manyFigures struct {
	rss, hwm            int64
	fds, threads, gorts int
}

// sample reads p's resources, then kills it with SIGQUIT to count its
// goroutines from the dump: p is gone afterwards.
func (p *manyProc) sample() (manyFigures, error) {
	pid := p.cmd.Process.Pid
	f := manyFigures{rss: procStatus(pid, "VmRSS"), hwm: procStatus(pid, "VmHWM")}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return f, err
	}
	f.fds = len(fds)
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	f.threads = len(tasks)
	p.cmd.Process.Signal(syscall.SIGQUIT)
	p.c.Close()
	p.cmd.Wait()
	f.gorts = strings.Count(p.stderr.String(), "\ngoroutine ")
	if strings.HasPrefix(p.stderr.String(), "goroutine ") {
		f.gorts++
	}
	if f.gorts == 0 {
		return f, fmt.Errorf("no goroutine dump on SIGQUIT")
	}
	return f, nil
}

// manyBench brings up *manyN workspaces in one berth, each with a running
// container, the agent, a process (busybox httpd) and a tunnel to it, and
// reports what one idle berth and the loaded one hold.
func manyBench(r *report, bin string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "berth-bench-many-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wss := make([]string, *manyN)
	for i := range wss {
		wss[i] = filepath.Join(tmp, fmt.Sprintf("ws%02d", i))
		if err := os.MkdirAll(wss[i], 0o755); err != nil {
			return err
		}
		os.WriteFile(filepath.Join(wss[i], "index.html"), []byte(fmt.Sprintf("workspace %d\n", i)), 0o644)
	}
	removeAll := func() {
		p, err := startBerth(ctx, bin, wss[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "many: cleanup:", err)
			return
		}
		defer p.close()
		forEach(wss, *manyPar, func(_ int, ws string) error {
			return p.call(ctx, "berth/down", rpc.DownParams{Workspace: ws, Remove: true}, nil)
		})
	}
	defer removeAll()
	onSignal(func() { removeAll(); os.RemoveAll(tmp) })

	idle, err := startMany(ctx, bin, wss[0])
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	base, err := idle.sample()
	if err != nil {
		return fmt.Errorf("idle berth: %w", err)
	}

	p, err := startMany(ctx, bin, wss[0])
	if err != nil {
		return err
	}
	t0 := time.Now()
	err = forEach(wss, *manyPar, func(i int, ws string) error {
		var inst rpc.Instance
		if err := p.call(ctx, "berth/up", rpc.UpParams{Workspace: ws}, &inst); err != nil {
			return err
		}
		if !inst.Agent.Enabled {
			return fmt.Errorf("agent not enabled: %s", inst.Agent.Reason)
		}
		var res rpc.ExecResult
		if err := p.call(ctx, "berth/exec", rpc.ExecParams{Workspace: ws, Argv: []string{"httpd", "-f", "-p", "127.0.0.1:8000", "-h", "."}}, &res); err != nil {
			return err
		}
		var fwd rpc.ForwardResult
		err := p.call(ctx, "berth/forward", rpc.ForwardParams{Workspace: ws, ContainerPort: 8000}, &fwd)
		if err != nil {
			return err
		}
		// httpd may not listen yet: the tunnel resets until it does.
		var body string
		for t0 := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			body, err = fetch(fmt.Sprintf("http://%s:%d/index.html", fwd.Host, fwd.HostPort))
			if err == nil || time.Since(t0) > 30*time.Second {
				break
			}
		}
		if want := fmt.Sprintf("workspace %d\n", i); err != nil || body != want {
			return fmt.Errorf("tunnel of workspace %d: %q, %v", i, body, err)
		}
		return nil
	})
	upAll := time.Since(t0)
	if err != nil {
		p.close()
		return err
	}
	time.Sleep(2 * time.Second) // let the last starts settle
	loaded, err := p.sample()
	if err != nil {
		return fmt.Errorf("loaded berth: %w", err)
	}

	n := int64(*manyN)
	r.printf("\n## Many workspaces in one berth\n\n")
	r.printf("One `berth --stdio` brings up %d workspaces, %d at a time (%s in all, %s a workspace): each a running container with the agent, a process (busybox httpd) and a tunnel to it, fetched through the tunnel. Figures from /proc and a SIGQUIT goroutine dump; beside them an idle berth after initialize. MB = 10^6 bytes.\n\n",
		*manyN, *manyPar, upAll.Round(time.Second), (upAll / time.Duration(n)).Round(10*time.Millisecond))
	r.printf("| | idle berth | %d workspaces | per workspace |\n|---|---|---|---|\n", *manyN)
	r.printf("| RSS | %s | %s | %s |\n", mb(base.rss), mb(loaded.rss), mb((loaded.rss-base.rss)/n))
	r.printf("| peak RSS (VmHWM) | %s | %s | – |\n", mb(base.hwm), mb(loaded.hwm))
	r.printf("| file descriptors | %d | %d | %.1f |\n", base.fds, loaded.fds, float64(loaded.fds-base.fds)/float64(n))
	r.printf("| goroutines | %d | %d | %.1f |\n", base.gorts, loaded.gorts, float64(loaded.gorts-base.gorts)/float64(n))
	r.printf("| OS threads | %d | %d | – |\n", base.threads, loaded.threads)
	return nil
}

// forEach runs f on every item, par at a time, and returns the first error.
func forEach(items []string, par int, f func(int, string) error) error {
	sem := make(chan struct{}, max(1, par))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i, it); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", it, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func fetch(url string) (string, error) {
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s", resp.Status)
	}
	return string(data), err
}
