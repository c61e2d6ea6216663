package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/features"
	"github.com/berthdev/berth/plugins"
	"github.com/berthdev/berth/session"
	"github.com/berthdev/berth/tools"
	"github.com/berthdev/berth/work"
)

// JSON-RPC error codes. The standard ones come from JSON-RPC 2.0 and LSP;
// berth's own sit in the implementation-defined server range. They are part
// of the protocol (docs/protocol.md): never renumber one.
const (
	CodeParseError     = jsonrpc2.CodeParseError     // -32700
	CodeInvalidRequest = jsonrpc2.CodeInvalidRequest // -32600
	CodeMethodNotFound = jsonrpc2.CodeMethodNotFound // -32601
	CodeInvalidParams  = jsonrpc2.CodeInvalidParams  // -32602
	CodeInternalError  = jsonrpc2.CodeInternalError  // -32603

	CodeServerNotInitialized = -32002 // LSP: request before initialize
	CodeRequestCancelled     = -32800 // LSP: $/cancelRequest honoured
	CodeRequestFailed        = -32803 // LSP: refused though well-formed: too many connections

	CodeBackendUnavailable = -32010 // the engine's daemon does not answer
	CodeImageNotFound      = -32011 // image missing and not obtainable, or none configured
	CodeNoSuchProcess      = -32012 // unknown pid
	CodeNoWorkspace        = -32013 // no workspace param and no default
	CodeInstanceNotFound   = -32014 // the workspace has no instance
	CodeCommandNotFound    = -32015 // executable missing in the container
	CodeProcessExited      = -32016 // the process has already exited
	CodeForeignInstance    = -32017 // a container with berth's name lacks berth's labels
	CodeNotSupported       = -32018 // the backend can't do this
	CodeShuttingDown       = -32019 // request after shutdown
	CodeInstanceNotRunning = -32020 // the instance is stopped
	CodeNeedsAgent         = -32021 // needs the agent, which is disabled or unusable
	CodeNoSuchTunnel       = -32022 // unknown tunnel id
	CodeBindFailed         = -32023 // a tunnel's port could not be listened on
	CodeAgentLost          = -32024 // the agent's connection died mid-call
	CodeBadConfig          = -32025 // the workspace's configuration is broken or unsupported
	CodeBuildFailed        = -32026 // the image build, or docker compose up, failed
	CodeHookFailed         = -32027 // a create hook failed in a new container
	CodeUnauthorized       = -32028 // no valid token, or a peer of another user; the connection closes
	CodeUntrusted          = -32029 // the workspace's configuration needs trust it doesn't have
	CodeRefusedPath        = -32030 // a refused workspace or bind-mount source
	CodeNotExecutable      = -32031 // the executable exists but cannot be run
	CodeAmbiguousConfig    = -32032 // several named configurations and none chosen; data.candidates lists them
	CodeUnhealthy          = -32033 // a service's health check did not pass in time; the container runs on
	CodeNoSuchPlugin       = -32040 // the image declares no such plugin, or the plugin doesn't export the method
	CodePluginFailed       = -32041 // the plugin failed: non-zero exit, non-JSON output, a crash or an error answer; data says which
	CodePluginTimeout      = -32042 // the plugin didn't answer within timeoutMs and was killed
	CodeWorkspaceTooLarge  = -32034 // the workspace is over sync mode's size limit
)

// paramError is a bad request parameter; its message names the field.
type paramError struct {
	field string
	msg   string
}

func (e *paramError) Error() string { return fmt.Sprintf("invalid params: %s: %s", e.field, e.msg) }

func badParam(field, format string, args ...any) error {
	return &paramError{field: field, msg: fmt.Sprintf(format, args...)}
}

// codeError carries an explicit code from the dispatcher itself.
type codeError struct {
	code int64
	msg  string
}

func (e *codeError) Error() string { return e.msg }

