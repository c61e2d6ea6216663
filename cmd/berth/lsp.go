package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/lsp"
	"github.com/berthdev/berth/pathmap"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
)

func lspCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lsp [flags] -- SERVER [ARG...]",
		Short: "Run a language server in the workspace's container, for an editor to spawn",
		Long: `Run SERVER in the workspace's container, through berth's agent, and serve
it on stdin/stdout as a language server that any editor can spawn. berth
starts the container first if needed, as "berth up" does, and rewrites the
file URIs of every message between the host and the container. Files that
only the container has (its standard library, site-packages, GOROOT) are
copied to a read-only mirror in the user's cache directory, which the editor
can open. Without --workspace, the workspace is the nearest folder at or
above initialize's rootUri with a devcontainer configuration or a .git, else
the current directory. The server's stderr goes to berth's, and berth exits
with the server's exit code.`,
		Example: `  berth lsp -- pylsp
  berth lsp --workspace ~/src/app -- gopls serve`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fewProcs() // a relay for as long as the editor runs
			return runLSP(cmd, g, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func runLSP(cmd *cobra.Command, g *globalFlags, argv []string) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	log, closeLog, err := newLogger(*g, false, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer closeLog()
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	ws := g.workspace
	if ws != "" {
		if ws, err = filepath.Abs(ws); err != nil {
			return err
		}
	}
	var closeTarget func()
	defer func() {
		if closeTarget != nil {
			closeTarget()
		}
	}()
	p := &lsp.Proxy{
		Argv: argv, Workspace: ws, Dir: wd, Stderr: cmd.ErrOrStderr(), Log: log, Trace: g.trace,
		Start: func(ctx context.Context, ws string) (*lsp.Target, error) {
			t, closeT, err := lspTarget(cmd, g, ws)
			closeTarget = closeT
			return t, err
		},
	}
	code, err := p.Run(ctx, cmd.InOrStdin(), cmd.OutOrStdout())
	switch {
	case errors.Is(err, backends.ErrCommandNotFound):
		return exitError{code: exitNotFound, msg: err.Error()}
	case errors.Is(err, backends.ErrNotExecutable):
		return exitError{code: exitCannotInvoke, msg: err.Error()}
	case err != nil:
		return cliErr(err)
	}
	if code != 0 {
		return exitError{code: code}
	}
	return nil
}

// lspTarget reaches ws's running agent through its door, bringing the
// instance up first, as `berth up` does, when it isn't ready. Without a
// door it keeps the session that brought the instance up, and runs the
// server through it. close releases what it holds.
func lspTarget(cmd *cobra.Command, g *globalFlags, ws string) (_ *lsp.Target, close func(), _ error) {
	gw := *g
	gw.workspace = ws
	gw.trace = false // --trace traces the LSP frames, which the direct path allows
	if d := openDirect(cmd, &gw); d != nil {
		t, err := d.lspTarget(g)
		return t, d.close, err
	}
	r := newSessionRunner()
	s, err := openSession(cmd, &gw, cliOptions{progress: true, notes: r.note})
	if err != nil {
		return nil, nil, err
	}
	var inst rpc.Instance
	if err = s.c.Call(cmd.Context(), "berth/up", rpc.UpParams{}, &inst); err != nil {
		s.close()
		return nil, nil, err
	}
	if d := openDirect(cmd, &gw); d != nil {
		s.close()
		t, err := d.lspTarget(g)
		return t, d.close, err
	}
	r.s = s
	t, err := sessionTarget(inst, r)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return t, s.close, nil
}

// sessionTarget is what the proxy needs of inst, reached through r's
// session.
func sessionTarget(inst rpc.Instance, r *sessionRunner) (*lsp.Target, error) {
	mapper, err := session.NewMapper(inst.Mounts)
	if err != nil {
		return nil, err
	}
	t := &lsp.Target{Mapper: mapper, Exec: r.exec}
	if t.Sync, err = syncMapper(inst.Mounts); err != nil {
		return nil, err
	}
	if cache, err := os.UserCacheDir(); err == nil {
		t.MirrorDir = lsp.MirrorDir(filepath.Join(cache, "berth", "lsp"), inst.Name, inst.ID, inst.Image)
	}
	return t, nil
}

// syncMapper maps the synced mounts among mounts; nil when there are none.
func syncMapper(mounts []backends.Mount) (*pathmap.Mapper, error) {
	var synced []backends.Mount
	for _, mt := range mounts {
		if mt.Type == session.MountSync {
			synced = append(synced, mt)
		}
	}
	if len(synced) == 0 {
		return nil, nil
	}
	return session.NewMapper(synced)
}

// lspTarget is what the proxy needs of d's instance.
func (d *direct) lspTarget(g *globalFlags) (*lsp.Target, error) {
	var secretEnv map[string]string
	if g.secrets != "" {
		var err error
		if secretEnv, err = secrets.ReadFile(g.secrets); err != nil {
			return nil, fmt.Errorf("--secrets-file: %w", err)
		}
	}
	mapper, err := session.NewMapper(d.prof.Mounts)
	if err != nil {
		return nil, err
	}
	t := &lsp.Target{Mapper: mapper}
	if t.Sync, err = syncMapper(d.prof.Mounts); err != nil {
		return nil, err
	}
	if cache, err := os.UserCacheDir(); err == nil {
		t.MirrorDir = lsp.MirrorDir(filepath.Join(cache, "berth", "lsp"), d.prof.Name, d.prof.ID, d.prof.Image)
	}
	env := session.EnvList(secrets.Merge(d.prof.Env, secretEnv, nil))
	cwd := session.ContainerCwd(mapper, "", d.prof.Workdir)
	t.Exec = func(ctx context.Context, spec backends.ExecSpec) (backends.Process, error) {
		if spec.Cwd == "" {
			spec.Cwd = cwd
		}
		if spec.User == "" {
			spec.User = d.prof.User
		}
		spec.Env = append(append([]string(nil), env...), spec.Env...)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return d.ac.Exec(sctx, spec, nil)
	}
	return t, nil
}
