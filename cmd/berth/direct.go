package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
)

// The direct path: `berth exec` (and `berth up` on a running instance)
// from a shell, when the engine is local and the workspace's agent runs
// behind its door. It asks the engine nothing: it finds the door from the
// workspace's path, checks the profile the full path wrote once the
// instance was ready (session.Profile) against the configuration files
// now, proves the key at the door, and runs the command through the agent,
// copying its output through the path rewriter to stdout. Anything amiss,
// and berth takes the full path (openSession), which asks the engine,
// runs hooks and reports a stale instance as always. BERTH_NO_DIRECT=1
// turns it off.

// envNoDirect names the variable that turns the direct path off.
const envNoDirect = "BERTH_NO_DIRECT"

// directTimeout bounds the direct path's setup: the door answers in
// microseconds, so a slow one means something is wrong.
const directTimeout = 2 * time.Second

// direct is a workspace reached through its agent's door.
type direct struct {
	ws       string
	prof     *session.Profile
	ac       *agent.Client
	log      *slog.Logger
	closeLog func()
}

// openDirect returns the workspace's running agent and its profile, or nil
// when berth must take the full path; it says why in the debug log.
func openDirect(cmd *cobra.Command, g *globalFlags) *direct {
	if g.noAgent || g.noFast || os.Getenv(envNoDirect) == "1" || g.trace {
		return nil
	}
	log, closeLog, err := newLogger(*g, false, cmd.ErrOrStderr())
	if err != nil {
		return nil
	}
	d, err := tryDirect(cmd.Context(), g, log)
	if err != nil {
		log.Debug("direct path not taken; asking the engine", "err", err)
		closeLog()
		return nil
	}
	d.closeLog = closeLog
	return d
}

func tryDirect(ctx context.Context, g *globalFlags, log *slog.Logger) (*direct, error) {
	ws, err := g.workspaceDir()
	if err != nil {
		return nil, err
	}
	if ws, err = session.ResolveWorkspace(ws); err != nil {
		return nil, err
	}
	hostDir, err := agent.HostRunDir(session.InstanceName(ws))
	if err != nil {
		return nil, err
	}
	prof, err := session.ReadProfile(hostDir)
	if err != nil {
		return nil, err
	}
	if prof.Backend != g.backend || prof.Workspace != ws {
		return nil, fmt.Errorf("the profile is for %s on %s", prof.Workspace, prof.Backend)
	}
	ctx, cancel := context.WithTimeout(ctx, directTimeout)
	defer cancel()
	// The door is dialled while the configuration is checked: one waits on
	// the agent, the other on the CPU.
	type attached struct {
		ac  *agent.Client
		err error
	}
	door := make(chan attached, 1)
	go func() {
		// Only the agent the profile was written for: another is another
		// start of the instance, whose hooks may not have run.
		ac, err := agent.AttachKnown(ctx, hostDir, prof.Agent, log)
		door <- attached{ac, err}
	}()
	// The configuration as the full path would resolve it now: a change
	// since the profile was written means a stale instance, which the full
	// path reports.
	cfgErr := checkProfileConfig(ws, g, prof)
	a := <-door
	switch {
	case a.err != nil:
		return nil, a.err
	case cfgErr != nil:
		a.ac.Close()
		return nil, cfgErr
	}
	log.Debug("direct path: through the running agent's door", "agent", a.ac.PID(), "socket", prof.Agent.Socket)
	return &direct{ws: ws, prof: prof, ac: a.ac, log: log}, nil
}

// checkProfileConfig fails when the workspace's configuration is not the
// one prof was written for.
func checkProfileConfig(ws string, g *globalFlags, prof *session.Profile) error {
	cfg, err := devcontainer.Discover(ws, g.config, g.image, os.LookupEnv)
	if err != nil {
		return err
	}
	if cfg.Hash != prof.ConfigHash {
		return errors.New("the configuration changed since the instance was made ready")
	}
	return nil
}

func (d *direct) close() {
	d.ac.Close()
	d.closeLog()
}

