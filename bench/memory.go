package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The memory scenarios. Each runs on a fresh `berth --stdio`, so that its
// peak RSS (VmHWM) is the scenario's own, and each must stay under
// memBound.
var (
	memoryOnly = flag.Bool("memory", false, "run only the memory scenarios")
	noisyProcs = flag.Int("noisy", 40, "processes writing as fast as they can in the stalled-client scenario")
	plainProcs = flag.Int("noisy-plain", 8, "the same with plain engine exec, whose starts are slower")
	stallFor   = flag.Duration("stall", 10*time.Second, "how long the stalled client leaves stdout unread")
	pipelineN  = flag.Int("pipeline", 50000, "requests written without reading replies")
	bigMB      = flag.Int("big", 30, "MB in the one big request")
)

// memBound is what berth may reach in any scenario, in bytes.
const memBound = 150e6

// memResult is one scenario's figures.
type memResult struct {
	peak  int64  // VmHWM, bytes
	after int64  // VmRSS at the end, bytes; 0 when not measured
	note  string // what else was seen
}

// memory runs the three scenarios against bin on workspace ws, whose
// container is up, and reports them.
func memory(r *report, bin, ws string) error {
	r.printf("\n## Memory under load (bound: %.0f MB)\n\n", memBound/1e6)
	r.printf("Each scenario runs on a fresh `berth --stdio`. Peak RSS is its VmHWM; the ratio is the larger of peak and after over the bound. MB = 10^6 bytes.\n\n")
	r.printf("| scenario | peak RSS | RSS after | bound | ratio |\n|---|---|---|---|---|\n")
	type scenario struct {
		key, name string
		run       func(bin, ws string) (memResult, error)
	}
	scenarios := []scenario{
		{"(a) stalled client", fmt.Sprintf("%d `berth/exec` of `yes`; the client reads nothing for %s, then reads the replies, kills the processes and reads everything", *noisyProcs, *stallFor), noisy(noisyProcs)},
		{"(a′) stalled client, plain exec", fmt.Sprintf("the same with %d processes and `--no-agent`: output over the engine's exec streams", *plainProcs), noisy(plainProcs, "--no-agent")},
		{"(b) pipelined requests", fmt.Sprintf("%d pipelined `berth/toContainer` requests written without reading replies, then every reply read", *pipelineN), pipelined},
		{"(c) one big request", fmt.Sprintf("one %d MB `berth/toContainer` request; RSS after is 5 s after its reply", *bigMB), bigRequest},
	}
	var over, failed []string
	for _, s := range scenarios {
		res, err := s.run(bin, ws)
		if err != nil {
			peak := "failed"
			if res.peak > 0 {
				peak = mb(res.peak) + " before it failed"
			}
			r.printf("| %s: %s (failed: %v) | %s | – | %s | – |\n", s.key, s.name, err, peak, mb(memBound))
			failed = append(failed, s.key)
			continue
		}
		after := "–"
		if res.after > 0 {
			after = mb(res.after)
		}
		worst := max(res.peak, res.after)
		r.printf("| %s: %s | %s | %s | %s | %.2f |\n", s.key, s.name, mb(res.peak), after, mb(memBound), float64(worst)/memBound)
		if res.note != "" {
			fmt.Fprintf(os.Stderr, "memory: %s: %s\n", s.key, res.note)
		}
		if worst > memBound {
			over = append(over, s.key)
		}
	}
	if len(over) > 0 {
		r.printf("\nOver the bound: %s.\n", strings.Join(over, "; "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("memory: failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// memIdle is how long a memory scenario waits for berth to send anything
// once it reads again.
const memIdle = time.Minute

// startMem starts a berth for a memory scenario.
func startMem(bin, ws string, args ...string) (*rawBerth, error) {
	b, err := startRaw(bin, ws, args...)
	if err != nil {
		return nil, err
	}
	b.idle = memIdle
	return b, nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// procStatus reads one kB field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// noisy starts processes that write as fast as they can and leaves stdout
// unread for a while, from the start, so that some of the replies that
// name the processes are held up behind output too; then it reads the
// replies, kills the processes and reads everything. Every process's
// output must end before its exit. args go to berth.
func noisy(procs *int, args ...string) func(bin, ws string) (memResult, error) {
	return func(bin, ws string) (memResult, error) { return runNoisy(bin, ws, *procs, args) }
}

func runNoisy(bin, ws string, procs int, args []string) (memResult, error) {
	b, err := startMem(bin, ws, args...)
	if err != nil {
		return memResult{}, err
	}
	defer b.close()
	pid := b.cmd.Process.Pid
	argv := []string{"yes", "berth memory benchmark: one line of output after another"}
	reqs := map[int]bool{}
	for range procs {
		id, err := b.send("berth/exec", map[string]any{"argv": argv})
		if err != nil {
			return memResult{}, err
		}
		reqs[id] = true
	}
	time.Sleep(*stallFor)
	stalled := procStatus(pid, "VmRSS")

	var pids []string
	bytes := map[string]int64{}
	for len(pids) < procs {
		f, err := b.read()
		if err != nil {
			return memResult{}, err
		}
		switch {
		case f.ID != nil && reqs[*f.ID]:
			if f.Error != nil {
				return memResult{}, fmt.Errorf("berth/exec: %s", f.Error.Message)
			}
			var res struct{ PID string }
			if err := json.Unmarshal(f.Result, &res); err != nil {
				return memResult{}, err
			}
			pids = append(pids, res.PID)
		case f.Method == "berth/output":
			bytes[f.Params.PID] += int64(len(f.Params.Text))
		}
	}

	// The signals are written while berth's output is still held up: it
	// must go on reading requests meanwhile.
	first := b.id + 1
	b.id += len(pids)
	sent := make(chan error, 1)
	go func() {
		for i, p := range pids {
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"berth/signal","params":{"pid":%q,"signal":"KILL"}}`, first+i, p)
			if _, err := fmt.Fprintf(b.in, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	exited := map[string]bool{}
	for replies := 0; len(exited) < len(pids) || replies < len(pids); {
		f, err := b.read()
		if err != nil {
			return memResult{}, err
		}
		switch {
		case f.ID != nil && *f.ID >= first && *f.ID < first+len(pids):
			if f.Error != nil {
				return memResult{}, fmt.Errorf("berth/signal %s: %s", pids[*f.ID-first], f.Error.Message)
			}
			replies++
		case f.Method == "berth/output":
			if exited[f.Params.PID] {
				return memResult{}, fmt.Errorf("output for %s after its exit", f.Params.PID)
			}
			bytes[f.Params.PID] += int64(len(f.Params.Text))
		case f.Method == "berth/exit":
			exited[f.Params.PID] = true
		}
	}
	if err := <-sent; err != nil {
		return memResult{}, err
	}
	var total int64
	for _, n := range bytes {
		total += n
	}
	return memResult{
		peak: procStatus(pid, "VmHWM"),
		note: fmt.Sprintf("RSS %s at the end of the stall; %s of output read in all", mb(stalled), mb(total)),
	}, nil
}

// pipelined writes many requests without reading a reply, until they are
// all written or berth stops reading them, then reads every reply.
func pipelined(bin, ws string) (memResult, error) {
	b, err := startMem(bin, ws)
	if err != nil {
		return memResult{}, err
	}
	defer b.close()
	pid := b.cmd.Process.Pid
	first := b.id + 1
	b.id += *pipelineN
	var wrote atomic.Int64
	done := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(b.in, 64<<10)
		params := fmt.Sprintf(`{"paths":[%q]}`, ws+"/main.go")
		for i := range *pipelineN {
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"berth/toContainer","params":%s}`, first+i, params)
			if _, err := fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
				done <- err
				return
			}
			wrote.Add(1)
		}
		done <- w.Flush()
	}()

	// Wait until every request is written, or until berth has stopped
	// taking them for a while: then it is holding them back.
	var werr error
	written := false
	last, still := int64(-1), time.Now()
	for !written && time.Since(still) < 2*time.Second {
		select {
		case werr = <-done:
			written = true
		case <-time.After(100 * time.Millisecond):
			if n := wrote.Load(); n != last {
				last, still = n, time.Now()
			}
		}
	}
	if werr != nil {
		return memResult{}, werr
	}
	note := "every request written before the first reply was read"
	if !written {
		note = fmt.Sprintf("berth stopped reading after %d requests until replies were read", wrote.Load())
	}

	for got := 0; got < *pipelineN; {
		f, err := b.read()
		if err != nil {
			return memResult{peak: procStatus(pid, "VmHWM")}, fmt.Errorf("after %d of %d replies: %w", got, *pipelineN, err)
		}
		if f.ID != nil && *f.ID >= first && *f.ID < first+*pipelineN {
			if f.Error != nil {
				return memResult{}, fmt.Errorf("reply %d: %s", *f.ID, f.Error.Message)
			}
			got++
		}
	}
	if !written {
		if werr = <-done; werr != nil {
			return memResult{}, werr
		}
	}
	return memResult{peak: procStatus(pid, "VmHWM"), note: note}, nil
}

// bigRequest sends one request with a path of bigMB megabytes (one no
// mount covers, so the reply is small), and measures RSS 5 s after the
// reply.
func bigRequest(bin, ws string) (memResult, error) {
	b, err := startMem(bin, ws)
	if err != nil {
		return memResult{}, err
	}
	defer b.close()
	pid := b.cmd.Process.Pid
	path := "/nowhere/" + strings.Repeat("a", *bigMB*1e6)
	f, err := b.call("berth/toContainer", map[string]any{"paths": []string{path}})
	if err != nil {
		return memResult{}, err
	}
	if string(f.Result) != `{"paths":[null]}` {
		return memResult{}, fmt.Errorf("unexpected result %.100s", f.Result)
	}
	time.Sleep(5 * time.Second)
	return memResult{peak: procStatus(pid, "VmHWM"), after: procStatus(pid, "VmRSS")}, nil
}
