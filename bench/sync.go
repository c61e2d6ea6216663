package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
)

var (
	syncOnly  = flag.Bool("sync", false, "run only the sync-mode figures: the initial copy of a generated workspace beside the engine's own copy, and the latency of a host edit")
	syncFiles = flag.Int("sync-files", 10000, "files in the generated sync workspace")
	syncMB    = flag.Int("sync-mb", 200, "MB in the generated sync workspace")
	syncRuns  = flag.Int("sync-runs", 3, "initial copies timed on each side")
	syncLoad  = flag.Int("sync-load", 0, "busy processes on the host while host edits are timed, to time them under load")
)

// makeTree writes files files of bytes in total under dir, 100 to a
// directory, in sizes that vary as source trees do.
func makeTree(dir string, files int, bytes int64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2*bytes/int64(files)+1)
	for i := range buf {
		buf[i] = byte(rng.IntN(256))
	}
	for i := range files {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.dat", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
		}
		n := rng.IntN(len(buf))
		if err := os.WriteFile(p, buf[:n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

var copiedIn = regexp.MustCompile(`sync: copied (\d+) files \(.*\) in (\S+)$`)

func syncBench(r *report, eng *engine, bin string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "berth-bench-sync-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ws := filepath.Join(tmp, "ws")
	if err := makeTree(ws, *syncFiles, int64(*syncMB)*1e6); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`{"image": %q, "workspaceMount": "copy", "shutdownAction": "none", "customizations": {"berth": {"sync": {"maxBytes": 4000000000}}}}`, *image)
	if err := os.WriteFile(filepath.Join(ws, ".devcontainer.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	r.printf("## Sync mode: initial copy of %d files, %d MB\n\n", *syncFiles, *syncMB)

	// berth: every up of a fresh berth process copies the whole
	// workspace in; berth reports how long the copy took.
	var (
		berthTimes = map[string][]time.Duration{}
		id, wd     string
	)
	modes := []struct{ name, flag string }{
		{"berth sync mode, full copy at `berth up` (the agent's `untar` on the engine's exec)", ""},
	}
	// The engine's own copy, into the same container: on Incus the
	// quicker of two, as issue 16 asks. Each berth copy is followed by one
	// of each peer's, so that both sides see the same load.
	type peerCopy struct {
		name string
		cmd  func() *exec.Cmd
	}
	var peers []peerCopy
	setPeers := func(id string) {
		peers = []peerCopy{{"`tar c . | docker cp - CTR:/dir`", func() *exec.Cmd {
			return exec.Command("sh", "-c", "tar c . | docker cp - "+id+":/peer", "sh")
		}}}
		if eng.b.Name() == incus.Name {
			name, _, _ := strings.Cut(id, ".")
			peers = []peerCopy{
				{"`tar c . | incus exec CTR -- tar x -C /dir`", func() *exec.Cmd {
					return exec.Command("sh", "-c", "tar c . | incus exec "+name+" -- tar x -C /peer", "sh")
				}},
				{"`incus file push -r . CTR/dir`", func() *exec.Cmd {
					return exec.Command("incus", "file", "push", "-r", "-q", ".", name+"/peer/")
				}},
			}
		}
	}
	var peerTimes [][]time.Duration
	runPeers := func() error {
		if peerTimes == nil {
			peerTimes = make([][]time.Duration, len(peers))
		}
		for i, p := range peers {
			if out, err := eng.cliCommand(id, "sh", "-c", "rm -rf /peer && mkdir /peer").CombinedOutput(); err != nil {
				return fmt.Errorf("emptying /peer: %v: %s", err, out)
			}
			c := p.cmd()
			c.Dir = ws
			t0 := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", p.name, err, out)
			}
			peerTimes[i] = append(peerTimes[i], time.Since(t0))
		}
		return nil
	}
	for i := range 1 + len(modes)**syncRuns {
		mode := modes[max(i-1, 0)/max(*syncRuns, 1)]
		var mu sync.Mutex
		var took time.Duration
		notify := func(method string, params json.RawMessage) {
			if method != "window/logMessage" {
				return
			}
			var m struct{ Message string }
			json.Unmarshal(params, &m)
			if sm := copiedIn.FindStringSubmatch(m.Message); sm != nil {
				d, _ := time.ParseDuration(sm[2])
				mu.Lock()
				took = d
				mu.Unlock()
			}
		}
		b, err := startBerthNotify(ctx, bin, ws, notify, mode.flag)
		if err != nil {
			return err
		}
		var inst rpc.Instance
		t0 := time.Now()
		err = b.call(ctx, "berth/up", struct{}{}, &inst)
		upTook := time.Since(t0)
		b.close()
		if err != nil {
			return err
		}
		id, wd = inst.ID, inst.Workdir
		if i == 0 {
			setPeers(id)
			defer eng.b.Remove(context.Background(), id)
			onSignal(func() { eng.b.Remove(context.Background(), id); os.RemoveAll(tmp) })
			continue // the first up also makes the container
		}
		mu.Lock()
		if took == 0 {
			took = upTook
		}
		berthTimes[mode.name] = append(berthTimes[mode.name], took)
		mu.Unlock()
		// The next up copies into an empty directory, as the peer does.
		if out, err := eng.cliCommand(id, "sh", "-c", "rm -rf "+wd+" && mkdir -p "+wd).CombinedOutput(); err != nil {
			return fmt.Errorf("emptying %s: %v: %s", wd, err, out)
		}
		if err := runPeers(); err != nil {
			return err
		}
	}

	eng.cliCommand(id, "rm", "-rf", "/peer").Run()
	best := time.Duration(0)
	r.printf("| copy | median | runs |\n|---|---|---|\n")
	for i, ts := range peerTimes {
		p := peers[i]
		m := pct(ts, 0.5)
		if best == 0 || m < best {
			best = m
		}
		r.printf("| %s | %s | %d |\n", p.name, ms(m), len(ts))
	}
	for _, m := range modes {
		ts := berthTimes[m.name]
		if len(ts) == 0 || best == 0 {
			continue
		}
		r.printf("| %s | %s (%.2f× the quicker peer) | %d |\n", m.name, ms(pct(ts, 0.5)), float64(pct(ts, 0.5))/float64(best), len(ts))
	}
	r.printf("\n")

	// The latency of a host edit: a process inside polls the file every
	// 5 ms and prints what changed; the clock runs from the host's write
	// to that line's berth/output.
	seen := make(chan string, 16)
	b, err := startBerthNotify(ctx, bin, ws, func(method string, params json.RawMessage) {
		if method != "berth/output" {
			return
		}
		var o rpc.OutputParams
		json.Unmarshal(params, &o)
		for _, l := range strings.Split(strings.TrimSpace(o.Text), "\n") {
			seen <- l
		}
	}, "")
	if err != nil {
		return err
	}
	defer b.close()
	var inst rpc.Instance
	if err := b.call(ctx, "berth/up", struct{}{}, &inst); err != nil {
		return err
	}
	var ex rpc.ExecResult
	if err := b.call(ctx, "berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c",
		`echo ready; last=; while :; do c=$(cat d000/edited 2>/dev/null); if [ "$c" != "$last" ]; then echo "$c"; last=$c; fi; sleep 0.005; done`}}, &ex); err != nil {
		return err
	}
	defer b.call(ctx, "berth/signal", map[string]any{"pid": ex.PID, "signal": "KILL"}, nil)
	waitFor := func(want string) error {
		for {
			select {
			case l := <-seen:
				if l == want {
					return nil
				}
			case <-time.After(10 * time.Second):
				return fmt.Errorf("%q never showed up inside", want)
			}
		}
	}
	if err := waitFor("ready"); err != nil {
		return err
	}
	n := min(*samples, 40)
	stopLoad := startLoad(*syncLoad)
	defer stopLoad()
	var lat []time.Duration
	for i := range n {
		want := fmt.Sprintf("edit-%d", i)
		t0 := time.Now()
		if err := os.WriteFile(filepath.Join(ws, "d000", "edited"), []byte(want+"\n"), 0o644); err != nil {
			return err
		}
		if err := waitFor(want); err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(100 * time.Millisecond)
	}
	stopLoad()
	r.printf("## Sync mode: a host edit visible inside\n\nFrom the host's write to the `berth/output` line of a process inside that polls the file every 5 ms; %d busy processes on the host meanwhile.\n\n| | p50 | p90 | n |\n|---|---|---|---|\n", *syncLoad)
	latencyRow(r, "host edit → container", lat, ms)
	r.printf("\n")
	return nil
}

// startLoad starts n busy processes on the host; the function it returns
// stops them and waits, and may be called again.
func startLoad(n int) func() {
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if c.Start() == nil {
			cmds = append(cmds, c)
		}
	}
	return func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
		cmds = nil
	}
}

// startBerthNotify starts berth on the sync bench's workspace, handing
// notifications to notify.
func startBerthNotify(ctx context.Context, bin, ws string, notify rpc.NotificationFunc, flag string) (*berthProc, error) {
	args := []string{"--stdio", "--log-level", "error", "--backend", *engineArg}
	if flag != "" {
		args = append(args, flag)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &berthProc{cmd: cmd}
	b.c = rpc.NewClient(ctx, pipes{out, in}, slog.New(slog.DiscardHandler), notify)
	if err := b.call(ctx, "initialize", rpc.InitializeParams{RootPath: ws}, nil); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}
