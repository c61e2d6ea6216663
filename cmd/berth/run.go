package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/agent/embedded"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
)

// version is set at link time (-X main.version=...); otherwise it comes
// from the build's VCS stamp.
var version = ""

func berthVersion() string {
	if version != "" {
		return version
	}
	v := "0.1.0-dev"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v
}

type globalFlags struct {
	stdio     bool
	tcp       string
	backend   string
	image     string
	workspace string
	logFile   string
	logLevel  string
	trace     bool
	noAgent   bool
	noFast    bool
	config    string
}

// run builds the command tree and runs it. Errors that are not an
// exitError mean berth itself failed: main prints them and exits 125, as
// docker does.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCmd(stdin, stdout, stderr)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	var g globalFlags
	root := &cobra.Command{
		Use:   "berth",
		Short: "Work inside a workspace's container, from an editor or a terminal",
		Long: `berth keeps one container per workspace folder, on Docker or Incus, and runs
an editor's work inside it. Editors spawn "berth --stdio"; from a terminal,
the commands below act on the workspace (--workspace, or the current
directory).`,
		Example: `  berth --stdio                  serve one editor on stdin/stdout
  berth up                       start the workspace's container; print it as JSON
  berth exec -it -- bash         run a command in it, with a terminal
  berth shell                    open the remote user's login shell`,
		Version:           berthVersion(),
		Args:              cobra.NoArgs,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case g.stdio && g.tcp != "":
				return usageErr(cmd, errors.New("--stdio and --tcp are exclusive"))
			case !g.stdio && g.tcp == "":
				return cmd.Help()
			}
			return withServer(cmd, &g, true, func(srv *rpc.Server, log *slog.Logger) error {
				if g.stdio {
					return serveStdio(cmd.Context(), srv, stdin, stdout)
				}
				return serveTCP(cmd.Context(), srv, g.tcp, log, stderr)
			})
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("berth {{.Version}}\n")
	root.SetFlagErrorFunc(usageErr)

	f := root.Flags()
	f.BoolVar(&g.stdio, "stdio", false, "serve the protocol on stdin/stdout")
	f.StringVar(&g.tcp, "tcp", "", "serve the protocol on this TCP address")

	pf := root.PersistentFlags()
	pf.StringVar(&g.backend, "backend", envOr("BERTH_BACKEND", docker.Name), "container backend: docker or incus ($BERTH_BACKEND)")
	pf.StringVar(&g.image, "image", os.Getenv("BERTH_IMAGE"), "image for new containers ($BERTH_IMAGE)")
	pf.StringVarP(&g.workspace, "workspace", "W", "", "workspace folder (default: the current directory)")
	pf.StringVar(&g.config, "config", "", "devcontainer.json or Containerfile to use instead of discovering one")
	pf.StringVar(&g.logFile, "log-file", "", "write logs here instead of stderr")
	pf.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info when serving, warn for commands)")
	pf.BoolVar(&g.trace, "trace", false, "log every protocol frame (implies --log-level debug)")
	pf.BoolVar(&g.noFast, "no-fastpath", os.Getenv("BERTH_NO_FASTPATH") == "1", "keep the agent on the engine's exec stream even when the engine is local")
	pf.BoolVar(&g.noAgent, "no-agent", os.Getenv("BERTH_NO_AGENT") == "1", "don't use the in-container agent: plain backend exec, no tunnels")
	_ = root.RegisterFlagCompletionFunc("backend", cobra.FixedCompletions([]string{docker.Name, incus.Name}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		upCmd(&g), execCmd(&g), shellCmd(&g), statusCmd(&g), lsCmd(&g), downCmd(&g), pathCmd(&g),
		&cobra.Command{
			Use:   "version",
			Short: "Print berth's version",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "berth", berthVersion())
				return err
			},
		},
	)
	return root
}

// usageError is a command line berth can't parse; main exits 125 with it,
// as docker does.
type usageError struct {
	err error
	cmd string
}

func (e usageError) Error() string {
	return fmt.Sprintf("%v\nSee '%s --help'.", e.err, e.cmd)
}

func usageErr(cmd *cobra.Command, err error) error {
	return usageError{err: err, cmd: cmd.CommandPath()}
}

