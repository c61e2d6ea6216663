package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/agent/embedded"
	"github.com/berthdev/berth/attach"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/trust"
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
	listen    string // unix:PATH
	insecure  bool   // --tcp-insecure-listen
	tokenFile string
	maxConns  int
	initWait  time.Duration
	backend   string
	incusRem  string // --incus-remote
	image     string
	workspace string
	logFile   string
	logLevel  string
	trace     bool
	noAgent   bool
	noFast    bool
	health    time.Duration // how long up waits for a service's health check
	config    string
	secrets   string // --secrets-file
	trust     bool
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
directory).

A workspace whose configuration runs lifecycle commands or mounts host paths
outside it needs trust: --trust gives it, and berth remembers that for this
configuration in its config directory (berth/trust.json).`,
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
			modes := 0
			for _, on := range []bool{g.stdio, g.tcp != "", g.listen != ""} {
				if on {
					modes++
				}
			}
			switch {
			case modes > 1:
				return usageErr(cmd, errors.New("--stdio, --tcp and --listen are exclusive"))
			case modes == 0:
				return cmd.Help()
			case g.tcp != "":
				// Refuse an address before the backends start.
				if err := attach.CheckTCP(g.tcp, g.insecure); err != nil {
					return err
				}
			}
			fewProcs()
			return withServer(cmd, &g, true, func(srv *rpc.Server, log *slog.Logger) error {
				if g.stdio {
					return serveStdio(cmd.Context(), srv, stdin, stdout)
				}
				return serveListener(cmd.Context(), srv, g, log, stderr)
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
	f.StringVar(&g.tcp, "tcp", "", "serve the protocol on this loopback TCP address; clients need the token whose file berth names on stderr")
	f.StringVar(&g.listen, "listen", "", "serve the protocol on unix:PATH to your own user (and root)")
	f.BoolVar(&g.insecure, "tcp-insecure-listen", false, "let --tcp listen on an address that isn't loopback (the token is still required)")
	f.StringVar(&g.tokenFile, "tcp-token-file", "", "read the TCP token from this file (mode 0600) instead of $BERTH_TOKEN or a generated one")
	f.IntVar(&g.maxConns, "max-connections", attach.DefaultMaxConns, "most concurrent connections on --tcp or --listen; more are refused")
	f.DurationVar(&g.initWait, "init-timeout", attach.DefaultInitTimeout, "close --tcp and --listen connections that haven't initialized within this")

	pf := root.PersistentFlags()
	pf.StringVar(&g.backend, "backend", envOr("BERTH_BACKEND", docker.Name), "container backend: docker, podman or incus ($BERTH_BACKEND)")
	pf.StringVar(&g.incusRem, "incus-remote", "", "Incus remote, by its name in the incus client's configuration (default: its default remote)")
	pf.StringVar(&g.image, "image", os.Getenv("BERTH_IMAGE"), "image for new containers ($BERTH_IMAGE)")
	pf.StringVarP(&g.workspace, "workspace", "W", "", "workspace folder (default: the current directory)")
	pf.StringVar(&g.config, "config", "", "devcontainer.json or Containerfile to use instead of discovering one")
	pf.StringVar(&g.logFile, "log-file", "", "write logs here instead of stderr")
	pf.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info when serving, warn for commands)")
	pf.BoolVar(&g.trace, "trace", false, "log every protocol frame (implies --log-level debug; secrets masked)")
	pf.StringVar(&g.secrets, "secrets-file", "", "JSON object of environment variables for every process, kept out of logs")
	pf.BoolVar(&g.noFast, "no-fastpath", os.Getenv("BERTH_NO_FASTPATH") == "1", "keep the agent on the engine's exec stream even when the engine is local")
	pf.DurationVar(&g.health, "health-timeout", envDuration("BERTH_HEALTH_TIMEOUT", session.DefaultHealthTimeout), "how long up waits for a service's health check to pass ($BERTH_HEALTH_TIMEOUT)")
	pf.BoolVar(&g.trust, "trust", false, "trust the workspace's configuration: its lifecycle commands and host mounts; berth remembers it for this configuration")
	pf.BoolVar(&g.noAgent, "no-agent", os.Getenv("BERTH_NO_AGENT") == "1", "don't use the in-container agent: plain backend exec, no tunnels")
	_ = root.RegisterFlagCompletionFunc("backend", cobra.FixedCompletions([]string{docker.Name, docker.PodmanName, incus.Name}, cobra.ShellCompDirectiveNoFileComp))
	_ = root.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		connectCmd(), upCmd(&g), execCmd(&g), lspCmd(&g), shellCmd(&g), forwardCmd(&g), statusCmd(&g), limitsCmd(&g), lsCmd(&g), downCmd(&g), pathCmd(&g), configCmd(&g), pluginCmd(&g), pluginsCmd(&g),
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
	srv, log, closeAll, err := setup(*g, serving, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeAll()
	return f(srv, log)
}

// setup reads the secrets, and makes the logger and the server; closeAll
// undoes it.
func setup(g globalFlags, serving bool, stderr io.Writer) (_ *rpc.Server, _ *slog.Logger, closeAll func(), _ error) {
	var env map[string]string
	if g.secrets != "" {
		var err error
		if env, err = secrets.ReadFile(g.secrets); err != nil {
			return nil, nil, nil, fmt.Errorf("--secrets-file: %w", err)
		}
	}
	log, closeLog, err := newLogger(g, serving, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	// One masker for every log line, the session's included.
	masker := secrets.NewMasker()
	log = secrets.Logger(log, masker)
	srv, closeBackends, err := newServer(g, log, env, masker)
	if err != nil {
		closeLog()
		return nil, nil, nil, err
	}
	return srv, log, func() {
		closeBackends()
		closeLog()
	}, nil
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

func newServer(g globalFlags, log *slog.Logger, env map[string]string, masker *secrets.Masker) (*rpc.Server, func(), error) {
	constructors := map[string]func() (backendCloser, error){
		docker.Name:       func() (backendCloser, error) { return docker.New(log, berthVersion()) },
		docker.PodmanName: func() (backendCloser, error) { return docker.NewPodman(log, berthVersion()) },
		incus.Name:        func() (backendCloser, error) { return incus.NewRemote(log, berthVersion(), g.incusRem) },
	}
	if _, ok := constructors[g.backend]; !ok {
		return nil, nil, fmt.Errorf("--backend: unknown backend %q (available: %s, %s, %s)", g.backend, docker.Name, docker.PodmanName, incus.Name)
	}
	var agents agent.Set
	var agentErr error
	if !g.noAgent {
		if agents, agentErr = locateAgents(log); agentErr != nil {
			log.Warn("agent unavailable; using plain exec", "err", agentErr)
		}
	}
	newManager := func(b backends.Backend, log *slog.Logger) *session.Manager {
		mgr := session.NewManager(b, log, g.image)
		mgr.SetFastPath(!g.noFast)
		mgr.SetHealthTimeout(g.health)
		switch {
		case g.noAgent:
			mgr.SetAgents(nil, "agent disabled by --no-agent or BERTH_NO_AGENT=1")
		case agentErr != nil:
			mgr.SetAgents(nil, agentErr.Error())
		default:
			mgr.SetAgents(agents, "")
		}
		return mgr
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
		mgr := newManager(b, log.With("backend", name))
		mgrs[name] = mgr
		closers = append(closers, func() {
			mgr.Close()
			b.Close()
		})
	}
	var store *trust.Store
	if p, err := trust.DefaultPath(); err == nil {
		store = trust.NewStore(p)
	} else {
		log.Warn("workspace trust decisions won't be remembered", "err", err)
	}
	remotes := &incusRemotes{log: log, mgrs: map[string]*session.Manager{}, newManager: newManager}
	if m := mgrs[incus.Name]; m != nil {
		if b, ok := m.Backend().(*incus.Backend); ok && b.RemoteName() != "" {
			remotes.mgrs[b.RemoteName()] = m // the one --incus-remote (or the default remote) named
		}
	}
	closers = append(closers, remotes.close)
	srv := rpc.NewServer(rpc.Options{
		Managers: mgrs,
		Remote:   remotes.get,
		Default:  g.backend,
		Logger:   log,
		Version:  berthVersion(),
		Trace:    g.trace,
		Secrets:  env,
		Masker:   masker,
		Trust:    store,
	})
	return srv, func() {
		for _, c := range closers {
			c()
		}
	}, nil
}

// incusRemotes makes a manager per Incus remote a client names
// (initializationOptions.incusRemote), on first use, and keeps it for the
// server's life, so that clients naming one remote share its instances.
type incusRemotes struct {
	log        *slog.Logger
	newManager func(backends.Backend, *slog.Logger) *session.Manager

	mu      sync.Mutex
	mgrs    map[string]*session.Manager // by remote name; guarded by mu
	made    []*session.Manager          // by get, to close; guarded by mu
	closing bool                        // guarded by mu
}

func (r *incusRemotes) get(backend, name string) (*session.Manager, error) {
	if backend != incus.Name {
		return nil, fmt.Errorf("remotes are Incus's; backend %s has none", backend)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return nil, errors.New("berth is shutting down")
	}
	if m := r.mgrs[name]; m != nil {
		return m, nil
	}
	b, err := incus.NewRemote(r.log, berthVersion(), name)
	if err != nil {
		return nil, err
	}
	m := r.newManager(b, r.log.With("backend", incus.Name, "remote", name))
	r.mgrs[name], r.made = m, append(r.made, m)
	return m, nil
}

// close closes the managers and backends get made.
func (r *incusRemotes) close() {
	r.mu.Lock()
	r.closing = true
	made := r.made
	r.mu.Unlock()
	for _, m := range made {
		m.Close()
		m.Backend().(backendCloser).Close()
	}
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

// fewProcs gives a serving berth (and `berth lsp`) a quarter of the CPUs Go would use (at
// least one), unless GOMAXPROCS says otherwise. berth relays: between an
// editor and its containers it hands each piece of output from goroutine
// to goroutine, and on many threads each hand-off is a futex wake-up while
// idle threads spin, which cost more than the work on a virtual machine:
// on this project's 2-core machines one thread moves editor output faster,
// on two thirds of the CPU per byte (docs/benchmarks.md). A sidecar should
// leave the cores to the editor, the compilers and the language servers in
// any case. A command keeps Go's default: the change stops the world, which
// took 0.4 to 5 ms at start-up here, more than a shell's `berth exec` can
// spare.
func fewProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/4))
	}
}

func serveStdio(ctx context.Context, srv *rpc.Server, stdin io.Reader, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	if f, ok := stdout.(*os.File); ok {
		growStdout(f)
	}
	err := srv.ServeConn(ctx, stdio{stdin, stdout})
	if errors.Is(err, rpc.ErrExitWithoutShutdown) {
		return exitError{code: exitNoShutdownAck}
	}
	return err
}

// serveListener serves editors on --tcp or --listen until ctx ends or a
// signal comes.
func serveListener(ctx context.Context, srv *rpc.Server, g globalFlags, log *slog.Logger, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	o := attach.Options{
		TCP: g.tcp, Insecure: g.insecure, TokenFile: g.tokenFile, Token: os.Getenv("BERTH_TOKEN"),
		MaxConns: g.maxConns, InitTimeout: g.initWait, Log: log, Notice: stderr,
	}
	if g.listen != "" {
		path, err := attach.ParseListen(g.listen)
		if err != nil {
			return err
		}
		o.Unix = path
	}
	ln, err := attach.Listen(o)
	if err != nil {
		return err
	}
	defer ln.Close()
	return ln.Serve(ctx, srv)
}

func connectCmd() *cobra.Command {
	var tokenFile string
	cmd := &cobra.Command{
		Use:   "connect unix:PATH | [tcp:]HOST:PORT",
		Short: "Bridge stdin/stdout to a running berth, adding the TCP token to initialize",
		Long: `Bridge stdin/stdout to a berth serving --listen or --tcp, for editors that
can only spawn a process. On TCP it adds the token to the client's
initialize: from --tcp-token-file, else $BERTH_TOKEN, else the token file
the serving berth wrote for that port.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer stop()
			return attach.Connect(ctx, attach.ConnectOptions{Addr: args[0], TokenFile: tokenFile, Token: os.Getenv("BERTH_TOKEN")}, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&tokenFile, "tcp-token-file", "", "read the TCP token from this file instead of $BERTH_TOKEN or the default token file")
	return cmd
}

// envDuration is the duration in the variable key, or def when it is unset
// or not a duration.
func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}