// exec runs argv through d's agent as runExec would through the
// full path, with the same defaults, environment, path mapping and exit
// codes, forwarding sigs to the process. started is false when nothing
// ran and berth may still take the full path.
func (d *direct) exec(cmd *cobra.Command, g *globalFlags, f execFlags, env map[string]string, argv []string, sigs <-chan os.Signal) (started bool, err error) {
	ctx := cmd.Context()
	var secretEnv map[string]string
	if g.secrets != "" {
		if secretEnv, err = secrets.ReadFile(g.secrets); err != nil {
			return true, fmt.Errorf("--secrets-file: %w", err)
		}
	}
	mapper, err := session.NewMapper(d.prof.Mounts)
	if err != nil {
		return false, err
	}
	user := f.user
	var userEnv map[string]string
	if user == "" || user == d.prof.User {
		user, userEnv = d.prof.User, d.prof.UserEnv
	}
	stdout := mapper.NewWriter(cmd.OutOrStdout())
	stderr := mapper.NewWriter(cmd.ErrOrStderr())
	execEnv := secrets.Merge(userEnv, d.prof.Env, secretEnv, env)
	// $BROWSER, as the full path sets it (docs/protocol.md, Ports).
	if bridge := startBrowserBridge(d.ac, cmd.ErrOrStderr(), d.log); bridge != nil {
		defer bridge.stop()
		if _, set := execEnv["BROWSER"]; !set {
			execEnv = secrets.Merge(execEnv, map[string]string{"BROWSER": agent.BrowserPath})
		}
	}
	spec := backends.ExecSpec{
		Argv:   argv,
		Cwd:    session.ContainerCwd(mapper, f.workdir, d.prof.Workdir),
		Env:    session.EnvList(execEnv),
		User:   user,
		Stdout: stdout,
		Stderr: stderr,
	}
	stdin := cmd.InOrStdin()
	in, _ := stdin.(*os.File)
	out, _ := cmd.OutOrStdout().(*os.File)
	if f.interactive {
		// Read on a goroutine of its own, which the process's end leaves
		// blocked, as runExec does: a terminal's read can't be cancelled.
		pr, pw := io.Pipe()
		go func() {
			_, err := io.Copy(pw, stdin)
			pw.CloseWithError(err)
		}()
		spec.Stdin = pr
	}
	var tty *agent.Terminal
	if f.tty {
		tty = &agent.Terminal{}
		if out != nil {
			if w, h, err := term.GetSize(int(out.Fd())); err == nil {
				tty.Cols, tty.Rows = uint16(w), uint16(h)
			}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	p, err := d.ac.Exec(sctx, spec, tty)
	cancel()
	switch {
	case errors.Is(err, backends.ErrCommandNotFound):
		return true, exitError{code: exitNotFound, msg: err.Error()}
	case errors.Is(err, backends.ErrNotExecutable):
		return true, exitError{code: exitCannotInvoke, msg: err.Error()}
	case errors.Is(err, backends.ErrBadUser), errors.Is(err, backends.ErrBadCwd):
		return true, err
	case err != nil:
		// Nothing ran: the full path may do better.
		d.log.Debug("direct exec failed; asking the engine", "err", err)
		return false, nil
	}
	d.log.Debug("direct exec started", "pid", p.(interface{ PID() int }).PID())
	if f.tty && f.interactive && in != nil {
		old, err := term.MakeRaw(int(in.Fd()))
		if err != nil {
			_ = p.Kill(ctx)
			return true, fmt.Errorf("terminal: %w", err)
		}
		defer term.Restore(int(in.Fd()), old)
	}
	done := make(chan struct{})
	var st backends.ExitStatus
	var werr error
	go func() {
		defer close(done)
		st, werr = p.Wait(context.WithoutCancel(ctx))
	}()
	for {
		select {
		case <-done:
			_ = stdout.Flush()
			_ = stderr.Flush()
			if werr != nil {
				// As the full path reports an exit it could not wait for.
				fmt.Fprintln(cmd.ErrOrStderr(), "berth:", werr)
				if st.Code == 0 {
					st.Code = -1
				}
			}
			if st.Code != 0 {
				return true, exitError{code: st.Code}
			}
			return true, nil
		case sig := <-sigs:
			if sig == syscall.SIGWINCH {
				if r, ok := p.(backends.Resizer); ok && out != nil && f.tty {
					if w, h, err := term.GetSize(int(out.Fd())); err == nil {
						_ = r.Resize(ctx, uint16(w), uint16(h))
					}
				}
				continue
			}
			_ = p.Signal(ctx, int(sig.(syscall.Signal)))
		}
	}
}

// up prints the instance as `berth up` would for a running instance it
// had nothing to do for: not created, no hooks run, not stale.
func (d *direct) up(w io.Writer, backend string) error {
	p := d.prof
	e := p.Engine
	return printJSON(w, rpc.Instance{
		Engine:    &rpc.Engine{Endpoint: e.Endpoint, Remote: e.Remote, BindMounts: e.BindMounts, FastPath: e.FastPath, NetNS: e.NetNS},
		Workspace: d.ws, Backend: backend, ID: p.ID, Name: p.Name, Image: p.Image,
		State: backends.StateRunning, Workdir: p.Workdir, Mounts: session.UserMounts(p.Mounts),
		Agent: rpc.AgentStatus{Enabled: true}, ConfigSource: p.ConfigSource, ConfigFile: p.ConfigFile,
	})
}
