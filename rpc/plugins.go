package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/berthdev/berth/plugins"
)

// Wire types of the plugins an image exports.

// PluginsResult answers berth/plugins.
type PluginsResult struct {
	Plugins []PluginInfo  `json:"plugins"`
	Errors  []PluginError `json:"errors"`
}

// PluginInfo is one plugin the workspace's image declares.
type PluginInfo struct {
	Name    string   `json:"name"`
	Exports []string `json:"exports"`
	Mode    string   `json:"mode"`   // exec or rpc
	Path    string   `json:"path"`   // container path of the executable
	Source  string   `json:"source"` // container path of the file that declares it
}

// PluginError is a plugin file, or one plugin in it, that berth skipped.
type PluginError struct {
	File    string `json:"file"` // container path
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"` // file:line:col: what is wrong
}

// PluginParams are berth/plugin's params.
type PluginParams struct {
	Workspace string          `json:"workspace,omitempty"`
	Method    string          `json:"method"` // PLUGIN.METHOD
	Params    json.RawMessage `json:"params,omitempty"`
	TimeoutMs int64           `json:"timeoutMs,omitempty"`
}

// maxPluginTimeout bounds timeoutMs: a plugin call is a function call, not
// a job.
const maxPluginTimeout = time.Hour

func pluginsMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p WorkspaceParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	set, _, err := client.Plugins(c.progressCtx(ctx), ws, image)
	if err != nil {
		return nil, err
	}
	return pluginsResult(set), nil
}

func pluginsResult(set plugins.Set) PluginsResult {
	out := PluginsResult{Plugins: []PluginInfo{}, Errors: []PluginError{}}
	for _, p := range set.Plugins {
		out.Plugins = append(out.Plugins, PluginInfo{Name: p.Name, Exports: p.Exports, Mode: p.Mode, Path: p.Path, Source: p.Source})
	}
	for _, e := range set.Errors {
		pe := PluginError{Message: e.Error()}
		var fe *plugins.FileError
		if errors.As(e, &fe) {
			pe.File, pe.Line, pe.Column = fe.File, fe.Line, fe.Col
		}
		out.Errors = append(out.Errors, pe)
	}
	return out
}

func pluginMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p PluginParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	if p.Method == "" {
		return nil, badParam("method", "required: PLUGIN.METHOD, as berth/plugins lists them")
	}
	if _, _, ok := plugins.SplitMethod(p.Method); !ok {
		return nil, badParam("method", "must be PLUGIN.METHOD, as berth/plugins lists them; got %q", p.Method)
	}
	if p.TimeoutMs < 0 {
		return nil, badParam("timeoutMs", "must not be negative")
	}
	timeout := time.Duration(p.TimeoutMs) * time.Millisecond
	if timeout > maxPluginTimeout {
		return nil, badParam("timeoutMs", "at most %d (an hour)", maxPluginTimeout.Milliseconds())
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	_, client, image := c.session()
	res, err := client.CallPlugin(c.progressCtx(ctx), ws, image, p.Method, p.Params, timeout)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// pluginErrorData is the data of a CodePluginFailed error.
type pluginErrorData struct {
	ExitCode *int            `json:"exitCode,omitempty"`
	Stderr   string          `json:"stderr,omitempty"`
	Error    *pluginRPCError `json:"error,omitempty"`
}

type pluginRPCError struct {
	Code    int64            `json:"code"`
	Message string           `json:"message"`
	Data    *json.RawMessage `json:"data,omitempty"`
}
