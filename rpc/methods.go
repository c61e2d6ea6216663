package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/secrets"
	"github.com/berthdev/berth/session"
	"go.lsp.dev/protocol"
)

// methods is the dispatch table.
var methods = map[string]method{
	"initialize":         {handle: initialize, inline: true},
	"shutdown":           {handle: shutdown, inline: true},
	"berth/up":           {handle: up},
	"berth/status":       {handle: status},
	"berth/limits":       {handle: limitsMethod},
	"berth/list":         {handle: list},
	"berth/down":         {handle: down},
	"berth/exec":         {handle: execMethod},
	"berth/run":          {handle: run},
	"berth/stdin":        {handle: stdin, inline: true},
	"berth/signal":       {handle: signal},
	"berth/processes":    {handle: processes, inline: true},
	"berth/toContainer":  {handle: toContainer},
	"berth/toHost":       {handle: toHost},
	"berth/resize":       {handle: resize, inline: true},
	"berth/forward":      {handle: forward},
	"berth/reverse":      {handle: reverse},
	"berth/closeTunnel":  {handle: closeTunnel},
	"berth/tunnels":      {handle: tunnels, inline: true},
	"berth/test":         {handle: test},
	"berth/testDiscover": {handle: testDiscover},
	"berth/lint":         {handle: lint},
	"berth/inspect":      {handle: inspect},
	"berth/debug":        {handle: debug},
	"berth/sync":         {handle: syncMethod},
	"berth/plugins":      {handle: pluginsMethod},
	"berth/plugin":       {handle: pluginMethod},

	// Ports (ports.go)
	"berth/ports": {handle: portsMethod, inline: true},

	"berth/readConfiguration": {handle: readConfiguration},
}

// ReadConfigurationParams are berth/readConfiguration's params.
type ReadConfigurationParams struct {
	Workspace string `json:"workspace,omitempty"`
	Config    string `json:"config,omitempty"` // overrides initializationOptions.config
}

// readConfiguration answers from the workspace's files alone: it never
// touches the engine or the network.
func readConfiguration(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ReadConfigurationParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	mgr, client, image := c.session()
	explicit := p.Config
	if explicit == "" {
		explicit = client.ConfigPath()
	}
	if image == "" {
		image = mgr.DefaultImage()
	}
	var check func(backends.Spec) []string
	if ch, ok := mgr.Backend().(backends.Checker); ok {
		check = ch.Unsupported
	}
	return session.ReadConfiguration(ws, explicit, image, check)
}

// SyncResult answers berth/sync.
type SyncResult struct {
	Synced  bool `json:"synced"` // false: the workspace is bind-mounted, nothing to sync
	Copied  int  `json:"copied"`
	Deleted int  `json:"deleted"`
	// Two-way sync only: what came back to the host.
	Pulled    int `json:"pulled,omitempty"`
	Removed   int `json:"removed,omitempty"`
	Conflicts int `json:"conflicts,omitempty"`
}

func syncMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p WorkspaceParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, _ := c.session()
	st, synced, err := client.Sync(ctx, ws)
	if err != nil {
		return nil, err
	}
	return SyncResult{Synced: synced, Copied: st.Copied, Deleted: st.Deleted, Pulled: st.Pulled, Removed: st.Removed, Conflicts: st.Conflicts}, nil
}

