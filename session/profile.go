package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// A Profile is what `berth exec` and `berth up` from a shell need to reach
// a workspace's running instance without the engine, through its agent's
// door: the process defaults the configuration gives (user, remoteEnv,
// working directory), the mounts that map paths, and the instance as `berth
// up` prints it. The full path writes it on the host beside the door's
// record, readable by berth's user alone, once the instance is up and its
// hooks have run, and only when the instance is not stale. It names the
// door socket of the agent it was written for, and that agent dies with the
// instance's start: a restarted instance has a new agent, so a profile
// never speaks for a start whose postStartCommand may not have run. It
// holds no secrets: --secrets-file is read at each call.
type Profile struct {
	Version    int         `json:"v"`
	Backend    string      `json:"backend"`
	Workspace  string      `json:"workspace"`  // resolved host path
	Agent      agent.Known `json:"agent"`      // the agent it speaks for: its door socket names its start
	ConfigHash string      `json:"configHash"` // the configuration's hash, the instance's too

	User string            `json:"user,omitempty"` // remoteUser, else containerUser
	Env  map[string]string `json:"env,omitempty"`  // remoteEnv, resolved
	// UserEnv is User's probed shell environment (userEnvProbe), under
	// Env, for processes of that user only.
	UserEnv map[string]string `json:"userEnv,omitempty"`
	Workdir string            `json:"workdir"`
	Mounts  []backends.Mount  `json:"mounts"` // MountsOf the instance: what maps paths

	// For `berth up`.
	ID           string `json:"id"`
	Name         string `json:"name"`
	Image        string `json:"image"`
	ConfigSource string `json:"configSource,omitempty"`
	ConfigFile   string `json:"configFile,omitempty"`
	// UpNeedsEngine says `berth up` must take the full path: it has
	// postAttachCommand to run, ports to forward, a workspace to sync, or
	// a service to start (Incus) and wait for.
	UpNeedsEngine bool `json:"upNeedsEngine,omitempty"`
	// Engine is the manager's, as the full path's `berth up` reports it.
	Engine Engine `json:"engine"`
}

// profileVersion changes with the meaning of Profile's fields: 3 added
// UserEnv, 4 Engine, and 5 the image's USER in User, which an older
// profile would silently lack.
const profileVersion = 5

// maxProfile bounds the profile file berth reads.
const maxProfile = 1 << 20

// ProfilePath is where the profile of the door whose host directory is
// hostDir lives: beside it, never in it, since the instance can write there.
func ProfilePath(hostDir string) string {
	return filepath.Clean(hostDir) + ".profile"
}

// ErrNoProfile means a workspace has no usable profile: berth takes the
// full path.
var ErrNoProfile = errors.New("no usable exec profile")

// ReadProfile reads the profile of hostDir's door, refusing one that
// another user owns or could have read or written.
func ReadProfile(hostDir string) (*Profile, error) {
	path := ProfilePath(hostDir)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProfile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoProfile, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is not a private file of this user", ErrNoProfile, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxProfile+1))
	if err != nil || len(data) > maxProfile {
		return nil, fmt.Errorf("%w: %s: unreadable or too big", ErrNoProfile, path)
	}
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoProfile, path, err)
	}
	if p.Version != profileVersion {
		return nil, fmt.Errorf("%w: %s: version %d", ErrNoProfile, path, p.Version)
	}
	return &p, nil
}

