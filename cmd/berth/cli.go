package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"text/tabwriter"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/rpc"
)

// command runs a CLI command as a protocol client of an in-process server,
// so the terminal and the editors share one code path.
func command(ctx context.Context, srv *rpc.Server, g globalFlags, args []string,
	stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) error {
	name, args := args[0], args[1:]
	fs := flag.NewFlagSet("berth "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		remove      = fs.Bool("rm", false, "remove the container instead of stopping it (down)")
		jsonOut     = fs.Bool("json", false, "print JSON (ls)")
		interactive = fs.Bool("i", false, "forward stdin to the command (exec)")
		recreate    = fs.Bool("recreate", false, "remove the container and build it again (up)")
		trusted     = fs.Bool("trust", false, "trust the workspace's configuration: its lifecycle commands and host mounts (up, exec); berth remembers it")
	)
	switch name {
	case "up", "exec", "ls", "down", "path":
	default:
		fmt.Fprintf(stderr, "berth: unknown command %q; run berth -h\n", name)
		return exitError{2}
	}
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	args = fs.Args()

	ws := g.workspace
	if ws == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		ws = wd
	}
	ws, err := filepath.Abs(ws)
	if err != nil {
		return err
	}

	// Progress goes to stderr for up, where people wait for it; exec's
	// stderr belongs to the command.
	cli := &cliClient{stdout: stdout, stderr: stderr, exits: make(chan rpc.ExitParams, 1), progress: name == "up"}
	if name != "exec" {
		cli.pid = "-" // no process of its own: hook and build output go to stderr as it comes
	}
	serverSide, clientSide := net.Pipe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.ServeCommand(ctx, serverSide)
	}()
	defer wg.Wait()
	cli.c = rpc.NewClient(ctx, clientSide, log, cli.notification)
	defer cli.c.Close()

	init := rpc.InitializeParams{RootPath: ws, InitializationOptions: &rpc.InitializationOptions{Image: g.image, Config: g.config, Trust: *trusted}}
	if name == "ls" || name == "path" {
		init.RootPath = "" // they need no existing workspace folder
	}
	if err := cli.c.Call(ctx, "initialize", init, nil); err != nil {
		return cliErr(err)
	}
	defer cli.shutdown(ctx)

	switch name {
	case "up":
		var inst rpc.Instance
		if err := cli.c.Call(ctx, "berth/up", rpc.UpParams{Recreate: *recreate}, &inst); err != nil {
			return cliErr(err)
		}
		return printJSON(stdout, inst)
	case "down":
		return cliErr(cli.c.Call(ctx, "berth/down", rpc.DownParams{Remove: *remove}, nil))
	case "ls":
		var list []rpc.Instance
		if err := cli.c.Call(ctx, "berth/list", struct{}{}, &list); err != nil {
			return cliErr(err)
		}
		if *jsonOut {
			return printJSON(stdout, list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATE\tBACKEND\tIMAGE\tWORKSPACE")
		for _, in := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.State, in.Backend, in.Image, in.Workspace)
		}
		return tw.Flush()
	case "path":
		return cli.paths(ctx, ws, args)
	case "exec":
		return cli.exec(ctx, args, *interactive, stdin)
	}
	return nil
}

type cliClient struct {
	c      *rpc.Client
	stdout io.Writer
	stderr io.Writer
	exits  chan rpc.ExitParams
	// progress prints window/logMessage to stderr.
	progress bool

	mu      sync.Mutex // guards the following
	pid     string     // the process exec started; "" until its answer
	pending []procNote // notifications that arrived before pid was known
}

// procNote is a berth/output or berth/exit held until exec knows its pid.
type procNote struct {
	method string
	raw    json.RawMessage
}

// notification routes process notifications: the output of exec's own
// process goes to stdout and stderr, and its exit ends the command.
// Everything else — lifecycle hooks that creating the container ran, an
// image build's log — goes to stderr, so stdout is the command's alone.
func (cli *cliClient) notification(method string, raw json.RawMessage) {
	switch method {
	case "berth/output", "berth/exit":
		cli.mu.Lock()
		defer cli.mu.Unlock()
		if cli.pid == "" {
			// The answer carrying the pid may not have been read by exec yet.
			cli.pending = append(cli.pending, procNote{method, append(json.RawMessage(nil), raw...)})
			return
		}
		cli.deliver(method, raw)
	case "window/logMessage":
		if !cli.progress {
			return
		}
		var p struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &p) == nil {
			fmt.Fprintln(cli.stderr, p.Message)
		}
	}
}

