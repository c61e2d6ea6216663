package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

var (
	shellOnly   = flag.Bool("shell", false, "run only the shell figures")
	shellRounds = flag.Int("rounds", 20, "rounds of the shell figures; each runs every command once, interleaved")
	noDevCLI    = flag.Bool("no-devcontainer", false, "skip the devcontainer CLI (installed with npm into the cache otherwise)")
)

// shellCmd is one command a user types, timed from fork to exit.
type shellCmd struct {
	name string
	argv []string
	env  []string
}

// shell measures what a user at a shell waits for: berth's start-up,
// `berth exec -- true` on a running container (the direct path through
// the agent's door, and the full path), `berth up` on it, the engine's CLI
// exec, and the devcontainer CLI's exec. Each round runs every command
// once, in an order shuffled each round, so that the machine's load falls
// on all alike; the table gives p50 and p90 over the rounds. Then it times
// 256 MiB of stdout through `berth exec` and through the engine's CLI, to
// /dev/null.
func shell(r *report, eng *engine, bin, ws, id string) error {
	berth := func(args ...string) []string {
		return append([]string{bin, "--backend", *engineArg, "--workspace", ws}, args...)
	}
	env := []string{"BERTH_IMAGE=" + *image}
	// The engine's exec as a user types it (no -i).
	userExec := func(argv ...string) []string {
		if *engineArg == "docker" {
			return append([]string{"docker", "exec", id}, argv...)
		}
		return eng.cliCommand(id, argv...).Args
	}
	cli := userExec("true")
	cliShown := "`docker exec CTR true`"
	if *engineArg != "docker" {
		cliShown = "`incus exec CTR -- true`"
	}
	cmds := []shellCmd{
		{"`berth --version`", []string{bin, "--version"}, nil},
		{"**`berth exec -- true`**: direct, through the running agent's door", berth("exec", "--", "true"), env},
		{"`berth exec -- true`, full path (`BERTH_NO_DIRECT=1`: asks the engine, then the same agent)", berth("exec", "--", "true"), append(env, "BERTH_NO_DIRECT=1")},
		{"`berth up` on the running container: direct", berth("up"), env},
		{cliShown, cli, nil},
	}
	devNote := ""
	if dc, err := devcontainerCLI(); err != nil {
		devNote = err.Error()
	} else if *engineArg != "docker" {
		devNote = "the devcontainer CLI drives Docker only"
	} else {
		cmds = append(cmds, shellCmd{"`devcontainer exec --container-id CTR true`", []string{dc, "exec", "--container-id", id, "true"}, nil})
	}
	// Warm each one, and check it works.
	for _, c := range cmds {
		cmd := c.command()
		cmd.Stdout, cmd.Stderr = nil, nil
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", c.name, err, out)
		}
	}
	times := make([][]time.Duration, len(cmds))
	order := rand.New(rand.NewPCG(1, 2))
	for range *shellRounds {
		// A fresh order each round: what runs after the devcontainer CLI's
		// node, or first, pays for it.
		for _, i := range order.Perm(len(cmds)) {
			c := cmds[i]
			cmd := c.command()
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			times[i] = append(times[i], time.Since(t0))
		}
	}
	cliP50 := pct(times[4], 0.5)
	r.printf("## From a shell: one command, start to exit\n\n")
	r.printf("%d rounds, each running every command once, in an order shuffled each round; p50 and p90 over the rounds. The ratio is the engine CLI's p50 over the command's.\n\n", *shellRounds)
	r.printf("| command | p50 | p90 | %s ÷ this |\n|---|---|---|---|\n", cmds[4].name)
	for i, c := range cmds {
		p50 := pct(times[i], 0.5)
		r.printf("| %s | %s | %s | %.1f× |\n", c.name, ms(p50), ms(pct(times[i], 0.9)), float64(cliP50)/float64(p50))
	}
	if devNote != "" {
		r.printf("\nThe devcontainer CLI is left out: %s.\n", devNote)
	}

	// Output through berth exec from a shell, to /dev/null as the engine's
	// CLI's is.
	size := int64(*outMiB) << 20
	gen := []string{"/tmp/echoserver", "gen", strconv.FormatInt(size, 10)}
	rate := func(cmd *exec.Cmd) (float64, error) {
		devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return 0, err
		}
		defer devnull.Close()
		cmd.Stdout = devnull
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, err
		}
		return float64(size) / time.Since(t0).Seconds() / 1e6, nil
	}
	best := func(mk func() *exec.Cmd) (float64, error) {
		var top float64
		for range 3 {
			v, err := rate(mk())
			if err != nil {
				return 0, err
			}
			top = max(top, v)
		}
		return top, nil
	}
	berthRate, err := best(func() *exec.Cmd { return shellCmd{"", berth(append([]string{"exec", "--"}, gen...)...), env}.command() })
	if err != nil {
		return fmt.Errorf("berth exec output: %w", err)
	}
	cliRate, err := best(func() *exec.Cmd {
		argv := userExec(gen...)
		return exec.Command(argv[0], argv[1:]...)
	})
	if err != nil {
		return fmt.Errorf("%s output: %w", eng.cliName, err)
	}
	r.printf("\n%d MiB of text lines on stdout to /dev/null, best of 3: `berth exec` (direct, paths mapped) **%.0f MB/s**; %s %.0f MB/s; berth at %.0f%% of it.\n\n",
		*outMiB, berthRate, eng.cliName, cliRate, 100*berthRate/cliRate)
	return nil
}

func (c shellCmd) command() *exec.Cmd {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	return cmd
}

// devcontainerCLI installs the devcontainer CLI with npm into berth's
// cache, once, and returns its path; or why it can't.
func devcontainerCLI() (string, error) {
	if *noDevCLI {
		return "", errors.New("-no-devcontainer")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "berth", "bench", "devcontainers-cli")
	bin := filepath.Join(dir, "node_modules", ".bin", "devcontainer")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", errors.New("npm is not installed")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, "bench: installing @devcontainers/cli with npm into", dir)
	install := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "@devcontainers/cli")
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install @devcontainers/cli failed (no registry?): %v: %.200s", err, out)
	}
	return bin, nil
}
