package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/rpc"
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
  berth --tcp 127.0.0.1:7420     speak JSON-RPC on TCP, for debugging berth

Commands (the workspace is --workspace or the current directory):
  up [--recreate] [--trust]      start or reattach the workspace's container; print it as JSON
  exec [-i] [--trust] -- CMD...  run CMD in the container; exit with its code (-i: forward stdin)
  ls [--json]                    list every berth container
  down [--rm]                    stop the workspace's container (--rm: remove it)
  path to-container|to-host P... translate paths between host and container
  version                        print berth's version

A workspace whose configuration runs lifecycle commands or mounts host paths
outside it needs trust: --trust gives it, and berth remembers that for this
configuration in its config directory (berth/trust.json).

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
	fs.StringVar(&g.tcp, "tcp", "", "serve the protocol on this TCP address")
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
	if g.stdio && g.tcp != "" {
		fmt.Fprintln(stderr, "berth: --stdio and --tcp are exclusive")
		return exitError{2}
	}
	serving := g.stdio || g.tcp != ""
	if !serving && len(rest) == 0 {
		fs.Usage()
		return exitError{2}
	}
	if !serving && rest[0] == "version" {
		fmt.Fprintln(stdout, "berth", berthVersion())
		return nil
	}

	log, closeLog, err := newLogger(g, serving, stderr)
	if err != nil {
		return err
	}
	defer closeLog()

	srv, closeBackends, err := newServer(g, log)
	if err != nil {
		return err
	}
	defer closeBackends()

	switch {
	case g.stdio:
		return serveStdio(ctx, srv, stdin, stdout)
	case g.tcp != "":
		return serveTCP(ctx, srv, g.tcp, log, stderr)
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
	var store *trust.Store
	if p, err := trust.DefaultPath(); err == nil {
		store = trust.NewStore(p)
	} else {
		log.Warn("workspace trust decisions won't be remembered", "err", err)
	}
	srv := rpc.NewServer(rpc.Options{
		Managers: mgrs,
		Default:  g.backend,
		Logger:   log,
		Version:  berthVersion(),
		Trace:    g.trace,
		Trust:    store,
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
