// Command bench measures berth beside its peers, in one run and on one
// container, and prints a Markdown report; docs/benchmarks.md records one
// per backend.
//
//	make bench          (or: go run ./bench -backend docker|incus)
//	go run ./bench -memory   (only the memory scenarios)
//	go run ./bench -lsp      (only pylsp through berth lsp beside a raw pipe)
//	go run ./bench -features (only `up` of a Features config, cold and warm)
//	go run ./bench -plugins  (only a plugin call, exec and rpc mode)
//	go run ./bench -many     (only one berth serving 50 workspaces)
//	go run ./bench -sync     (only sync mode: initial copy beside the engine's, edit latency)
//
// Peers: the engine's CLI exec (`docker exec`, `incus exec`), an API exec
// from Go, berth's own plain-exec fallback (--no-agent), host loopback TCP,
// and a bare relay over one exec stream.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/agent/embedded"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/rpc"
)

var (
	berthBin  = flag.String("berth", "bin/berth", "berth binary (bin/berth-agent must sit beside it)")
	engineArg = flag.String("backend", "docker", "docker or incus")
	image     = flag.String("image", "", "image of the benchmark container (default: the busybox test image)")
	samples   = flag.Int("n", 300, "samples per latency figure")
	spawnFor  = flag.Duration("spawn", 5*time.Second, "duration of the spawn-throughput run")
	outMiB    = flag.Int("out", 256, "MiB written to stdout in the output-throughput run")
	tunnelMiB = flag.Int("tunnel", 256, "MiB each way in the tunnel-throughput runs")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// report collects the Markdown output.
type report struct{ b strings.Builder }

func (r *report) printf(format string, args ...any) {
	fmt.Fprintf(&r.b, format, args...)
	fmt.Fprintf(os.Stderr, format, args...) // progress while it runs
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1000) }

func latencyRow(r *report, name string, ds []time.Duration, f func(time.Duration) string) {
	r.printf("| %s | %s | %s | %d |\n", name, f(pct(ds, 0.5)), f(pct(ds, 0.9)), len(ds))
}

func measure(n int, f func() error) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