// sentinelCodes maps each sentinel to its code. Order matters only where
// one error wraps two sentinels; the first match wins.
var sentinelCodes = []struct {
	err  error
	code int64
}{
	{backends.ErrUnavailable, CodeBackendUnavailable},
	{backends.ErrImageNotFound, CodeImageNotFound},
	{session.ErrNoImage, CodeImageNotFound},
	{session.ErrNoSuchProcess, CodeNoSuchProcess},
	{session.ErrNoWorkspace, CodeNoWorkspace},
	{session.ErrRefusedPath, CodeRefusedPath},
	{session.ErrUntrusted, CodeUntrusted},
	{session.ErrBadWorkspace, CodeInvalidParams},
	{backends.ErrNotFound, CodeInstanceNotFound},
	{backends.ErrNotRunning, CodeInstanceNotRunning},
	{backends.ErrCommandNotFound, CodeCommandNotFound},
	{backends.ErrNotExecutable, CodeNotExecutable},
	{session.ErrProcessExited, CodeProcessExited},
	{session.ErrStdinClosed, CodeProcessExited},
	{backends.ErrForeign, CodeForeignInstance},
	{backends.ErrNotSupported, CodeNotSupported},
	{session.ErrClosed, CodeShuttingDown},
	{session.ErrNeedsAgent, CodeNeedsAgent},
	{session.ErrNoSuchTunnel, CodeNoSuchTunnel},
	{session.ErrBind, CodeBindFailed},
	{agent.ErrLost, CodeAgentLost},
	{backends.ErrBadUser, CodeInvalidParams},
	{backends.ErrBadCwd, CodeInvalidParams},
	{work.ErrNoFramework, CodeInvalidParams},
	{work.ErrBadRequest, CodeInvalidParams},
	{devcontainer.ErrAmbiguousConfig, CodeAmbiguousConfig},
	{devcontainer.ErrBadConfig, CodeBadConfig},
	{features.ErrUnresolved, CodeBadConfig},
	{features.ErrBadFeature, CodeBadConfig},
	{session.ErrBadConfig, CodeBadConfig},
	{backends.ErrBuild, CodeBuildFailed},
	{backends.ErrComposeConfig, CodeBadConfig},
	{backends.ErrCompose, CodeBuildFailed},
	{session.ErrHookFailed, CodeHookFailed},
	{session.ErrUnhealthy, CodeUnhealthy},
	{session.ErrSyncTooLarge, CodeWorkspaceTooLarge},
	{session.ErrInitializeFailed, CodeHookFailed},
	{plugins.ErrNoSuchPlugin, CodeNoSuchPlugin},
	{plugins.ErrNotExported, CodeNoSuchPlugin},
	{plugins.ErrTimeout, CodePluginTimeout},
	{plugins.ErrFailed, CodePluginFailed},
	{plugins.ErrClosed, CodeShuttingDown},
	{tools.ErrBadFormat, CodeInvalidParams},
	{tools.ErrBadRequest, CodeInvalidParams},
	{context.Canceled, CodeRequestCancelled},
	{ErrUnauthorized, CodeUnauthorized},
	{ErrTooManyConnections, CodeRequestFailed},
}

// jsonType names a Go type the way a client thinks of it.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		elem := jsonType(t.Elem())
		if rest, ok := strings.CutPrefix(elem, "an "); ok {
			return "an array of " + rest
		}
		return "an array of " + strings.TrimPrefix(elem, "a ")
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

// toError maps any error to the JSON-RPC error the client sees. It is the
// only place that decides codes.
func toError(err error) *jsonrpc2.Error {
	var (
		re *jsonrpc2.Error
		pe *paramError
		ce *codeError
		te *json.UnmarshalTypeError
		se *json.SyntaxError
	)
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &ce):
		return &jsonrpc2.Error{Code: ce.code, Message: ce.msg}
	case errors.As(err, &pe):
		return &jsonrpc2.Error{Code: CodeInvalidParams, Message: pe.Error()}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "params"
		}
		return &jsonrpc2.Error{Code: CodeInvalidParams, Message: fmt.Sprintf("invalid params: %s: expected %s, got %s", field, jsonType(te.Type), te.Value)}
	case errors.As(err, &se):
		return &jsonrpc2.Error{Code: CodeInvalidParams, Message: "invalid params: " + se.Error()}
	}
	var ae *devcontainer.AmbiguousError
	if errors.As(err, &ae) {
		// Editors offer the candidates as a choice.
		e := &jsonrpc2.Error{Code: CodeAmbiguousConfig, Message: err.Error()}
		e.SetError(struct {
			Candidates []string `json:"candidates"`
		}{ae.Candidates})
		return e
	}
	var pe2 *plugins.CallError
	if errors.As(err, &pe2) {
		// Editors show the plugin's own words: its exit code, stderr, or error.
		e := &jsonrpc2.Error{Code: CodePluginFailed, Message: err.Error()}
		d := pluginErrorData{ExitCode: pe2.ExitCode, Stderr: pe2.Stderr}
		if pe2.RPC != nil {
			d.Error = &pluginRPCError{Code: pe2.RPC.Code, Message: pe2.RPC.Message, Data: pe2.RPC.Data}
		}
		e.SetError(d)
		return e
	}
	for _, sc := range sentinelCodes {
		if errors.Is(err, sc.err) {
			return &jsonrpc2.Error{Code: sc.code, Message: err.Error()}
		}
	}
	return &jsonrpc2.Error{Code: CodeInternalError, Message: err.Error()}
}

// ErrorOf is the JSON-RPC error a client sees for err, by the same rules
// as every berth method's: berth lsp answers an initialize it can't serve
// with it.
func ErrorOf(err error) *jsonrpc2.Error { return toError(err) }
