package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/plugins"
)

// pluginEntry is the plugin host of one start of one instance.
type pluginEntry struct {
	key  string // runnerKey of the instance start
	host *plugins.Host
}

// Plugins reads the plugin files of the workspace's instance afresh,
// starting the instance when needed, and returns what they declare with the
// instance's mapper.
func (c *Client) Plugins(ctx context.Context, ws, image string) (plugins.Set, Ready, error) {
	w, r, err := c.pluginReady(ctx, ws, image)
	if err != nil {
		return plugins.Set{}, Ready{}, err
	}
	set, err := w.pluginHost(r).Discover(ctx)
	return set, r, err
}

// CallPlugin calls method ("hello.greet") of a plugin the workspace's image
// exports. Host paths and file URIs in params reach the plugin as container
// ones; container paths in its result come back as host ones.
func (c *Client) CallPlugin(ctx context.Context, ws, image, method string, params json.RawMessage, timeout time.Duration) (json.RawMessage, error) {
	w, r, err := c.pluginReady(ctx, ws, image)
	if err != nil {
		return nil, err
	}
	params, err = plugins.MapStrings(params, func(s string) string {
		if cp, ok := ToContainer(r.Mapper, s); ok {
			return cp
		}
		return s
	})
	if err != nil {
		return nil, fmt.Errorf("params: %w", err) // rpc checked them: not reached
	}
	res, err := w.pluginHost(r).Call(context.WithValue(ctx, pluginCaller{}, c), method, params, timeout)
	var ce *plugins.CallError
	if errors.As(err, &ce) {
		ce.Msg, ce.Stderr = r.Mapper.RewriteToHost(ce.Msg), r.Mapper.RewriteToHost(ce.Stderr)
	}
	if err != nil {
		return nil, err
	}
	return plugins.MapStrings(res, r.Mapper.RewriteToHost)
}

// pluginReady ensures the instance, anew when its agent died behind
// berth's back, as RunWork does.
func (c *Client) pluginReady(ctx context.Context, ws, image string) (*Workspace, Ready, error) {
	w := c.Workspace(ws)
	r, err := c.ensure(ctx, w, image)
	if err == nil && w.agentDied(r) {
		r, err = c.ensure(ctx, w, image)
	}
	return w, r, err
}

// pluginHost returns the plugin host of r's instance start, closing the one
// of an earlier start.
func (w *Workspace) pluginHost(r Ready) *plugins.Host {
	key := runnerKey(r.Instance.Instance)
	w.mu.Lock()
	e := w.plugins
	if e != nil && e.key == key {
		w.mu.Unlock()
		return e.host
	}
	w.plugins = &pluginEntry{key: key, host: plugins.NewHost(pluginContainer{w: w, r: r}, w.log)}
	h := w.plugins.host
	w.mu.Unlock()
	if e != nil {
		e.host.Close()
	}
	return h
}

// closePlugins kills the workspace's rpc plugins: their instance stopped,
// restarted, or berth is shutting down.
func (w *Workspace) closePlugins() {
	w.mu.Lock()
	e := w.plugins
	w.plugins = nil
	w.mu.Unlock()
	if e != nil {
		e.host.Close()
	}
}

// pluginCaller keys the Client whose call starts a plugin process in its
// ctx: the process gets that client's user and environment, as its own
// processes do.
type pluginCaller struct{}

// pluginContainer is one instance start as plugins see it.
type pluginContainer struct {
	w *Workspace
	r Ready
}

func (pc pluginContainer) CopyFrom(ctx context.Context, p string) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, idleTimeout)
	rc, err := pc.w.m.backend.CopyFrom(ctx, pc.r.ID, p)
	if err != nil {
		cancel()
		return nil, pc.w.m.engineErr(ctx, "read "+p, err)
	}
	return cancelCloser{rc, cancel}, nil
}

func (pc pluginContainer) Exec(ctx context.Context, spec backends.ExecSpec) (backends.Process, error) {
	c, _ := ctx.Value(pluginCaller{}).(*Client)
	if c == nil {
		c = &Client{} // no secrets: the user and environment of the configuration alone
	}
	opts := ExecOptions{Workspace: pc.w.path, Argv: spec.Argv}
	c.applyConfig(ctx, pc.w, pc.r, &opts)
	spec.User = opts.User
	spec.Env = append(envList(opts.Env), spec.Env...)
	spec.Cwd = pc.r.Workdir
	spec.Helper = true // a plugin host: not the user's process
	return pc.w.exec(ctx, pc.r, spec, nil)
}

// cancelCloser releases a ctx when its reader closes.
type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelCloser) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
