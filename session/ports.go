package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/devcontainer"
)

// Port is a TCP port listening in a workspace's instance.
type Port struct {
	Port        int
	BindAddress string // inside the instance: "0.0.0.0", "::", "127.0.0.1", ...
	PID         int    // its owner in the instance
	Process     string // the owner's name
	Label       string // from portsAttributes
	// OnAutoForward is what portsAttributes (else otherPortsAttributes,
	// else the spec's default, notify) say to do when it is detected.
	OnAutoForward string
	TunnelID      string // the auto-forward carrying it, if any
	HostPort      int    // that forward's host port on 127.0.0.1
}

// onAutoForward values.
const (
	AutoNotify = "notify" // the spec's default
	AutoIgnore = "ignore"
)

// PortSink is a Sink that also hears of a workspace's ports and carries
// the instance's $BROWSER requests to its user. A client whose sink is one
// watches the ports of the workspaces it uses.
type PortSink interface {
	// PortsChanged says the workspace's detected ports, or their
	// forwards, changed; ports is all of them.
	PortsChanged(workspace string, ports []Port)
	// ShowDocument asks the client's user to open url, an http(s) URL
	// that reaches the host, in their browser.
	ShowDocument(ctx context.Context, workspace, url string) error
}

// ErrNoBrowser means no client of the workspace can open a URL.
var ErrNoBrowser = errors.New("no editor or berth command of this workspace can open URLs")

// PortAttributes resolves a port's portsAttributes (by number, then by
// range, else otherPortsAttributes), with onAutoForward defaulting to
// notify as the spec says. cfg may be nil.
func PortAttributes(cfg *devcontainer.Config, port int) devcontainer.PortAttributes {
	var a devcontainer.PortAttributes
	if cfg != nil {
		a = cfg.AttributesOf(port)
	}
	if a.OnAutoForward == "" {
		a.OnAutoForward = AutoNotify
	}
	return a
}

// autoForwards reports whether a configuration asks for auto-forwards:
// only a devcontainer.json does. A plain image or a Containerfile keeps
// berth's default, as for shutdownAction: ports are reported, and the
// editor forwards what it wants.
func autoForwards(cfg *devcontainer.Config) bool {
	if cfg == nil {
		return false
	}
	switch cfg.Source {
	case devcontainer.SourceDevcontainerJSON, devcontainer.SourceDotDevcontainer, devcontainer.SourceNamed:
		return true
	case devcontainer.SourceExplicit:
		return strings.HasSuffix(cfg.File, ".json")
	}
	return false
}

// portWatcher watches a workspace's listening ports through its agent,
// auto-forwards them as portsAttributes say, and carries the instance's
// $BROWSER requests. The workspace owns it while some client that hears
// of ports uses the workspace; its auto-forwards are the workspace's,
// shared by those clients, and close when the instance's agent goes
// (the instance stopped) or the watcher stops.
//
// Goroutines: run, which stop waits for; each auto-forward's accept loop
// and joiners, which closing the forward waits for.
type portWatcher struct {
	w      *Workspace
	ctx    context.Context // ends at stop
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	wake   chan struct{} // the instance may be ready: look again

	mu         sync.Mutex // guards the following
	ports      []Port     // as last reported to clients
	reported   chan struct{}
	forwards   map[int]*tunnel // auto-forwards, by container port
	suppressed map[int]bool    // auto-forwards the user closed, until the port stops listening
}

// portRetry is how often the watcher looks for a ready instance and agent
// when nothing woke it.
const portRetry = 2 * time.Second

// watchPorts starts w's port watcher if c hears of ports and none runs,
// and wakes it either way: w's instance was just ensured.
func (c *Client) watchPorts(w *Workspace) {
	if _, ok := c.sink.(PortSink); !ok {
		return
	}
	w.mu.Lock()
	pw := w.portWatch
	if pw == nil && !w.m.isClosed() {
		ctx, cancel := context.WithCancel(w.m.ctx)
		pw = &portWatcher{
			w: w, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
			reported: make(chan struct{}), forwards: map[int]*tunnel{}, suppressed: map[int]bool{},
		}
		w.portWatch = pw
		go pw.run()
	}
	w.mu.Unlock()
	if pw != nil {
		select {
		case pw.wake <- struct{}{}:
		default:
		}
	}
}