func (cli *cliClient) shutdown(ctx context.Context) {
	if cli.c.Call(ctx, "shutdown", nil, nil) == nil {
		_ = cli.c.Notify(ctx, "exit", nil)
	}
}

func (cli *cliClient) paths(ctx context.Context, ws string, args []string) error {
	if len(args) < 2 || (args[0] != "to-container" && args[0] != "to-host") {
		fmt.Fprintln(cli.stderr, "usage: berth path to-container|to-host PATH...")
		return exitError{2}
	}
	method := "berth/toContainer"
	in := args[1:]
	if args[0] == "to-host" {
		method = "berth/toHost"
	} else {
		for i, p := range in {
			if abs, err := filepath.Abs(p); err == nil && !isURI(p) {
				in[i] = abs
			}
		}
	}
	var res rpc.PathsResult
	if err := cli.c.Call(ctx, method, rpc.PathsParams{Workspace: ws, Paths: in}, &res); err != nil {
		return cliErr(err)
	}
	failed := false
	for i, p := range res.Paths {
		if p == nil {
			fmt.Fprintf(cli.stderr, "berth: %s: not under any mount of %s\n", in[i], ws)
			failed = true
			continue
		}
		fmt.Fprintln(cli.stdout, *p)
	}
	if failed {
		return exitError{1}
	}
	return nil
}

// deliver routes one process notification; cli.mu is held.
func (cli *cliClient) deliver(method string, raw json.RawMessage) {
	switch method {
	case "berth/output":
		var p rpc.OutputParams
		if json.Unmarshal(raw, &p) != nil {
			return
		}
		w := cli.stderr
		if p.PID == cli.pid && p.Stream == "stdout" {
			w = cli.stdout
		}
		io.WriteString(w, p.Text)
	case "berth/exit":
		var p rpc.ExitParams
		if json.Unmarshal(raw, &p) != nil || p.PID != cli.pid {
			return
		}
		select {
		case cli.exits <- p:
		default:
		}
	}
}

// setPID names exec's process and delivers what arrived before.
func (cli *cliClient) setPID(pid string) {
	cli.mu.Lock()
	defer cli.mu.Unlock()
	cli.pid = pid
	for _, n := range cli.pending {
		cli.deliver(n.method, n.raw)
	}
	cli.pending = nil
}

func isURI(p string) bool { return len(p) > 5 && p[:5] == "file:" }

func (cli *cliClient) exec(ctx context.Context, argv []string, interactive bool, stdin io.Reader) error {
	if len(argv) == 0 {
		fmt.Fprintln(cli.stderr, "usage: berth exec [-i] -- CMD [ARG...]")
		return exitError{2}
	}
	// Forward the terminal's signals to the process group in the container.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var res rpc.ExecResult
	if err := cli.c.Call(ctx, "berth/exec", rpc.ExecParams{Argv: argv, Stdin: interactive, Kind: "os"}, &res); err != nil {
		return cliErr(err)
	}
	cli.setPID(res.PID)
	if interactive {
		// Reading a terminal can't be cancelled; this goroutine ends with
		// stdin's EOF or with the process, which exits right after.
		go cli.forwardStdin(ctx, res.PID, stdin)
	}
	for {
		select {
		case ex := <-cli.exits:
			if ex.Reason != "" {
				fmt.Fprintln(cli.stderr, "berth:", ex.Reason)
			}
			if ex.Code != 0 {
				return exitError{ex.Code}
			}
			return nil
		case s := <-sigs:
			name := map[os.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM", syscall.SIGHUP: "HUP"}[s]
			if err := cli.c.Call(ctx, "berth/signal", map[string]string{"pid": res.PID, "signal": name}, nil); err != nil {
				fmt.Fprintln(cli.stderr, "berth: forwarding", name+":", err)
			}
		case <-cli.c.Done():
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cliErr turns a protocol error into a plain message.
func cliErr(err error) error {
	var re *jsonrpc2.Error
	if errors.As(err, &re) {
		return errors.New(re.Message)
	}
	return err
}
