package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/spf13/cobra"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/rpc"
)

// session is one CLI invocation's protocol session with an in-process
// server, so the terminal and the editors share one code path.
type cliSession struct {
	*cliClient
	ws    string
	init  rpc.InitializeResult
	close func()
}

// cliOptions say how a verb uses the session.
type cliOptions struct {
	noWorkspace bool // ls, path: no workspace folder needed
	progress    bool // print window/logMessage (build and hook output) to stderr
	ownsProcess bool // exec: the output of its process goes to stdout
	// notes, if set, sees every notification first and takes those it
	// reports handled: berth lsp routes its processes' output itself.
	notes func(method string, raw json.RawMessage) bool
}

// workspaceDir is the CLI's workspace, --workspace or the current
// directory, as an absolute path.
func (g *globalFlags) workspaceDir() (string, error) {
	if g.workspace != "" {
		return filepath.Abs(g.workspace)
	}
	return os.Getwd()
}

// openSession starts an in-process server and initializes a session with
// it for the workspace of g. Close it when done.
func openSession(cmd *cobra.Command, g *globalFlags, o cliOptions) (*cliSession, error) {
	ctx := cmd.Context()
	ws, err := g.workspaceDir()
	if err != nil {
		return nil, err
	}
	srv, log, closeAll, err := setup(*g, false, cmd.ErrOrStderr())
	if err != nil {
		return nil, err
	}
	cli := &cliClient{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), exits: make(chan rpc.ExitParams, 1), progress: o.progress, notes: o.notes}
	if !o.ownsProcess {
		cli.pid = "-" // no process of its own: hook and build output go to stderr as it comes
	}
	serverSide, clientSide := net.Pipe()
	srvCtx := ctx
	var drawer *pullDrawer
	if o.progress {
		if drawer = newPullDrawer(cmd.ErrOrStderr()); drawer != nil {
			srvCtx = backends.WithPullProgress(ctx, drawer.event)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.ServeCommand(srvCtx, serverSide)
	}()
	cli.c = rpc.NewClientAnswering(ctx, clientSide, log, cli.notification, cli.answer)
	s := &cliSession{cliClient: cli, ws: ws}
	s.close = func() {
		cli.shutdown(ctx)
		cli.c.Close()
		wg.Wait()
		if drawer != nil {
			drawer.close()
		}
		closeAll()
	}
	init := rpc.InitializeParams{RootPath: ws, InitializationOptions: &rpc.InitializationOptions{Image: g.image, Config: g.config, Trust: g.trust}}
	if o.noWorkspace {
		init.RootPath = ""
	}
	if err := cli.c.Call(ctx, "initialize", init, &s.init); err != nil {
		s.close()
		return nil, cliErr(err)
	}
	return s, nil
}