// stopPorts stops w's port watcher, closing its auto-forwards, once no
// client that hears of ports uses w.
func (w *Workspace) stopPorts(force bool) {
	w.mu.Lock()
	pw := w.portWatch
	if pw == nil {
		w.mu.Unlock()
		return
	}
	if !force {
		for c := range w.clients {
			if _, ok := c.sink.(PortSink); ok {
				w.mu.Unlock()
				return
			}
		}
	}
	w.portWatch = nil
	w.mu.Unlock()
	pw.cancel()
	<-pw.done
}

func (pw *portWatcher) run() {
	defer close(pw.done)
	defer pw.reset()
	told := false // that the agent is too old to watch ports
	for {
		if r, ok := pw.w.current(); ok && !pw.w.agentDied(r) {
			if ac, err := pw.w.agentFor(pw.ctx, r); err == nil {
				err = ac.WatchPorts(pw.ctx,
					func(ps []agent.ListenPort) { pw.update(r, ps) },
					func(ctx context.Context, u string) error { return pw.browse(ctx, r, u) })
				switch {
				case errors.Is(err, agent.ErrNoPortWatch):
					// A new start of the instance may bring a newer agent.
					if !told {
						pw.w.log.Info("ports are not watched: the instance's agent is older than this berth", "instance", r.Name)
						told = true
					}
				case pw.ctx.Err() == nil:
					pw.w.log.Debug("port watch ended", "err", err)
				}
			}
			pw.reset()
		}
		select {
		case <-pw.ctx.Done():
			return
		case <-pw.wake:
		case <-time.After(portRetry):
		}
	}
}

// reset forgets the ports and closes the auto-forwards: the instance's
// agent is gone.
func (pw *portWatcher) reset() {
	pw.mu.Lock()
	fwds := pw.forwards
	pw.forwards = map[int]*tunnel{}
	pw.suppressed = map[int]bool{}
	changed := len(pw.ports) > 0
	pw.ports = nil
	select {
	case <-pw.reported:
		pw.reported = make(chan struct{})
	default:
	}
	pw.mu.Unlock()
	for _, t := range fwds {
		t.close()
	}
	if changed {
		pw.notify(nil)
	}
}

// update takes the agent's report of r's listeners.
func (pw *portWatcher) update(r Ready, raw []agent.ListenPort) {
	debug := pw.w.debugGroups()
	// One entry per port: the widest bind address wins.
	var ports []Port
	byPort := map[int]int{}
	for _, l := range raw {
		if l.PID == 0 || debug[l.PGID] {
			// No owner in the instance: a listener berth itself opened
			// in its network namespace. berth/debug's are its own too.
			continue
		}
		if i, ok := byPort[l.Port]; ok {
			if a, err := netip.ParseAddr(l.Addr); err == nil && a.IsUnspecified() {
				ports[i].BindAddress = l.Addr
			}
			continue
		}
		a := PortAttributes(r.Config, l.Port)
		byPort[l.Port] = len(ports)
		ports = append(ports, Port{Port: l.Port, BindAddress: l.Addr, PID: l.PID, Process: l.Name, Label: a.Label, OnAutoForward: a.OnAutoForward})
	}
	forwarded := pw.w.clientForwards()
	auto := autoForwards(r.Config)
	if auto {
		// forwardPorts are each client's own (Client.Up).
		for _, fp := range r.Config.ForwardPorts {
			if forwarded[fp.Port] == 0 {
				forwarded[fp.Port] = -1
			}
		}
	}

	pw.mu.Lock()
	var closing []*tunnel
	for port, t := range pw.forwards {
		if _, ok := byPort[port]; !ok {
			closing = append(closing, t)
			delete(pw.forwards, port)
		}
	}
	for port := range pw.suppressed {
		if _, ok := byPort[port]; !ok {
			delete(pw.suppressed, port) // it stopped listening: next time is new
		}
	}
	for i := range ports {
		p := &ports[i]
		t := pw.forwards[p.Port]
		if t == nil && auto && p.OnAutoForward != AutoIgnore && !pw.suppressed[p.Port] && forwarded[p.Port] == 0 && pw.ctx.Err() == nil {
			var err error
			if t, err = pw.openForward(r, p.BindAddress, p.Port); err != nil {
				pw.w.log.Warn("auto-forward failed", "port", p.Port, "err", err)
			} else {
				pw.forwards[p.Port] = t
			}
		}
		if t != nil {
			p.TunnelID, p.HostPort = t.info.ID, t.info.HostPort
		}
	}
	changed := !slices.Equal(ports, pw.ports)
	pw.ports = ports
	select {
	case <-pw.reported:
	default:
		close(pw.reported)
		changed = true
	}
	pw.mu.Unlock()
	for _, t := range closing {
		t.close()
	}
	if changed {
		pw.notify(ports)
	}
}