// writeProfile stores p for hostDir's door, readable by berth's user alone.
func writeProfile(hostDir string, p *Profile) error {
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	path := ProfilePath(hostDir)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// forgetProfile removes the profile of inst's door, if it has one: the
// instance is going away or changing.
func (m *Manager) forgetProfile(inst backends.Instance) {
	if dir := m.fastDirOf(inst); dir != "" {
		_ = os.Remove(ProfilePath(dir))
	}
}

// forgetHost removes what berth kept on the host for inst, which is gone:
// its profile, its user environments, and the agent's run directory with
// the door's record. Left behind, they would pile up with every instance
// a workspace ever had. They are kept when the workspace has another
// instance by now, made by another berth process: it has the same name,
// so the same files.
func (m *Manager) forgetHost(ctx context.Context, inst backends.Instance) {
	dir := m.fastDirOf(inst)
	if dir == "" {
		return
	}
	if cur, err := m.backend.Find(ctx, inst.Workspace); err == nil && cur.ID != inst.ID {
		m.log.Debug("the workspace has a new instance; its files on the host stay", "instance", cur.Name)
		return
	}
	m.forgetProfile(inst)
	prefix := filepath.Base(filepath.Clean(dir)) + userEnvSuffix
	if entries, err := os.ReadDir(filepath.Dir(dir)); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				_ = os.Remove(filepath.Join(filepath.Dir(dir), e.Name()))
			}
		}
	}
	if err := agent.RemoveHostRun(dir); err != nil {
		m.log.Warn("could not remove the instance's files on the host", "dir", dir, "err", err)
	}
}

// publish writes the workspace's profile when the running instance is
// ready (hooks done), reached through its agent's door, and not stale; and
// only once per agent and configuration. Failing to is logged: the shell
// then takes the full path.
func (w *Workspace) publish(ctx context.Context) {
	w.mu.Lock()
	r, e := w.ready, w.runner
	w.mu.Unlock()
	if r == nil || e == nil || e.client == nil || !e.client.FastPath() || e.key != runnerKey(r.Instance.Instance) {
		return
	}
	cfg := r.Config
	if cfg == nil || r.Stale || r.synthetic || cfg.Hash == "" || cfg.EffectiveLifetime() == devcontainer.LifetimeCommand {
		// The command lifetime stops the container after the last
		// process of a full-path berth: a direct path's would go uncounted.
		return
	}
	dir := w.m.fastDirOf(r.Instance.Instance)
	if dir == "" {
		return
	}
	id := e.client.Socket() + "\x00" + cfg.Hash
	w.mu.Lock()
	done := w.published == id
	w.mu.Unlock()
	if done {
		return
	}
	p := &Profile{
		Version: profileVersion, Backend: w.m.backend.Name(), Workspace: w.path,
		Agent: e.client.Known(), ConfigHash: cfg.Hash,
		User: remoteUser(cfg, r.Instance.Instance), Workdir: r.Workdir, Mounts: MountsOf(r.Instance.Instance),
		ID: r.ID, Name: r.Name, Image: r.Image, ConfigSource: string(cfg.Source), ConfigFile: cfg.File,
		Engine:        w.m.Engine(),
		UpNeedsEngine: len(stageHooks(cfg, "postAttachCommand")) > 0 || len(cfg.ForwardPorts) > 0 || r.Labels[LabelSync] == "true" || cfg.InitializeCommand != nil || len(r.Warnings) > 0 || cfg.Berth.Service != nil,
	}
	if len(cfg.RemoteEnv) > 0 {
		var containerEnv map[string]string
		for _, v := range cfg.RemoteEnv {
			if strings.Contains(v, "${containerEnv:") {
				containerEnv = agentEnv(ctx, e.client)
				break
			}
		}
		p.Env = cfg.ResolveRemoteEnv(containerEnv)
	}
	// Only a probe already made: publish runs inside exec, which the
	// probe itself uses. Until then, the shell takes the full path.
	ue, known := w.probedEnv(*r, p.User)
	if !known {
		return
	}
	p.UserEnv = ue
	if err := writeProfile(dir, p); err != nil {
		w.log.Debug("exec profile not written; the shell takes the full path", "err", err)
		return
	}
	w.mu.Lock()
	w.published = id
	w.mu.Unlock()
	w.log.Debug("exec profile written", "socket", p.Agent.Socket)
}

// agentEnv reads the instance's environment through its agent, for
// ${containerEnv:VAR}.
func agentEnv(ctx context.Context, c *agent.Client) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var out bytes.Buffer // one writer: stdout
	env := map[string]string{}
	p, err := c.Exec(ctx, backends.ExecSpec{Argv: []string{"env"}, Stdout: &out, Stderr: io.Discard, Helper: true}, nil)
	if err != nil {
		return env
	}
	if _, err := p.Wait(ctx); err != nil {
		return env
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}