func run() error {
	ctx := context.Background()
	bin, err := filepath.Abs(*berthBin)
	if err != nil {
		return err
	}
	if *featuresOnly {
		img := *image
		if img == "" {
			img = "berth-test/busybox:1"
		}
		var r report
		err := featuresBench(&r, bin, img)
		fmt.Print(r.b.String())
		return err
	}
	eng, err := newEngine(ctx, *engineArg)
	if err != nil {
		return err
	}
	defer eng.close()
	d := eng.b
	if *lspOnly && *image == "" {
		*image = lspImage()
	}
	if *pluginsOnly && *image == "" {
		*image = pluginsImage()
	}
	if *image == "" {
		*image = eng.image
	}
	if *manyOnly {
		var r report
		r.printf("# %s: many workspaces\n\nMeasured %s on %s/%s, %d cores; %s; image %s.\n", eng.title,
			time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), eng.version, *image)
		err := manyBench(&r, bin)
		fmt.Print(r.b.String())
		return err
	}
	if *syncOnly {
		var r report
		r.printf("# %s: sync mode\n\nMeasured %s on %s/%s, %d cores; %s; image %s.\n\n", eng.title,
			time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), eng.version, *image)
		err := syncBench(&r, eng, bin)
		fmt.Print(r.b.String())
		return err
	}

	tmp, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ws := filepath.Join(tmp, "ws")
	os.Mkdir(ws, 0o755)
	fixture := filepath.Join(tmp, "echoserver")
	build := exec.Command("go", "build", "-ldflags=-s -w", "-o", fixture, "./testdata/echoserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build fixture: %v\n%s", err, out)
	}

	var r report
	r.printf("# %s\n\nMeasured %s on %s/%s, %d cores; %s; image %s.\n\n", eng.title,
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), eng.version, *image)

	ab, err := startBerth(ctx, bin, ws)
	if err != nil {
		return err
	}
	defer ab.close()
	var inst rpc.Instance
	if err := ab.call(ctx, "berth/up", struct{}{}, &inst); err != nil {
		return err
	}
	defer d.Remove(context.Background(), inst.ID)
	onSignal(func() {
		d.Remove(context.Background(), inst.ID)
		os.RemoveAll(tmp)
	})
	if !inst.Agent.Enabled {
		return fmt.Errorf("agent not enabled: %s", inst.Agent.Reason)
	}
	pb, err := startBerth(ctx, bin, ws, "--no-agent")
	if err != nil {
		return err
	}
	defer pb.close()
	if err := copyFile(ctx, d, inst.ID, fixture); err != nil {
		return err
	}
	if *lspOnly {
		err := lspBench(&r, eng, bin, ws, inst.ID, inst.Workdir)
		fmt.Print(r.b.String())
		return err
	}
	if *pluginsOnly {
		err := pluginsBench(&r, eng, ab, inst.ID)
		fmt.Print(r.b.String())
		return err
	}
	if *outputOnly {
		err := outputBench(&r, eng, bin, ws, inst.ID, inst.Workdir)
		fmt.Print(r.b.String())
		return err
	}
	if *memoryOnly {
		err := memory(&r, bin, ws)
		fmt.Print(r.b.String())
		return err
	}

	// 0. From a shell.
	if err := shell(&r, eng, bin, ws, inst.ID); err != nil {
		return err
	}
	if *shellOnly {
		fmt.Print(r.b.String())
		return nil
	}

	// 1. Exec round trip.
	r.printf("## Exec round trip: run `true`, get its exit code\n\n| path | p50 | p90 | n |\n|---|---|---|---|\n")
	trueRun := func(b *berthProc) func() error {
		return func() error {
			var res rpc.RunResult
			if err := b.call(ctx, "berth/run", rpc.ExecParams{Argv: []string{"true"}}, &res); err != nil {
				return err
			}
			if res.Code != 0 {
				return fmt.Errorf("true exited %d", res.Code)
			}
			return nil
		}
	}
	trueRun(ab)() // warm
	ds, err := measure(*samples, trueRun(ab))
	if err != nil {
		return err
	}
	latencyRow(&r, "**berth** `berth/run` over stdio, agent", ds, ms)
	n := max(*samples/5, 20)
	if ds, err = measure(n, trueRun(pb)); err != nil {
		return err
	}
	latencyRow(&r, "berth `berth/run`, plain-exec fallback (`--no-agent`)", ds, ms)
	if ds, err = measure(n, func() error { return eng.apiExec(ctx, inst.ID) }); err != nil {
		return err
	}
	latencyRow(&r, eng.apiExecName, ds, ms)
	if ds, err = measure(n, func() error { return eng.cliCommand(inst.ID, "true").Run() }); err != nil {
		return err
	}
	latencyRow(&r, eng.cliName, ds, ms)

	// 2. Spawn throughput.
	const workers = 16
	var spawned atomic.Int64
	deadline := time.Now().Add(*spawnFor)
	var wg sync.WaitGroup
	var spawnErr error
	var errOnce sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := trueRun(ab)(); err != nil {
					errOnce.Do(func() { spawnErr = err })
					return
				}
				spawned.Add(1)
			}
		}()
	}
	wg.Wait()
	if spawnErr != nil {
		return spawnErr
	}
	r.printf("\n## Spawn throughput\n\n%d concurrent callers on one berth connection, each running `true` with `berth/run` in a loop for %s: **%.0f processes/s**.\n",
		workers, *spawnFor, float64(spawned.Load())/spawnFor.Seconds())

	// 3. Output throughput.
	size := int64(*outMiB) << 20
	gen := []string{"/tmp/echoserver", "gen", strconv.FormatInt(size, 10)}
	rb, err := startRaw(bin, ws)
	if err != nil {
		return err
	}
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t0 := time.Now()
	got, err := rb.execCount(gen)
	wall := time.Since(t0)
	berthRate := float64(got) / wall.Seconds() / 1e6
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	rb.close()
	clientCPU := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	var berthCPU time.Duration
	if st := rb.cmd.ProcessState; st != nil {
		berthCPU = st.UserTime() + st.SystemTime()
	}
	fmt.Fprintf(os.Stderr, "output run: wall %v, client CPU %v, berth CPU %v (whole process life)\n", wall, clientCPU, berthCPU)
	if err != nil {
		return err
	}
	if got != size {
		return fmt.Errorf("output: got %d bytes, want %d", got, size)
	}
	t0 = time.Now()
	dc := eng.cliCommand(inst.ID, gen...)
	dc.Stdout = io.Discard
	if err := dc.Run(); err != nil {
		return err
	}
	dockerRate := float64(size) / time.Since(t0).Seconds() / 1e6
	r.printf("\n## Output throughput: %d MiB of text lines on stdout, written 64 KiB at a time\n\n| path | MB/s |\n|---|---|\n", *outMiB)
	r.printf("| **berth**: `berth/output` notifications, each decoded once by the client (paths mapped) | %.0f (%.0f%% of the CLI's) |\n", berthRate, 100*berthRate/dockerRate)
	r.printf("| %s `CMD > /dev/null` | %.0f |\n", eng.cliName, dockerRate)

	// 4. Tunnels.
	var srv rpc.ExecResult
	if err := ab.call(ctx, "berth/exec", rpc.ExecParams{Argv: []string{"/tmp/echoserver", "127.0.0.1:7100"}}, &srv); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	var fwd, slowFwd rpc.ForwardResult
	if err := ab.call(ctx, "berth/forward", rpc.ForwardParams{ContainerPort: 7100}, &fwd); err != nil {
		return err
	}
	sb, err := startBerth(ctx, bin, ws, "--no-fastpath")
	if err != nil {
		return err
	}
	defer sb.close()
	if err := sb.call(ctx, "berth/forward", rpc.ForwardParams{ContainerPort: 7100}, &slowFwd); err != nil {
		return err
	}
	hostSrv := exec.Command(fixture, "127.0.0.1:0")
	hostOut, _ := hostSrv.StdoutPipe()
	if err := hostSrv.Start(); err != nil {
		return err
	}
	defer hostSrv.Process.Kill()
	line, _ := bufio.NewReader(hostOut).ReadString('\n')
	hostAddr := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))

	tsize := int64(*tunnelMiB) << 20
	r.printf("\n## Tunnels: %d MiB each way, and a 1-byte ping-pong\n\n| path | up MB/s | down MB/s | RTT p50 | RTT p90 |\n|---|---|---|---|---|\n", *tunnelMiB)
	dialTCP := func(addr string) func() (io.ReadWriteCloser, error) {
		return func() (io.ReadWriteCloser, error) { return net.Dial("tcp", addr) }
	}
	type peer struct {
		name string
		dial func() (io.ReadWriteCloser, error)
	}
	peers := []peer{
		{"**berth** `berth/forward`, fast path (local engine, root: dialled from the container's network namespace)", dialTCP(fmt.Sprintf("127.0.0.1:%d", fwd.HostPort))},
		{"**berth** `berth/forward` over the agent's exec stream (`--no-fastpath`, as with a remote engine)", dialTCP(fmt.Sprintf("127.0.0.1:%d", slowFwd.HostPort))},
		{eng.relayName, func() (io.ReadWriteCloser, error) { return eng.relay(ctx, inst.ID, "127.0.0.1:7100") }},
		{"host loopback TCP (the physical limit)", dialTCP(hostAddr)},
	}
	for _, p := range peers {
		up, err := tunnelUp(p.dial, tsize)
		if err != nil {
			return fmt.Errorf("%s up: %w", p.name, err)
		}
		down, err := tunnelDown(p.dial, tsize)
		if err != nil {
			return fmt.Errorf("%s down: %w", p.name, err)
		}
		rtts, err := pingPong(p.dial, *samples*5)
		if err != nil {
			return fmt.Errorf("%s ping: %w", p.name, err)
		}
		r.printf("| %s | %.0f | %.0f | %s | %s |\n", p.name, up, down, us(pct(rtts, 0.5)), us(pct(rtts, 0.9)))
	}

	// 5. Agent start.
	// The build berth would use: one beside it, else the one it carries.
	quiet := slog.New(slog.DiscardHandler)
	agents, err := embedded.Agents()
	if err != nil {
		return err
	}
	if b, err := agent.Open(filepath.Join(filepath.Dir(bin), "berth-agent")); err == nil {
		agents[b.Platform()] = b
	}
	abin, err := agents.For("linux/" + runtime.GOARCH)
	if err != nil {
		return err
	}
	abytes, err := abin.Read()
	if err != nil {
		return err
	}
	cold, err := measure(5, func() error {
		if err := eng.cliCommand(inst.ID, "sh", "-c", "rm -f /.berth/agent-*").Run(); err != nil {
			return err
		}
		c, err := agent.Start(ctx, d, inst.ID, abin, quiet, agent.Options{})
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return err
	}
	warm, err := measure(10, func() error {
		c, err := agent.Start(ctx, d, inst.ID, abin, quiet, agent.Options{})
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		return err
	}
	reattach, err := measure(5, func() error {
		b, err := startBerth(ctx, bin, ws)
		if err != nil {
			return err
		}
		defer b.close()
		return trueRun(b)()
	})
	if err != nil {
		return err
	}
	r.printf("\n## Agent start (%d KiB binary)\n\n| what | p50 | p90 | n |\n|---|---|---|---|\n", len(abytes)>>10)
	latencyRow(&r, "cold: copy the agent in, start it, handshake", cold, ms)
	latencyRow(&r, "warm: start the agent already in the container, handshake", warm, ms)
	latencyRow(&r, "reattach: start a new `berth --stdio`, initialize, first `berth/run`", reattach, ms)

	// 6. Memory.
	r.printf("\n## Memory\n\n| process | RSS now | peak RSS |\n|---|---|---|\n")
	rss, hwm := procMem(ab.cmd.Process.Pid)
	r.printf("| berth after the runs above | %s | %s |\n", rss, hwm)
	idle, err := startBerth(ctx, bin, ws)
	if err != nil {
		return err
	}
	trueRun(idle)()
	rss, hwm = procMem(idle.cmd.Process.Pid)
	idle.close()
	r.printf("| berth idle (one connection, one `berth/run`) | %s | %s |\n", rss, hwm)
	if pid := findAgent(); pid > 0 {
		rss, hwm = procMem(pid)
		r.printf("| berth-agent in the container, after the runs above | %s | %s |\n", rss, hwm)
	}

	// 7. Memory under load.
	err = memory(&r, bin, ws)
	fmt.Print(r.b.String())
	return err
}

// onSignal runs cleanup and exits when the run is interrupted or killed
// with SIGTERM (as by timeout), so that no container is left behind.
func onSignal(cleanup func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-c
		cleanup()
		os.Exit(1)
	}()
}

