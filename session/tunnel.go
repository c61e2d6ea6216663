package session

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/unixsock"
)

// Tunnel directions.
const (
	Forward = "forward" // host listener → container address
	Reverse = "reverse" // container listener → host address
)

// TunnelInfo describes an open tunnel.
type TunnelInfo struct {
	ID            string
	Workspace     string
	Direction     string
	HostPort      int    // host side, on 127.0.0.1; 0 for a socket
	HostSocket    string // host side, a unix socket; "" for a port
	ContainerHost string
	ContainerPort int
	Active        int  // connections open now
	Auto          bool // an auto-forward of a detected port: the workspace's, shared by its clients
}

// tunnel is one open tunnel.
//
// Goroutines: for a forward tunnel, an accept loop and one joiner per
// connection; for a reverse one, the joiners run on the agent client's
// goroutines. close waits for its own.
type tunnel struct {
	info TunnelInfo
	ln   net.Listener    // forward
	rl   *agent.Listener // reverse
	wg   sync.WaitGroup
	done func() // after the listener closes: removes a socket file

	mu    sync.Mutex // guards the following
	conns map[net.Conn]bool
	shut  bool
}

func (t *tunnel) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		c.Close()
		return false
	}
	t.conns[c] = true
	return true
}

func (t *tunnel) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

func (t *tunnel) snapshot() TunnelInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	info := t.info
	info.Active = len(t.conns) / 2 // each connection is a host and a container end
	return info
}

func (t *tunnel) close() {
	t.mu.Lock()
	t.shut = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	if t.ln != nil {
		t.ln.Close()
	}
	if t.rl != nil {
		t.rl.Close()
	}
	t.wg.Wait()
	if t.done != nil {
		t.done()
	}
}

// joinTracked splices a and b, closing both if the tunnel closes first.
func (t *tunnel) joinTracked(a, b net.Conn) {
	if !t.track(a) {
		b.Close()
		return
	}
	if !t.track(b) {
		t.untrack(a)
		a.Close()
		return
	}
	agent.Join(a, b)
	t.untrack(a)
	t.untrack(b)
}

func (c *Client) addTunnel(t *tunnel) (TunnelInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return TunnelInfo{}, ErrClosed
	}
	c.nextTunnel++
	t.info.ID = "t" + strconv.Itoa(c.nextTunnel)
	c.tunnels[t.info.ID] = t
	return t.info, nil
}

// agentOf returns the workspace's running instance's agent, or an error
// saying why tunnels can't work.
func (c *Client) agentOf(ctx context.Context, ws, image string) (*Workspace, Ready, *agent.Client, error) {
	w := c.Workspace(ws)
	r, err := c.ensure(ctx, w, image)
	if err != nil {
		return nil, Ready{}, nil, err
	}
	ac, err := w.agentFor(ctx, r)
	return w, r, ac, err
}

// Forward listens on host 127.0.0.1:hostPort (0 picks a port) and carries
// each connection to containerHost:containerPort inside the workspace's
// instance, through the agent. It never uses the container's IP address.
func (c *Client) Forward(ctx context.Context, ws, image, containerHost string, containerPort, hostPort int) (TunnelInfo, error) {
	if _, _, _, err := c.agentOf(ctx, ws, image); err != nil {
		return TunnelInfo{}, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort)))
	if err != nil {
		return TunnelInfo{}, fmt.Errorf("%w on 127.0.0.1:%d: %v", ErrBind, hostPort, err)
	}
	t := &tunnel{ln: ln, info: TunnelInfo{HostPort: ln.Addr().(*net.TCPAddr).Port}}
	return c.forward(t, ws, image, containerHost, containerPort)
}

// ForwardSocket is Forward with its host end a unix socket at path, which
// only the user who runs berth (and root) may connect to: unlike a port on
// 127.0.0.1, other local users can't reach it. berth creates the socket
// with mode 0600, replaces only a stale socket of the same path, and
// removes it when the tunnel closes.
func (c *Client) ForwardSocket(ctx context.Context, ws, image, containerHost string, containerPort int, path string) (TunnelInfo, error) {
	if _, _, _, err := c.agentOf(ctx, ws, image); err != nil {
		return TunnelInfo{}, err
	}
	ln, remove, err := unixsock.Listen(path)
	if err != nil {
		return TunnelInfo{}, fmt.Errorf("%w on %s: %w", ErrBind, path, err)
	}
	t := &tunnel{ln: ln, done: remove, info: TunnelInfo{HostSocket: path}}
	return c.forward(t, ws, image, containerHost, containerPort)
}

