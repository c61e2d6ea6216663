package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthdev/berth/rpc"
)

// execFlags are docker exec's flags, as far as berth has them.
type execFlags struct {
	interactive bool
	tty         bool
	workdir     string
	env         []string
	envFiles    []string
	user        string
}

func execCmd(g *globalFlags) *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "exec [flags] [--] COMMAND [ARG...]",
		Short: "Run a command in the workspace's container",
		Long: `Run a command in the workspace's container, starting the container first
if it is not running. berth exits with the command's exit code; with 125
when berth itself fails, 126 when the command cannot be invoked, and 127
when it is not found.`,
		Example: `  berth exec -- go test ./...
  berth exec -it -e TERM=xterm -- bash`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExec(cmd, g, f, args)
		},
	}
	// Flags after the command belong to the command, as with docker.
	cmd.Flags().SetInterspersed(false)
	f.register(cmd)
	return cmd
}

func (f *execFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open and forward it to the command")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the command a terminal")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container (default: the workspace's)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable: KEY=VALUE, or KEY to pass berth's own")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file of KEY=VALUE lines")
	fl.StringVarP(&f.user, "user", "u", "", "user to run as (name or uid[:gid]; default: the workspace's remote user)")
}

func shellCmd(g *globalFlags) *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Open the remote user's login shell in the workspace's container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.interactive, f.tty = true, isTerminal(cmd.InOrStdin())
			return runExec(cmd, g, f, loginShell)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.workdir, "workdir", "w", "", "working directory in the container (default: the workspace's)")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable: KEY=VALUE, or KEY to pass berth's own")
	fl.StringVarP(&f.user, "user", "u", "", "user to run as (default: the workspace's remote user)")
	return cmd
}

// loginShell runs the user's shell from /etc/passwd as a login shell,
// falling back to /bin/sh; images without getent still have awk or sh.
var loginShell = []string{"/bin/sh", "-c", `s=$(awk -F: -v u="$(id -un)" '$1 == u { print $7 }' /etc/passwd 2>/dev/null)
[ -x "$s" ] || s=/bin/sh
exec "$s" -l`}

// environ turns -e and --env-file into an environment, docker's way: a
// bare KEY takes berth's own value, or is dropped when berth has none.
func (f execFlags) environ() (map[string]string, error) {
	env := map[string]string{}
	add := func(kv string) error {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return fmt.Errorf("invalid environment variable %q: want KEY=VALUE", kv)
		}
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				return nil
			}
		}
		env[k] = v
		return nil
	}
	for _, name := range f.envFiles {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimLeft(sc.Text(), " \t")
			if line == "" || line[0] == '#' {
				continue
			}
			if err := add(line); err != nil {
				return nil, fmt.Errorf("--env-file %s:%d: %w", name, n, err)
			}
		}
	}
	for _, kv := range f.env {
		if err := add(kv); err != nil {
			return nil, fmt.Errorf("--env: %w", err)
		}
	}
	if len(env) == 0 {
		return nil, nil
	}
	return env, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runExec runs argv in the container, wired to the terminal, and returns
// its exit code as an exitError.
func runExec(cmd *cobra.Command, g *globalFlags, f execFlags, argv []string) error {
	env, err := f.environ()
	if err != nil {
		return usageErr(cmd, err)
	}
	stdin := cmd.InOrStdin()
	in, _ := stdin.(*os.File)
	if f.tty && f.interactive && !isTerminal(stdin) {
		return usageErr(cmd, errors.New("the input device is not a terminal: drop -t, or run berth from a terminal"))
	}
	p := rpc.ExecParams{Argv: argv, Cwd: f.workdir, Env: env, User: f.user, Stdin: f.interactive, Kind: "os", TTY: f.tty}
	out, _ := cmd.OutOrStdout().(*os.File)
	if f.tty && out != nil {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			p.Cols, p.Rows = uint16(w), uint16(h)
		}
	}

	// Forward the terminal's signals to the process group in the container.
	// Registering starts the runtime's signal thread, which takes a while
	// here: it happens while berth finds the container, and the process
	// starts only once it is done.
	sigs := make(chan os.Signal, 4)
	registered := make(chan struct{})
	go func() {
		defer close(registered)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGWINCH)
	}()
	defer func() {
		<-registered
		signal.Stop(sigs)
	}()

	if d := openDirect(cmd, g); d != nil {
		<-registered
		started, err := d.exec(cmd, g, f, env, argv, sigs)
		d.close()
		if started {
			return err
		}
	}

	s, err := openSession(cmd, g, cliOptions{ownsProcess: true})
	if err != nil {
		return err
	}
	defer s.close()
	ctx := cmd.Context()
	<-registered

	var res rpc.ExecResult
	if err := s.c.Call(ctx, "berth/exec", p, &res); err != nil {
		return cliErr(err)
	}
	s.setPID(res.PID)
	if f.tty && f.interactive && in != nil {
		// Raw mode: keys, Ctrl-C included, go to the container's terminal.
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			return fmt.Errorf("terminal: %w", err)
		}
		defer term.Restore(int(in.Fd()), old)
	}
	if f.interactive {
		// Reading a terminal can't be cancelled; this goroutine ends with
		// stdin's EOF or with the process, which exits right after.
		go s.forwardStdin(ctx, res.PID, stdin)
	}
	for {
		select {
		case ex := <-s.exits:
			if ex.Reason != "" {
				fmt.Fprintln(s.stderr, "berth:", ex.Reason)
			}
			if ex.Code != 0 {
				return exitError{code: ex.Code}
			}
			return nil
		case sig := <-sigs:
			if sig == syscall.SIGWINCH {
				if out != nil && f.tty {
					if w, h, err := term.GetSize(int(out.Fd())); err == nil {
						_ = s.c.Call(ctx, "berth/resize", rpc.ResizeParams{PID: res.PID, Cols: uint16(w), Rows: uint16(h)}, nil)
					}
				}
				continue
			}
			name := map[os.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP"}[sig]
			if err := s.c.Call(ctx, "berth/signal", map[string]string{"pid": res.PID, "signal": name}, nil); err != nil {
				fmt.Fprintln(s.stderr, "berth: forwarding", name+":", err)
			}
		case <-s.c.Done():
			return errors.New("connection to the server lost")
		}
	}
}

func (cli *cliClient) forwardStdin(ctx context.Context, pid string, stdin io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := stdin.Read(buf)
		if n > 0 {
			if cerr := cli.c.Call(ctx, "berth/stdin", rpc.StdinParams{PID: pid, Text: string(buf[:n])}, nil); cerr != nil {
				return
			}
		}
		if err != nil {
			_ = cli.c.Call(ctx, "berth/stdin", rpc.StdinParams{PID: pid, Close: true}, nil)
			return
		}
	}
}