// berthProc is a running `berth --stdio` and a client on its pipes.
type berthProc struct {
	cmd *exec.Cmd
	c   *rpc.Client
}

type pipes struct {
	io.ReadCloser
	io.WriteCloser
}

func (p pipes) Close() error {
	p.WriteCloser.Close()
	return p.ReadCloser.Close()
}

func startBerth(ctx context.Context, bin, ws string, args ...string) (*berthProc, error) {
	cmd := exec.Command(bin, append([]string{"--stdio", "--log-level", "error", "--backend", *engineArg}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+*image)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &berthProc{cmd: cmd}
	b.c = rpc.NewClient(ctx, pipes{out, in}, slog.New(slog.DiscardHandler), nil)
	if err := b.call(ctx, "initialize", rpc.InitializeParams{RootPath: ws}, nil); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *berthProc) call(ctx context.Context, method string, params, result any) error {
	return b.c.Call(ctx, method, params, result)
}

func (b *berthProc) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if b.c.Call(ctx, "shutdown", nil, nil) == nil {
		b.c.Notify(ctx, "exit", nil)
	}
	b.c.Close()
	b.cmd.Wait()
}

func copyFile(ctx context.Context, d backends.Backend, id, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := newTar(&buf)
	tw.add(filepath.Base(path), data)
	tw.close()
	return d.CopyTo(ctx, id, "/tmp", &buf)
}

