package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/attach"
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
	listen    string
	insecure  bool
	tokenFile string
	maxConns  int
	initWait  time.Duration
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

const usage = `usage: berth [flags] COMMAND [args]

Serve an editor:
  berth --stdio                  speak JSON-RPC on stdin/stdout
  berth --listen unix:PATH       serve editors of your own user on a unix socket (mode 0600)
  berth --tcp 127.0.0.1:7420     serve editors on loopback TCP; clients need the token whose
                                 file berth names on stderr
  berth connect ADDR             bridge stdin/stdout to a running berth (unix:PATH or
                                 [tcp:]HOST:PORT), adding the TCP token to initialize

Commands (the workspace is --workspace or the current directory):
  up [--recreate]                start or reattach the workspace's container; print it as JSON
  exec [-i] -- CMD [ARG...]      run CMD in the container; exit with its code (-i: forward stdin)
  ls [--json]                    list every berth container
  down [--rm]                    stop the workspace's container (--rm: remove it)
  path to-container|to-host P... translate paths between host and container
  version                        print berth's version

Flags:
`

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var g globalFlags
	fs := flag.NewFlagSet("berth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.BoolVar(&g.stdio, "stdio", false, "serve the protocol on stdin/stdout")
	fs.StringVar(&g.tcp, "tcp", "", "serve the protocol on this loopback TCP address, with a token")
	fs.StringVar(&g.listen, "listen", "", "serve the protocol on unix:PATH to your own user (and root)")
	fs.BoolVar(&g.insecure, "tcp-insecure-listen", false, "let --tcp listen on an address that isn't loopback (the token is still required)")
	fs.StringVar(&g.tokenFile, "tcp-token-file", "", "read the TCP token from this file (mode 0600) instead of $BERTH_TOKEN or a generated one")
	fs.IntVar(&g.maxConns, "max-connections", attach.DefaultMaxConns, "most concurrent connections on --tcp or --listen; more are refused")
	fs.DurationVar(&g.initWait, "init-timeout", attach.DefaultInitTimeout, "close --tcp and --listen connections that haven't initialized within this")
	fs.StringVar(&g.backend, "backend", envOr("BERTH_BACKEND", docker.Name), "container backend: docker or incus")
	fs.StringVar(&g.image, "image", os.Getenv("BERTH_IMAGE"), "image for new containers (default $BERTH_IMAGE)")
	fs.StringVar(&g.workspace, "workspace", "", "workspace folder for commands (default: current directory)")
	fs.StringVar(&g.config, "config", "", "devcontainer.json or Containerfile to use instead of discovering one")
	fs.StringVar(&g.logFile, "log-file", "", "write logs here instead of stderr")
	fs.StringVar(&g.logLevel, "log-level", "", "debug, info, warn or error (default info when serving, warn for commands)")
	fs.BoolVar(&g.trace, "trace", false, "log every protocol frame (implies --log-level debug)")
	fs.BoolVar(&g.noFast, "no-fastpath", os.Getenv("BERTH_NO_FASTPATH") == "1", "keep the agent on the engine's exec stream even when the engine is local")
	fs.BoolVar(&g.noAgent, "no-agent", os.Getenv("BERTH_NO_AGENT") == "1", "don't use the in-container agent: plain backend exec, no tunnels")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{2}
	}
	rest := fs.Args()
	modes := 0
	for _, on := range []bool{g.stdio, g.tcp != "", g.listen != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		fmt.Fprintln(stderr, "berth: --stdio, --tcp and --listen are exclusive")
		return exitError{2}
	}
	serving := modes == 1
	if !serving && len(rest) == 0 {
		fs.Usage()
		return exitError{2}
	}
	if !serving && rest[0] == "version" {
		fmt.Fprintln(stdout, "berth", berthVersion())
		return nil
	}
	if !serving && rest[0] == "connect" {
		return connect(ctx, g, rest[1:], stdin, stdout, stderr)
	}

	log, closeLog, err := newLogger(g, serving, stderr)
	if err != nil {
		return err
	}
	defer closeLog()

	// Bind before the backends start, so a refused address fails at once.
	var ln *attach.Listener
	if g.tcp != "" || g.listen != "" {
		if ln, err = listen(g, log, stderr); err != nil {
			return err
		}
		defer ln.Close()
	}

	srv, closeBackends, err := newServer(g, log)
	if err != nil {
		return err
	}
	defer closeBackends()

	switch {
	case g.stdio:
		return serveStdio(ctx, srv, stdin, stdout)
	case ln != nil:
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer stop()
		return ln.Serve(ctx, srv)
	}
	return command(ctx, srv, g, rest, stdin, stdout, stderr, log)
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
	bin, agentErr := agent.Locate()
	if agentErr != nil && !g.noAgent {
		log.Warn("agent unavailable; using plain exec", "err", agentErr)
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
			mgr.SetAgent(nil, "agent disabled by --no-agent or BERTH_NO_AGENT=1")
		case agentErr != nil:
			mgr.SetAgent(nil, agentErr.Error())
		default:
			mgr.SetAgent(bin, "")
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
		return exitError{1}
	}
	return err
}

func listen(g globalFlags, log *slog.Logger, stderr io.Writer) (*attach.Listener, error) {
	o := attach.Options{
		TCP: g.tcp, Insecure: g.insecure, TokenFile: g.tokenFile, Token: os.Getenv("BERTH_TOKEN"),
		MaxConns: g.maxConns, InitTimeout: g.initWait, Log: log, Notice: stderr,
	}
	if g.listen != "" {
		path, err := attach.ParseListen(g.listen)
		if err != nil {
			return nil, err
		}
		o.Unix = path
	}
	return attach.Listen(o)
}

// connect is `berth connect [--tcp-token-file PATH] ADDR`.
func connect(ctx context.Context, g globalFlags, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("berth connect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&g.tokenFile, "tcp-token-file", g.tokenFile, "read the TCP token from this file instead of $BERTH_TOKEN or the default token file")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: berth connect [--tcp-token-file PATH] unix:PATH | [tcp:]HOST:PORT")
		return exitError{2}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer stop()
	return attach.Connect(ctx, attach.ConnectOptions{Addr: fs.Arg(0), TokenFile: g.tokenFile, Token: os.Getenv("BERTH_TOKEN")}, stdin, stdout)
}