// dialHost is where a forward reaches a port bound to addr: loopback for
// a wildcard or loopback bind, else the address itself.
func dialHost(addr string) string {
	a, err := netip.ParseAddr(addr)
	switch {
	case err != nil || a.IsUnspecified():
		return "127.0.0.1"
	case a.Is6() && a.IsLoopback():
		return "::1"
	case a.IsLoopback():
		return "127.0.0.1"
	}
	return a.String()
}

// openForward opens an auto-forward to port: on the same host port when it
// is free, else any. The caller holds pw.mu.
func (pw *portWatcher) openForward(r Ready, bind string, port int) (*tunnel, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("%w on 127.0.0.1: %v", ErrBind, err)
		}
	}
	host := dialHost(bind)
	t := &tunnel{ln: ln, conns: map[net.Conn]bool{}, info: TunnelInfo{
		ID: "a" + strconv.FormatUint(pw.w.m.autoIDs.Add(1), 10), Workspace: pw.w.path, Direction: Forward,
		HostPort: ln.Addr().(*net.TCPAddr).Port, ContainerHost: host, ContainerPort: port, Auto: true,
	}}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		for {
			hc, err := ln.Accept()
			if err != nil {
				return
			}
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				ctx, cancel := context.WithTimeout(pw.ctx, startTimeout)
				cc, err := pw.w.dial(ctx, r, addr)
				cancel()
				if err != nil {
					pw.w.log.Info("auto-forward: dial in container failed", "tunnel", t.info.ID, "addr", addr, "err", err)
					hc.Close()
					return
				}
				t.joinTracked(hc, cc)
			}()
		}
	}()
	pw.w.log.Info("auto-forward open", "tunnel", t.info.ID, "port", t.info.HostPort, "addr", addr)
	return t, nil
}

// closeForward closes the auto-forward id, if it is one of pw's, and keeps
// its port from being auto-forwarded again until it stops listening.
func (pw *portWatcher) closeForward(id string) bool {
	pw.mu.Lock()
	var t *tunnel
	for port, f := range pw.forwards {
		if f.info.ID == id {
			t = f
			delete(pw.forwards, port)
			pw.suppressed[port] = true
			break
		}
	}
	var ports []Port
	if t != nil {
		ports = slices.Clone(pw.ports)
		for i := range ports {
			if ports[i].TunnelID == id {
				ports[i].TunnelID, ports[i].HostPort = "", 0
			}
		}
		pw.ports = ports
	}
	pw.mu.Unlock()
	if t == nil {
		return false
	}
	t.close()
	pw.notify(ports)
	return true
}

// snapshot returns the ports and auto-forwards, waiting up to wait for the
// first report of the current agent.
func (pw *portWatcher) snapshot(ctx context.Context, wait time.Duration) ([]Port, []TunnelInfo) {
	pw.mu.Lock()
	reported := pw.reported
	pw.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-reported:
	case <-t.C:
	case <-ctx.Done():
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return slices.Clone(pw.ports), pw.forwardInfos()
}

// forwardInfos lists the auto-forwards. The caller holds pw.mu.
func (pw *portWatcher) forwardInfos() []TunnelInfo {
	out := make([]TunnelInfo, 0, len(pw.forwards))
	for _, t := range pw.forwards {
		out = append(out, t.snapshot())
	}
	slices.SortFunc(out, func(a, b TunnelInfo) int { return a.ContainerPort - b.ContainerPort })
	return out
}

// notify tells every client of the workspace that hears of ports.
func (pw *portWatcher) notify(ports []Port) {
	for _, s := range pw.w.portSinks() {
		s.PortsChanged(pw.w.path, slices.Clone(ports))
	}
}