func closeWrite(c io.ReadWriteCloser) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

var chunk = bytes.Repeat([]byte("berth-tunnel-benchmark-0123456789"), 8192)

func tunnelUp(dial func() (io.ReadWriteCloser, error), size int64) (float64, error) {
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	if _, err := c.Write([]byte{'s'}); err != nil {
		return 0, err
	}
	for left := size; left > 0; {
		n := min(int64(len(chunk)), left)
		if _, err := c.Write(chunk[:n]); err != nil {
			return 0, err
		}
		left -= n
	}
	closeWrite(c)
	ack := make([]byte, 2)
	if _, err := io.ReadFull(c, ack); err != nil || string(ack) != "ok" {
		return 0, fmt.Errorf("sink ack %q: %v", ack, err)
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

func tunnelDown(dial func() (io.ReadWriteCloser, error), size int64) (float64, error) {
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	t0 := time.Now()
	req := make([]byte, 9)
	req[0] = 'g'
	binary.BigEndian.PutUint64(req[1:], uint64(size))
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, size), make([]byte, 256<<10))
	if err != nil || n != size {
		return 0, fmt.Errorf("read %d of %d: %v", n, size, err)
	}
	return float64(size) / time.Since(t0).Seconds() / 1e6, nil
}

func pingPong(dial func() (io.ReadWriteCloser, error), n int) ([]time.Duration, error) {
	c, err := dial()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if _, err := c.Write([]byte{'e'}); err != nil {
		return nil, err
	}
	b := []byte{'x'}
	return measure(n, func() error {
		if _, err := c.Write(b); err != nil {
			return err
		}
		_, err := io.ReadFull(c, b)
		return err
	})
}

// procMem reads a host process's current and peak RSS.
func procMem(pid int) (string, string) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?", "?"
	}
	var rss, hwm string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.Atoi(f[1])
		v := fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// findAgent finds the serving agent among host processes (the engine is
// local here).
func findAgent() int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range dirs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) == 3 && strings.HasPrefix(args[0], agent.Dir+"/agent-") && args[1] == "serve" && args[2] == "--guarded" {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			return pid
		}
	}
	return 0
}