// MethodNames lists the protocol's request methods, sorted.
func MethodNames() []string {
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// decode unmarshals params into v; absent params leave v zero.
func decode(raw json.RawMessage, v any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// workspace resolves a workspace param against the client's default.
func (c *conn) workspace(param string) (string, error) {
	if param == "" {
		c.mu.Lock()
		param = c.defaultWS
		c.mu.Unlock()
		if param == "" {
			return "", fmt.Errorf("%w: pass \"workspace\" (an absolute host path or file URI), or a root in initialize", session.ErrNoWorkspace)
		}
	}
	ws, err := session.ResolveWorkspace(param)
	if err != nil {
		return "", workspaceErr("workspace", err)
	}
	return ws, nil
}

// workspaceErr is a bad workspace param; a refused one keeps its own code.
func workspaceErr(field string, err error) error {
	if errors.Is(err, session.ErrRefusedPath) {
		return fmt.Errorf("%s: %w", field, err)
	}
	return badParam(field, "%v", err)
}

func (c *conn) session() (*session.Manager, *session.Client, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mgr, c.client, c.image
}

func initialize(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p InitializeParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	root, field := p.RootURI, "rootUri"
	if root == "" {
		root, field = p.RootPath, "rootPath"
	}
	if root == "" && len(p.WorkspaceFolders) > 0 {
		root, field = p.WorkspaceFolders[0].URI, "workspaceFolders[0].uri"
	}
	var ws string
	if root != "" {
		var err error
		if ws, err = session.ResolveWorkspace(root); err != nil {
			return nil, workspaceErr(field, err)
		}
	}
	opts := InitializationOptions{}
	if p.InitializationOptions != nil {
		opts = *p.InitializationOptions
	}
	if err := secrets.Check(opts.Secrets); err != nil {
		return nil, badParam("initializationOptions.secrets", "%v", err)
	}
	var limits backends.Limits
	if opts.Limits != nil {
		var err error
		if limits, err = opts.Limits.limits("initializationOptions.limits."); err != nil {
			return nil, err
		}
	}
	if opts.Backend == "" && ws != "" {
		// The workspace may name its backend: customizations.berth.backend.
		if cfg, err := devcontainer.Discover(ws, opts.Config, "", nil); err == nil && cfg.Berth.Backend != "" {
			opts.Backend = cfg.Berth.Backend
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if opts.Backend != "" && opts.Backend != c.mgr.Backend().Name() {
		if _, ok := c.s.opts.Managers[opts.Backend]; !ok {
			return nil, badParam("initializationOptions.backend", "unknown or unavailable backend %q (available: %s)",
				opts.Backend, strings.Join(c.s.backendNames(), ", "))
		}
		c.selectBackend(opts.Backend)
	}
	if opts.IncusRemote != "" {
		const incusBackend = "incus" // backends/incus.Name; remotes are Incus's alone
		if opts.Backend != "" && opts.Backend != incusBackend {
			return nil, badParam("initializationOptions.incusRemote", "names an Incus remote, but backend is %q", opts.Backend)
		}
		if c.s.opts.Remote == nil {
			return nil, badParam("initializationOptions.incusRemote", "this berth serves no Incus remotes")
		}
		mgr, err := c.s.opts.Remote(incusBackend, opts.IncusRemote)
		if err != nil {
			if mapped := toError(err); mapped.Code == CodeBackendUnavailable || mapped.Code == CodeNotSupported {
				return nil, fmt.Errorf("initializationOptions.incusRemote: %w", err)
			}
			return nil, badParam("initializationOptions.incusRemote", "%v", err) // an unknown name, say
		}
		c.selectManager(mgr)
	}
	c.defaultWS, c.image, c.state = ws, opts.Image, stateInitialized
	c.client.SetConfig(opts.Config)
	c.client.SetLimits(limits)
	c.client.SetSecrets(secrets.Merge(c.s.opts.Secrets, opts.Secrets))
	c.unmask = c.s.opts.Masker.Add(opts.Secrets)
	c.client.SetTrust(c.trustPolicy(opts.Trust, p.Capabilities))
	if p.ClientInfo != nil {
		c.log = c.log.With("client", p.ClientInfo.Name)
	}
	c.log.Info("initialized", "workspace", ws, "backend", c.mgr.Backend().Name())
	agentOn, agentWhy := c.mgr.AgentEnabled()
	if agentOn {
		agentWhy = ""
	}
	var builds []AgentBuild
	for _, b := range c.mgr.Agents().Builds() {
		builds = append(builds, toAgentBuild(b))
	}
	return InitializeResult{
		ServerInfo: ServerInfo{Name: "berth", Version: c.s.opts.Version},
		Capabilities: Capabilities{Berth: BerthCapabilities{
			Backends:         c.s.backendNames(),
			Backend:          c.mgr.Backend().Name(),
			Methods:          c.s.methods,
			DefaultWorkspace: ws,
			Agent:            agentOn,
			AgentReason:      agentWhy,
			Agents:           builds,
			Engine:           toEngine(c.mgr.Engine()),
		}},
	}, nil
}

func shutdown(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	_, client, _ := c.session()
	client.Close(ctx)
	c.mu.Lock()
	c.state = stateShutdown
	c.mu.Unlock()
	return nil, nil
}

func up(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p UpParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	if p.Image != "" {
		image = p.Image
	}
	res, err := client.Up(c.progressCtx(ctx), session.UpOptions{Workspace: ws, Image: image, Recreate: p.Recreate})
	if err != nil {
		return nil, err
	}
	out := c.toInstance(res.Instance)
	out.BuildPID = res.BuildPID
	out.Warnings = res.Warnings
	for _, w := range res.Warnings {
		c.notify("window/showMessage", protocol.ShowMessageParams{Type: protocol.MessageTypeWarning, Message: "berth: " + w})
	}
	for _, h := range res.Hooks {
		out.Hooks = append(out.Hooks, HookRun{Hook: h.Hook, Name: h.Name, PID: h.PID, Code: h.Code, Error: c.s.mask(h.Err)})
	}
	for _, t := range res.Forwarded {
		out.Forwarded = append(out.Forwarded, ForwardResult{TunnelID: t.ID, Host: "127.0.0.1", HostPort: t.HostPort})
	}
	return out, nil
}

func status(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p StatusParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	mgr, client, image := c.session()
	inst, err := client.Status(ctx, ws, image)
	if err != nil || inst == nil {
		return nil, err
	}
	out := c.toInstance(*inst)
	if p.Usage && inst.State == backends.StateRunning {
		u, err := mgr.Workspace(ws).Usage(ctx, inst.Instance)
		switch {
		case errors.Is(err, backends.ErrNotSupported):
			// The engine can't measure this instance: no usage, and the
			// rest of the status still stands.
			c.log.Debug("no usage", "err", err)
		case err != nil:
			return nil, err
		default:
			out.Usage = toUsage(u)
		}
	}
	return out, nil
}

func list(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ListParams
	if len(raw) > 0 {
		if err := decode(raw, &p); err != nil {
			return nil, err
		}
	}
	mgr, _, _ := c.session()
	if !p.All {
		insts, err := mgr.List(ctx)
		if err != nil {
			return nil, err
		}
		return c.toInstances(insts), nil
	}
	// Every backend at once, each under the metadata deadline: one that
	// doesn't answer is left out rather than holding up the others.
	names := c.s.backendNames()
	found := make([][]Instance, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(ctx, listAllTimeout)
			defer cancel()
			insts, err := c.s.opts.Managers[name].List(lctx)
			if err != nil {
				c.log.Info("berth/list: backend left out", "backend", name, "err", err)
				return
			}
			found[i] = c.toInstances(insts)
		}()
	}
	wg.Wait()
	out := []Instance{}
	for _, f := range found {
		out = append(out, f...)
	}
	return out, nil
}

// listAllTimeout bounds each backend's answer to berth/list with all.
const listAllTimeout = 3 * time.Second

func (c *conn) toInstances(insts []session.Instance) []Instance {
	out := make([]Instance, 0, len(insts))
	for _, in := range insts {
		out = append(out, c.toInstance(in))
	}
	return out
}

func down(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p DownParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	mgr, _, _ := c.session()
	if err := mgr.Workspace(ws).Down(ctx, p.Remove); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

var kinds = map[string]bool{"": true, "run": true, "test": true, "lint": true, "debug": true, "os": true}

func (c *conn) execOptions(raw json.RawMessage) (session.ExecOptions, *ExecParams, error) {
	var p ExecParams
	if err := decode(raw, &p); err != nil {
		return session.ExecOptions{}, nil, err
	}
	if len(p.Argv) == 0 {
		return session.ExecOptions{}, nil, badParam("argv", "must be a non-empty array of strings")
	}
	if p.Argv[0] == "" {
		return session.ExecOptions{}, nil, badParam("argv", "argv[0] must name a command")
	}
	if !kinds[p.Kind] {
		return session.ExecOptions{}, nil, badParam("kind", "must be one of run, test, lint, debug, os; got %q", p.Kind)
	}
	if p.TimeoutMs < 0 {
		return session.ExecOptions{}, nil, badParam("timeoutMs", "must not be negative")
	}
	for k := range p.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return session.ExecOptions{}, nil, badParam("env", "invalid variable name %q", k)
		}
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return session.ExecOptions{}, nil, err
	}
	_, _, image := c.session()
	kind := p.Kind
	if kind == "" {
		kind = "run"
	}
	if !p.TTY && (p.Cols != 0 || p.Rows != 0) {
		return session.ExecOptions{}, nil, badParam("cols", "cols and rows need tty: true")
	}
	return session.ExecOptions{
		Workspace: ws, Image: image, Argv: p.Argv, Cwd: p.Cwd, Env: p.Env, User: p.User,
		Stdin: p.Stdin, Kind: kind, MapPaths: p.MapPaths == nil || *p.MapPaths,
		TTY: p.TTY, Cols: p.Cols, Rows: p.Rows,
	}, &p, nil
}

// execReply releases the process's output once the client has its pid.
type execReply struct {
	res  ExecResult
	proc *session.Process
}

func (r execReply) result() any { return r.res }
func (r execReply) afterReply() { r.proc.Release() }

func execMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	opts, p, err := c.execOptions(raw)
	if err != nil {
		return nil, err
	}
	if p.TimeoutMs != 0 {
		return nil, badParam("timeoutMs", "only berth/run takes a timeout; end an exec with berth/signal")
	}
	_, client, _ := c.session()
	proc, err := client.Exec(c.progressCtx(ctx), opts)
	if err != nil {
		return nil, err
	}
	return execReply{res: ExecResult{PID: proc.ID()}, proc: proc}, nil
}

func run(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	opts, p, err := c.execOptions(raw)
	if err != nil {
		return nil, err
	}
	if p.Stdin {
		return nil, badParam("stdin", "berth/run takes no stdin; use berth/exec")
	}
	if p.TTY {
		return nil, badParam("tty", "berth/run takes no tty; use berth/exec")
	}
	_, client, _ := c.session()
	res, err := client.Run(c.progressCtx(ctx), opts, time.Duration(p.TimeoutMs)*time.Millisecond)
	if err != nil {
		return nil, err
	}
	return RunResult{
		Code: res.Status.Code, Signal: res.Status.Signal, OOM: res.Status.OOM, Stdout: res.Stdout, Stderr: res.Stderr,
		TimedOut: res.TimedOut, Truncated: res.Truncated,
	}, nil
}

func stdin(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p StdinParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.PID == "" {
		return nil, badParam("pid", "required")
	}
	_, client, _ := c.session()
	if err := client.Stdin(p.PID, p.Text, p.Close); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// parseSignalParam accepts a JSON string ("TERM", "SIGTERM", "15") or number.
func parseSignalParam(raw json.RawMessage) (int, error) {
	if len(raw) == 0 {
		return 0, badParam("signal", "required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return 0, badParam("signal", "must be a name like \"TERM\" or a number")
		}
		s = strconv.Itoa(n)
	}
	sig, err := backends.ParseSignal(s)
	if err != nil {
		return 0, badParam("signal", "%v", err)
	}
	return sig, nil
}

func signal(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p SignalParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.PID == "" {
		return nil, badParam("pid", "required")
	}
	sig, err := parseSignalParam(p.Signal)
	if err != nil {
		return nil, err
	}
	_, client, _ := c.session()
	if err := client.Signal(ctx, p.PID, sig); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// workspaceFilter reads an optional workspace param that narrows a
// listing; empty means every workspace.
func (c *conn) workspaceFilter(raw json.RawMessage) (string, error) {
	var p WorkspaceParams
	if err := decode(raw, &p); err != nil || p.Workspace == "" {
		return "", err
	}
	return c.workspace(p.Workspace)
}

func processes(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ProcessesParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspaceFilter(raw)
	if err != nil {
		return nil, err
	}
	switch p.State {
	case "", session.StateRunning, session.StateExited:
	default:
		return nil, badParam("state", "%q: use \"running\" or \"exited\"", p.State)
	}
	if p.Limit < 0 {
		return nil, badParam("limit", "must not be negative")
	}
	_, client, _ := c.session()
	infos := client.Processes(ws)
	out := make([]ProcessInfo, 0, len(infos))
	for _, in := range infos {
		if p.State != "" && in.State != p.State {
			continue
		}
		pi := ProcessInfo{PID: in.ID, Workspace: in.Workspace, Argv: c.s.opts.Masker.MaskAll(in.Argv), Kind: in.Kind, State: in.State, StartedAt: in.StartedAt}
		if in.State == session.StateExited {
			code, fin := in.Status.Code, in.FinishedAt
			pi.Code, pi.Signal, pi.FinishedAt = &code, in.Status.Signal, &fin
		}
		out = append(out, pi)
	}
	if p.Limit > 0 && len(out) > p.Limit {
		out = out[len(out)-p.Limit:] // the newest, still in start order
	}
	return out, nil
}

func toContainer(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	return mapPaths(ctx, c, raw, true)
}

func toHost(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	return mapPaths(ctx, c, raw, false)
}

func mapPaths(ctx context.Context, c *conn, raw json.RawMessage, toContainer bool) (any, error) {
	var p PathsParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.Paths == nil {
		return nil, badParam("paths", "required: an array of paths or file URIs")
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	mgr, _, _ := c.session()
	m, err := mgr.Workspace(ws).Mapper(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*string, len(p.Paths))
	for i, in := range p.Paths {
		var got string
		var ok bool
		if toContainer {
			got, ok = session.ToContainer(m, in)
		} else {
			got, ok = m.ToHost(in)
		}
		if ok {
			out[i] = &got
		}
	}
	return PathsResult{Paths: out}, nil
}

func resize(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ResizeParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.PID == "" {
		return nil, badParam("pid", "required")
	}
	if p.Cols == 0 || p.Rows == 0 {
		return nil, badParam("cols", "cols and rows must be positive")
	}
	_, client, _ := c.session()
	if err := client.Resize(ctx, p.PID, p.Cols, p.Rows); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func validPort(field string, port int, zeroOK bool) error {
	if port < 0 || port > 65535 || (port == 0 && !zeroOK) {
		if zeroOK {
			return badParam(field, "must be a port number 0-65535, got %d", port)
		}
		return badParam(field, "must be a port number 1-65535, got %d", port)
	}
	return nil
}

func forward(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ForwardParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if err := validPort("containerPort", p.ContainerPort, false); err != nil {
		return nil, err
	}
	if err := validPort("hostPort", p.HostPort, true); err != nil {
		return nil, err
	}
	if p.HostSocket != "" {
		switch {
		case p.HostPort != 0:
			return nil, badParam("hostSocket", "give hostSocket or hostPort, not both")
		case !filepath.IsAbs(p.HostSocket) || strings.ContainsRune(p.HostSocket, 0):
			return nil, badParam("hostSocket", "must be an absolute host path, got %q", p.HostSocket)
		}
	}
	if p.ContainerHost == "" {
		p.ContainerHost = "127.0.0.1"
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	if p.HostSocket != "" {
		info, err := client.ForwardSocket(c.progressCtx(ctx), ws, image, p.ContainerHost, p.ContainerPort, p.HostSocket)
		if err != nil {
			return nil, err
		}
		return ForwardResult{TunnelID: info.ID, HostSocket: info.HostSocket}, nil
	}
	info, err := client.Forward(c.progressCtx(ctx), ws, image, p.ContainerHost, p.ContainerPort, p.HostPort)
	if err != nil {
		return nil, err
	}
	return ForwardResult{TunnelID: info.ID, Host: "127.0.0.1", HostPort: info.HostPort}, nil
}

func reverse(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p ReverseParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if err := validPort("hostPort", p.HostPort, false); err != nil {
		return nil, err
	}
	if err := validPort("containerPort", p.ContainerPort, true); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	info, err := client.Reverse(c.progressCtx(ctx), ws, image, p.HostPort, p.ContainerPort)
	if err != nil {
		return nil, err
	}
	return ReverseResult{TunnelID: info.ID, ContainerHost: info.ContainerHost, ContainerPort: info.ContainerPort}, nil
}

func closeTunnel(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p CloseTunnelParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.TunnelID == "" {
		return nil, badParam("tunnelId", "required")
	}
	_, client, _ := c.session()
	if err := client.CloseTunnel(p.TunnelID); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

func tunnels(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	ws, err := c.workspaceFilter(raw)
	if err != nil {
		return nil, err
	}
	_, client, _ := c.session()
	infos := client.Tunnels(ws)
	out := make([]TunnelInfo, 0, len(infos))
	for _, t := range infos {
		ti := TunnelInfo{
			TunnelID: t.ID, Workspace: t.Workspace, Direction: t.Direction, Host: "127.0.0.1",
			HostPort: t.HostPort, ContainerHost: t.ContainerHost, ContainerPort: t.ContainerPort, Active: t.Active,
			Auto: t.Auto,
		}
		if t.HostSocket != "" {
			ti.Host, ti.HostSocket = "", t.HostSocket
		}
		out = append(out, ti)
	}
	return out, nil
}