// browse opens u, a $BROWSER request from r's instance, for the
// workspace's clients: a localhost URL's port is forwarded first (an
// auto-forward, if no forward of it is open) and the URL rewritten to the
// host port.
func (pw *portWatcher) browse(ctx context.Context, r Ready, u string) error {
	if err := agent.CheckBrowseURL(u); err != nil {
		return err
	}
	u, err := agent.HostURL(u, func(port int) (int, error) { return pw.hostPortFor(r, port) })
	if err != nil {
		return err
	}
	sinks := pw.w.portSinks()
	if len(sinks) == 0 {
		return ErrNoBrowser
	}
	var errs []error
	for _, s := range sinks {
		err := s.ShowDocument(ctx, pw.w.path, u)
		if err == nil {
			return nil // one user, one browser tab
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: %w", ErrNoBrowser, errors.Join(errs...))
}

// hostPortFor returns the host port that reaches container port: an open
// forward's, else a new auto-forward's.
func (pw *portWatcher) hostPortFor(r Ready, port int) (int, error) {
	if hp := pw.w.clientForwards()[port]; hp != 0 {
		return hp, nil
	}
	pw.mu.Lock()
	t := pw.forwards[port]
	if t == nil {
		bind := "127.0.0.1"
		for _, p := range pw.ports {
			if p.Port == port {
				bind = p.BindAddress
			}
		}
		var err error
		if t, err = pw.openForward(r, bind, port); err != nil {
			pw.mu.Unlock()
			return 0, err
		}
		pw.forwards[port] = t
		delete(pw.suppressed, port)
		for i := range pw.ports {
			if pw.ports[i].Port == port {
				pw.ports[i].TunnelID, pw.ports[i].HostPort = t.info.ID, t.info.HostPort
			}
		}
	}
	hp := t.info.HostPort
	ports := slices.Clone(pw.ports)
	pw.mu.Unlock()
	pw.notify(ports)
	return hp, nil
}

// portSinks returns the workspace's clients that hear of ports.
func (w *Workspace) portSinks() []PortSink {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []PortSink
	for c := range w.clients {
		if s, ok := c.sink.(PortSink); ok {
			out = append(out, s)
		}
	}
	return out
}

// clientForwards returns the host port of every forward tunnel a client
// of w opened to a container port, by that port: those ports are not
// auto-forwarded again.
func (w *Workspace) clientForwards() map[int]int {
	w.mu.Lock()
	clients := make([]*Client, 0, len(w.clients))
	for c := range w.clients {
		clients = append(clients, c)
	}
	w.mu.Unlock()
	out := map[int]int{}
	for _, c := range clients {
		c.mu.Lock()
		for _, t := range c.tunnels {
			if t.info.Workspace == w.path && t.info.Direction == Forward && t.info.HostPort != 0 {
				out[t.info.ContainerPort] = t.info.HostPort
			}
		}
		c.mu.Unlock()
	}
	return out
}

// debugGroups returns the process groups of the running berth/debug
// servers of w's clients: their ports are berth's, never reported.
func (w *Workspace) debugGroups() map[int]bool {
	w.mu.Lock()
	clients := make([]*Client, 0, len(w.clients))
	for c := range w.clients {
		clients = append(clients, c)
	}
	w.mu.Unlock()
	out := map[int]bool{}
	for _, c := range clients {
		c.mu.Lock()
		for _, p := range c.procs {
			if p.kind != "debug" || p.workspace != w.path {
				continue
			}
			if pp, ok := p.proc.(interface{ PID() int }); ok && pp.PID() > 0 {
				out[pp.PID()] = true
			}
		}
		c.mu.Unlock()
	}
	return out
}

// Ports returns ws's detected ports and its auto-forwards, waiting
// briefly for the first report when the watch just started.
func (c *Client) Ports(ctx context.Context, ws string) ([]Port, []TunnelInfo) {
	w := c.Workspace(ws)
	if _, ok := w.current(); ok {
		c.watchPorts(w)
	}
	w.mu.Lock()
	pw := w.portWatch
	w.mu.Unlock()
	if pw == nil {
		return nil, nil
	}
	return pw.snapshot(ctx, time.Second)
}

// autoForwards returns the auto-forwards of the workspaces c uses, all or
// ws's.
func (c *Client) autoForwards(ws string) []TunnelInfo {
	var out []TunnelInfo
	for _, w := range c.m.known() {
		if ws != "" && w.path != ws {
			continue
		}
		w.mu.Lock()
		pw, mine := w.portWatch, w.clients[c]
		w.mu.Unlock()
		if pw == nil || !mine {
			continue
		}
		pw.mu.Lock()
		out = append(out, pw.forwardInfos()...)
		pw.mu.Unlock()
	}
	return out
}

// closeAutoForward closes the auto-forward id of a workspace c uses.
func (c *Client) closeAutoForward(id string) bool {
	for _, w := range c.m.known() {
		w.mu.Lock()
		pw, mine := w.portWatch, w.clients[c]
		w.mu.Unlock()
		if pw != nil && mine && pw.closeForward(id) {
			return true
		}
	}
	return false
}