// withServer sets up logging and an in-process server for one invocation.
func withServer(cmd *cobra.Command, g *globalFlags, serving bool, f func(*rpc.Server, *slog.Logger) error) error {
	log, closeLog, err := newLogger(*g, serving, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeLog()
	srv, closeBackends, err := newServer(*g, log)
	if err != nil {
		return err
	}
	defer closeBackends()
	return f(srv, log)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newLogger(g globalFlags, serving bool, stderr io.Writer) (*slog.Logger, func(), error) {
	level := slog.LevelWarn
	if serving {
		level = slog.LevelInfo
	}
	if g.logLevel != "" {
		if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
			return nil, nil, fmt.Errorf("--log-level: %w", err)
		}
	}
	if g.trace {
		level = slog.LevelDebug
	}
	w, closeFn := stderr, func() {}
	if g.logFile != "" {
		f, err := os.OpenFile(g.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), closeFn, nil
}

// backendCloser is a backend that holds connections.
type backendCloser interface {
	backends.Backend
	Close() error
}

func newServer(g globalFlags, log *slog.Logger) (*rpc.Server, func(), error) {
	constructors := map[string]func() (backendCloser, error){
		docker.Name: func() (backendCloser, error) { return docker.New(log, berthVersion()) },
		incus.Name:  func() (backendCloser, error) { return incus.New(log, berthVersion()) },
	}
	if _, ok := constructors[g.backend]; !ok {
		return nil, nil, fmt.Errorf("--backend: unknown backend %q (available: %s, %s)", g.backend, docker.Name, incus.Name)
	}
	var agents agent.Set
	var agentErr error
	if !g.noAgent {
		if agents, agentErr = locateAgents(log); agentErr != nil {
			log.Warn("agent unavailable; using plain exec", "err", agentErr)
		}
	}
	mgrs := map[string]*session.Manager{}
	var closers []func()
	for name, newBackend := range constructors {
		b, err := newBackend()
		if err != nil {
			if name == g.backend {
				return nil, nil, err
			}
			log.Info("backend unavailable", "backend", name, "err", err)
			continue
		}
		mgr := session.NewManager(b, log.With("backend", name), g.image)
		mgr.SetFastPath(!g.noFast)
		switch {
		case g.noAgent:
			mgr.SetAgents(nil, "agent disabled by --no-agent or BERTH_NO_AGENT=1")
		case agentErr != nil:
			mgr.SetAgents(nil, agentErr.Error())
		default:
			mgr.SetAgents(agents, "")
		}
		mgrs[name] = mgr
		closers = append(closers, func() {
			mgr.Close()
			b.Close()
		})
	}
	srv := rpc.NewServer(rpc.Options{
		Managers: mgrs,
		Default:  g.backend,
		Logger:   log,
		Version:  berthVersion(),
		Trace:    g.trace,
	})
	return srv, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// locateAgents finds the agent builds berth installs: $BERTH_AGENT, else a
// berth-agent beside berth, for its platform; those berth carries for the
// others.
func locateAgents(log *slog.Logger) (agent.Set, error) {
	builtin, err := embedded.Agents()
	if err != nil {
		log.Warn("this berth's own agents are unreadable", "err", err)
	}
	return agent.Locate(builtin, log)
}

// stdio joins stdin and stdout into the server's connection.
type stdio struct {
	io.Reader
	io.Writer
}

func (s stdio) Close() error {
	if c, ok := s.Reader.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func serveStdio(ctx context.Context, srv *rpc.Server, stdin io.Reader, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	err := srv.ServeConn(ctx, stdio{stdin, stdout})
	if errors.Is(err, rpc.ErrExitWithoutShutdown) {
		return exitError{code: exitNoShutdownAck}
	}
	return err
}

func serveTCP(ctx context.Context, srv *rpc.Server, addr string, log *slog.Logger, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--tcp: %w", err)
	}
	fmt.Fprintf(stderr, "berth: listening on %s\n", ln.Addr())
	var wg sync.WaitGroup
	defer wg.Wait()
	stopAccept := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopAccept()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		log.Info("client connected", "remote", nc.RemoteAddr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeConn(ctx, nc); err != nil {
				log.Info("client ended", "remote", nc.RemoteAddr().String(), "err", err)
			}
		}()
	}
}
