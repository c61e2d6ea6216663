package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	outputOnly   = flag.Bool("output", false, "run only the output figures: the engine's CLI, berth exec and berth/output side by side")
	outputRounds = flag.Int("output-rounds", 7, "rounds of the output figures; each runs every path once, interleaved")
	outputPaths  = flag.String("output-paths", "cli,exec,editor", "the output figures' paths, for profiling one")
	outputBefore = flag.String("output-before", "", "another berth binary (an earlier build) whose berth/output runs beside this one's")
)

// outputKind is one kind of text the process writes.
type outputKind struct {
	name string
	line string // without its newline; 63 bytes, so lines are 64
}

// pad makes s 63 bytes long.
func pad(s string) string {
	if len(s) >= 63 {
		return s[:63]
	}
	return s + strings.Repeat(".", 63-len(s))
}

// outputBench puts a process's stdout through three paths side by side:
// the engine's CLI exec to /dev/null, `berth exec` from a shell to
// /dev/null (the direct path), and berth/output notifications to an
// editor-like client (one `berth --stdio`, each frame decoded once). Each
// round runs every path once per kind of text, in an order shuffled each
// round, so that the shared machine's load falls on all alike. It reports
// the median rate over the rounds, the median of each round's ratio to the
// engine's CLI, and berth's CPU time per GiB, which the load moves less.
func outputBench(r *report, eng *engine, bin, ws, id, workdir string) error {
	size := int64(*outMiB) << 20
	kinds := []outputKind{
		{"build output, paths outside the mounts (`/workspaces/proj/…`)", "/workspaces/proj/src/main.go:42:7: a line of build output, 64 bytes"},
		{"build output, paths under the workspace mount (each rewritten)", pad(workdir + "/src/main.go:42:7: build output")},
		{"plain text, no `/`", pad("a line of plain text with no path in it at all, just words")},
	}
	berth := func(args ...string) []string {
		return append([]string{bin, "--backend", *engineArg, "--workspace", ws}, args...)
	}
	env := append(os.Environ(), "BERTH_IMAGE="+*image)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	run := func(cmd *exec.Cmd) (time.Duration, time.Duration, error) {
		cmd.Stdout = devnull
		cmd.Stderr = os.Stderr
		t0 := time.Now()
		err := cmd.Run()
		wall := time.Since(t0)
		if err != nil {
			return 0, 0, err
		}
		st := cmd.ProcessState
		return wall, st.UserTime() + st.SystemTime(), nil
	}
	rb, err := startRaw(bin, ws)
	if err != nil {
		return err
	}
	defer rb.close()
	paths := []string{eng.cliName + " `CMD > /dev/null`", "`berth exec -- CMD > /dev/null` (direct)", "`berth/output` to an editor-like client"}
	const cliPath, execPath, editorPath, beforePath = 0, 1, 2, 3
	pathKeys := []string{"cli", "exec", "editor", "before"}
	clients := map[int]*rawBerth{editorPath: rb}
	if *outputBefore != "" {
		before, err := startRaw(*outputBefore, ws)
		if err != nil {
			return err
		}
		defer before.close()
		clients[beforePath] = before
		paths = append(paths, "`berth/output`, the earlier build")
		*outputPaths += ",before"
	}
	type sample struct{ wall, cpu time.Duration }
	got := make([][][]sample, len(kinds)) // [kind][path][round]
	for k := range kinds {
		got[k] = make([][]sample, len(paths))
	}
	measure := func(k, p int) (sample, error) {
		gen := []string{"/tmp/echoserver", "gen", strconv.FormatInt(size, 10), kinds[k].line}
		switch p {
		case cliPath:
			wall, cpu, err := run(eng.cliCommand(id, gen...))
			return sample{wall, cpu}, err
		case execPath:
			cmd := exec.Command(bin, berth(append([]string{"exec", "--"}, gen...)...)[1:]...)
			cmd.Env = env
			wall, cpu, err := run(cmd)
			return sample{wall, cpu}, err
		default:
			rb := clients[p]
			cpu0, err := procCPU(rb.cmd.Process.Pid)
			if err != nil {
				return sample{}, err
			}
			t0 := time.Now()
			n, err := rb.execCount(gen)
			wall := time.Since(t0)
			if err != nil {
				return sample{}, err
			}
			if k != 1 && n != size {
				return sample{}, fmt.Errorf("berth/output: got %d bytes, want %d", n, size)
			}
			cpu1, err := procCPU(rb.cmd.Process.Pid)
			return sample{wall, cpu1 - cpu0}, err
		}
	}
	// Warm each path once.
	for p := range paths {
		if !strings.Contains(*outputPaths, pathKeys[p]) {
			continue
		}
		if _, err := measure(0, p); err != nil {
			return fmt.Errorf("%s: %w", paths[p], err)
		}
	}
	order := rand.New(rand.NewPCG(3, 4))
	type job struct{ k, p int }
	var jobs []job
	for k := range kinds {
		for p := range paths {
			if strings.Contains(*outputPaths, pathKeys[p]) {
				jobs = append(jobs, job{k, p})
			}
		}
	}
	for round := range *outputRounds {
		for _, i := range order.Perm(len(jobs)) {
			j := jobs[i]
			s, err := measure(j.k, j.p)
			if err != nil {
				return fmt.Errorf("%s: %w", paths[j.p], err)
			}
			got[j.k][j.p] = append(got[j.k][j.p], s)
		}
		fmt.Fprintf(os.Stderr, "output: round %d of %d done\n", round+1, *outputRounds)
	}

	mbps := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	r.printf("## Output: %d MiB of 64-byte lines on stdout, side by side\n\n", *outMiB)
	r.printf("%d rounds; each runs every path on every kind of text once, in an order shuffled each round. Rates are medians over the rounds (min–max in brackets); the ratio is the median of each round's ratio to the engine's CLI in the same round; CPU is the process's user+system time per GiB (for `berth/output`, the `berth --stdio` process's).\n\n", *outputRounds)
	for k, kind := range kinds {
		r.printf("%s:\n\n| path | MB/s | ÷ CLI | CPU s/GiB |\n|---|---|---|---|\n", kind.name)
		for p, name := range paths {
			if len(got[k][p]) == 0 {
				continue
			}
			// Without the CLI's rounds (-output-paths, when profiling one
			// path) there is no ratio to give.
			withCLI := len(got[k][cliPath]) == len(got[k][p])
			var rates, ratios, cpus []float64
			for i, s := range got[k][p] {
				rates = append(rates, mbps(s.wall))
				if withCLI {
					ratios = append(ratios, float64(got[k][cliPath][i].wall)/float64(s.wall))
				}
				cpus = append(cpus, s.cpu.Seconds()*float64(1<<30)/float64(size))
			}
			ratio := "–"
			if withCLI {
				ratio = fmt.Sprintf("%.0f%%", 100*median(ratios))
			}
			r.printf("| %s | %.0f (%.0f–%.0f) | %s | %.2f |\n", name, median(rates), slices.Min(rates), slices.Max(rates), ratio, median(cpus))
		}
		r.printf("\n")
	}
	return nil
}

// procCPU returns a process's user+system time so far, from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, nil
}