// forward registers t, whose listener is open, and carries its connections
// to containerHost:containerPort.
func (c *Client) forward(t *tunnel, ws, image, containerHost string, containerPort int) (TunnelInfo, error) {
	t.conns = map[net.Conn]bool{}
	t.info.Workspace, t.info.Direction = ws, Forward
	t.info.ContainerHost, t.info.ContainerPort = containerHost, containerPort
	info, err := c.addTunnel(t)
	if err != nil {
		t.close()
		return TunnelInfo{}, err
	}
	ln := t.ln
	addr := net.JoinHostPort(containerHost, strconv.Itoa(containerPort))
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
				cc, err := c.dialIn(c.ctx, ws, image, addr)
				if err != nil {
					c.log.Info("tunnel: dial in container failed", "tunnel", info.ID, "addr", addr, "err", err)
					hc.Close()
					return
				}
				t.joinTracked(hc, cc)
			}()
		}
	}()
	if info.HostSocket != "" {
		c.log.Info("forward tunnel open", "tunnel", info.ID, "socket", info.HostSocket, "addr", addr)
	} else {
		c.log.Info("forward tunnel open", "tunnel", info.ID, "port", info.HostPort, "addr", addr)
	}
	return info, nil
}

// dialIn connects to addr inside the workspace's instance, resolved per
// connection, since the instance or its agent may have restarted.
func (c *Client) dialIn(ctx context.Context, ws, image, addr string) (net.Conn, error) {
	w, r, _, err := c.agentOf(ctx, ws, image)
	if err != nil {
		return nil, err
	}
	return w.dial(ctx, r, addr)
}

// Reverse listens on the instance's 127.0.0.1:containerPort (0 picks a
// port) and carries each connection to host 127.0.0.1:hostPort.
func (c *Client) Reverse(ctx context.Context, ws, image string, hostPort, containerPort int) (TunnelInfo, error) {
	w, r, ac, err := c.agentOf(ctx, ws, image)
	if err != nil {
		return TunnelInfo{}, err
	}
	t := &tunnel{
		conns: map[net.Conn]bool{},
		info: TunnelInfo{
			Workspace: ws, Direction: Reverse, HostPort: hostPort, ContainerHost: "127.0.0.1",
		},
	}
	hostAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(hostPort))
	toHost := func(cc net.Conn) {
		hc, err := net.Dial("tcp", hostAddr)
		if err != nil {
			c.log.Info("reverse tunnel: host dial failed", "addr", hostAddr, "err", err)
			cc.Close()
			return
		}
		t.joinTracked(cc, hc)
	}
	listenAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(containerPort))
	if ns := w.netnsPath(ctx, r); ns != "" {
		if ln, err := netnsListen(ns, listenAddr); err == nil {
			t.ln = ln
			t.info.ContainerPort = ln.Addr().(*net.TCPAddr).Port
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				for {
					cc, err := ln.Accept()
					if err != nil {
						return
					}
					t.wg.Add(1)
					go func() {
						defer t.wg.Done()
						toHost(cc)
					}()
				}
			}()
		}
	}
	if t.ln == nil {
		rl, err := ac.Listen(ctx, listenAddr, toHost)
		if err != nil {
			return TunnelInfo{}, fmt.Errorf("%w in the container on %s: %v", ErrBind, listenAddr, err)
		}
		t.rl = rl
		t.info.ContainerPort = rl.Port
	}
	info, err := c.addTunnel(t)
	if err != nil {
		t.close()
		return TunnelInfo{}, err
	}
	c.log.Info("reverse tunnel open", "tunnel", info.ID, "port", hostPort, "containerPort", info.ContainerPort)
	return info, nil
}

// CloseTunnel closes a tunnel and every connection through it.
func (c *Client) CloseTunnel(id string) error {
	c.mu.Lock()
	t, ok := c.tunnels[id]
	delete(c.tunnels, id)
	c.mu.Unlock()
	if !ok {
		if c.closeAutoForward(id) {
			return nil
		}
		return fmt.Errorf("%w: %q", ErrNoSuchTunnel, id)
	}
	t.close()
	return nil
}

// Tunnels lists the client's open tunnels, all or one workspace's, and
// then the auto-forwards of the workspaces it uses.
func (c *Client) Tunnels(ws string) []TunnelInfo {
	c.mu.Lock()
	ts := make([]*tunnel, 0, len(c.tunnels))
	for _, t := range c.tunnels {
		if ws == "" || t.info.Workspace == ws {
			ts = append(ts, t)
		}
	}
	c.mu.Unlock()
	out := make([]TunnelInfo, 0, len(ts))
	for _, t := range ts {
		out = append(out, t.snapshot())
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(out[i].ID[1:])
		b, _ := strconv.Atoi(out[j].ID[1:])
		return a < b
	})
	return append(out, c.autoForwards(ws)...)
}

func (c *Client) closeTunnels() {
	c.mu.Lock()
	ts := c.tunnels
	c.tunnels = map[string]*tunnel{}
	c.mu.Unlock()
	for _, t := range ts {
		t.close()
	}
}

// exitGrace is how long a debuggee's tunnel outlives it: a connection it
// made just before exiting may still be on its way through.
const exitGrace = time.Second

// CloseTunnelOnExit closes the tunnel id when p exits: a debuggee's
// tunnel lives as long as it does. It leaves the list at once, and closes
// exitGrace later.
func (c *Client) CloseTunnelOnExit(p *Process, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		<-p.done
		c.mu.Lock()
		t := c.tunnels[id]
		delete(c.tunnels, id)
		c.mu.Unlock()
		if t == nil {
			return
		}
		select {
		case <-time.After(exitGrace):
		case <-c.ctx.Done():
		}
		t.close()
	}()
	return nil
}