func upCmd(g *globalFlags) *cobra.Command {
	var recreate bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start or reattach the workspace's container; print it as JSON",
		Long: `Start or reattach the workspace's container and print it as one JSON
document on stdout. Build logs, pull progress and lifecycle hook output go
to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !recreate {
				// A running instance that needs nothing done: the door's
				// handshake proves it up, and the profile says the rest.
				if d := openDirect(cmd, g); d != nil {
					if !d.prof.UpNeedsEngine {
						defer d.close()
						return d.up(cmd.OutOrStdout(), g.backend)
					}
					d.close()
				}
			}
			s, err := openSession(cmd, g, cliOptions{progress: true})
			if err != nil {
				return err
			}
			defer s.close()
			var inst rpc.Instance
			if err := s.c.Call(cmd.Context(), "berth/up", rpc.UpParams{Recreate: recreate}, &inst); err != nil {
				return cliErr(err)
			}
			if len(inst.Forwarded) > 0 {
				// The tunnels live in this process, which ends now.
				fmt.Fprintf(cmd.ErrOrStderr(), "berth: the configuration's forwardPorts end with this command; hold one open with: berth forward PORT\n")
			}
			return printJSON(cmd.OutOrStdout(), inst)
		},
	}
	cmd.Flags().BoolVar(&recreate, "recreate", false, "remove the container and build it again")
	return cmd
}

func forwardCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "forward [HOSTPORT:]PORT",
		Short: "Forward a host port to a port in the container until Ctrl-C",
		Long: `Forward 127.0.0.1:HOSTPORT on the host to PORT in the workspace's
container, starting the container first if needed, and hold the tunnel
open until Ctrl-C. HOSTPORT defaults to PORT; 0 picks a free port. The
host address is printed on stdout.`,
		Example: `  berth forward 8080
  berth forward 9000:8080`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hostPort, port, err := parseForward(args[0])
			if err != nil {
				return usageErr(cmd, err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			s, err := openSession(cmd, g, cliOptions{progress: true})
			if err != nil {
				return err
			}
			defer s.close()
			var res rpc.ForwardResult
			if err := s.c.Call(ctx, "berth/forward", rpc.ForwardParams{ContainerPort: port, HostPort: hostPort}, &res); err != nil {
				return cliErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), net.JoinHostPort(res.Host, strconv.Itoa(res.HostPort)))
			fmt.Fprintf(cmd.ErrOrStderr(), "berth: forwarding %s to port %d in the container; Ctrl-C to stop\n", net.JoinHostPort(res.Host, strconv.Itoa(res.HostPort)), port)
			select {
			case <-ctx.Done():
				return nil
			case <-s.c.Done():
				return errors.New("connection to the server lost")
			}
		},
	}
	return cmd
}

// parseForward reads [HOSTPORT:]PORT.
func parseForward(arg string) (hostPort, port int, err error) {
	h, p, two := strings.Cut(arg, ":")
	if !two {
		h, p = arg, arg
	}
	if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
		return 0, 0, fmt.Errorf("invalid port %q: want [HOSTPORT:]PORT, ports 1-65535", arg)
	}
	if hostPort, err = strconv.Atoi(h); err != nil || hostPort < 0 || hostPort > 65535 {
		return 0, 0, fmt.Errorf("invalid host port %q: want [HOSTPORT:]PORT, ports 0-65535", arg)
	}
	return hostPort, port, nil
}

func downCmd(g *globalFlags) *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the workspace's container",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, cliOptions{progress: true})
			if err != nil {
				return err
			}
			defer s.close()
			return cliErr(s.c.Call(cmd.Context(), "berth/down", rpc.DownParams{Remove: remove}, nil))
		},
	}
	cmd.Flags().BoolVar(&remove, "rm", false, "remove the container instead of stopping it")
	return cmd
}

func lsCmd(g *globalFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list", "ps"},
		Short:   "List berth's containers on every backend that answers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, cliOptions{noWorkspace: true})
			if err != nil {
				return err
			}
			defer s.close()
			list := []rpc.Instance{}
			if err := s.c.Call(cmd.Context(), "berth/list", rpc.ListParams{All: true}, &list); err != nil {
				return cliErr(err)
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), list)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tBACKEND\tIMAGE\tWORKSPACE")
			for _, in := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.State, in.Backend, in.Image, in.Workspace)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print a JSON array")
	return cmd
}

func pathCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:       "path to-container|to-host PATH...",
		Short:     "Translate paths between host and container",
		Args:      cobra.MinimumNArgs(2),
		ValidArgs: []string{"to-container", "to-host"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "to-container" && args[0] != "to-host" {
				return usageErr(cmd, fmt.Errorf("unknown direction %q: to-container or to-host", args[0]))
			}
			s, err := openSession(cmd, g, cliOptions{noWorkspace: true})
			if err != nil {
				return err
			}
			defer s.close()
			return s.paths(cmd.Context(), s.ws, args)
		},
	}
	return cmd
}

type cliClient struct {
	c      *rpc.Client
	stdout io.Writer
	stderr io.Writer
	exits  chan rpc.ExitParams
	// progress prints window/logMessage to stderr.
	progress bool
	notes    func(method string, raw json.RawMessage) bool // see cliOptions

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
	if cli.notes != nil && cli.notes(method, raw) {
		return
	}
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
	case "window/showMessage":
		// Warnings: what berth leaves out of the configuration. Always
		// said, whatever the verb.
		var p struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &p) == nil {
			fmt.Fprintln(cli.stderr, p.Message)
		}
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
		return exitError{code: 1}
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

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // commands in configurations use < and >
	return enc.Encode(v)
}

// cliErr turns a protocol error into a plain message and docker's exit
// codes: 127 for a command that is not found, 126 for one that cannot be
// invoked, and 125 (main's default) for anything else.
func cliErr(err error) error {
	var re *jsonrpc2.Error
	if !errors.As(err, &re) {
		return err
	}
	switch re.Code {
	case rpc.CodeCommandNotFound:
		return exitError{code: exitNotFound, msg: re.Message}
	case rpc.CodeNotExecutable:
		return exitError{code: exitCannotInvoke, msg: re.Message}
	}
	return errors.New(re.Message)
}
