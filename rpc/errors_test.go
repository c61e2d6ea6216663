package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/features"
	"github.com/berthdev/berth/plugins"
	"github.com/berthdev/berth/session"
)

// Every sentinel maps to its code however deeply it is wrapped, and the
// message stays the error's own. Over the wire, rpc_test's TestErrorCodes
// reaches each code a client can cause without the agent; this covers
// the rest (bind failed, agent lost) and the table itself.
func TestToErrorSentinels(t *testing.T) {
	for _, sc := range sentinelCodes {
		err := fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", sc.err))
		got := toError(err)
		if got.Code != sc.code || got.Message != err.Error() {
			t.Errorf("toError(%q) = %d %q, want %d", err, got.Code, got.Message, sc.code)
		}
	}
	wantCodes := map[error]int64{
		session.ErrBind:        CodeBindFailed,
		agent.ErrLost:          CodeAgentLost,
		session.ErrHookFailed:  CodeHookFailed,
		backends.ErrBuild:      CodeBuildFailed,
		features.ErrUnresolved: CodeBadConfig,
		features.ErrBadFeature: CodeBadConfig,
		context.Canceled:       CodeRequestCancelled,
	}
	for err, want := range wantCodes {
		if got := toError(err).Code; got != want {
			t.Errorf("toError(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestToError(t *testing.T) {
	var typeErr error
	var v struct{ Argv []string }
	typeErr = json.Unmarshal([]byte(`{"argv": "ls"}`), &v)
	var top []string
	topErr := json.Unmarshal([]byte(`{}`), &top)
	synErr := json.Unmarshal([]byte(`{"argv": [}`), &v)
	tests := []struct {
		name string
		err  error
		want jsonrpc2.Error
	}{
		{"passed through", &jsonrpc2.Error{Code: 7, Message: "as is"}, jsonrpc2.Error{Code: 7, Message: "as is"}},
		{"dispatcher code", fmt.Errorf("x: %w", &codeError{CodeShuttingDown, "bye"}), jsonrpc2.Error{Code: CodeShuttingDown, Message: "bye"}},
		{"param", badParam("pid", "required"), jsonrpc2.Error{Code: CodeInvalidParams, Message: "invalid params: pid: required"}},
		{"wrong type", typeErr, jsonrpc2.Error{Code: CodeInvalidParams, Message: "invalid params: Argv: expected an array of string, got string"}},
		{"wrong type at the top", topErr, jsonrpc2.Error{Code: CodeInvalidParams, Message: "invalid params: params: expected an array of string, got object"}},
		{"syntax", synErr, jsonrpc2.Error{Code: CodeInvalidParams, Message: "invalid params: " + synErr.Error()}},
		{"unknown", errors.New("engine exploded"), jsonrpc2.Error{Code: CodeInternalError, Message: "engine exploded"}},
		{"unavailable before cancelled", fmt.Errorf("%w: %w", backends.ErrUnavailable, context.Canceled), jsonrpc2.Error{Code: CodeBackendUnavailable, Message: "backend unavailable: context canceled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toError(tt.err); *got != tt.want {
				t.Errorf("toError = %d %q, want %d %q", got.Code, got.Message, tt.want.Code, tt.want.Message)
			}
		})
	}
}

func TestJSONType(t *testing.T) {
	var (
		i   int
		u   uint16
		f   float64
		b   bool
		s   string
		m   map[string]string
		p   *int
		arr [2]string
		ss  []string
		ch  chan int
	)
	tests := []struct {
		v    any
		want string
	}{
		{i, "an integer"}, {u, "a non-negative integer"}, {f, "a number"}, {b, "a boolean"}, {s, "a string"},
		{m, "an object"}, {struct{}{}, "an object"}, {p, "an integer"}, {arr, "an array of string"},
		{ss, "an array of string"}, {ch, "chan int"},
	}
	for _, tt := range tests {
		if got := jsonType(reflect.TypeOf(tt.v)); got != tt.want {
			t.Errorf("jsonType(%T) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

// An array's element keeps no article: "an array of integer", as "an
// array of string".
func TestJSONTypeArrayArticle(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{[]int{}, "an array of integer"},
		{[]map[string]int{}, "an array of object"},
		{[][]string{}, "an array of array of string"},
	}
	for _, tt := range tests {
		if got := jsonType(reflect.TypeOf(tt.v)); got != tt.want {
			t.Errorf("jsonType(%T) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

// A failed plugin's error carries its exit code and stderr, or its own
// JSON-RPC error, in data.
func TestToErrorPlugin(t *testing.T) {
	three := 3
	tests := []struct {
		name string
		err  error
		data string
	}{
		{"exit", &plugins.CallError{Plugin: "p", Method: "m", Msg: "exited with code 3", ExitCode: &three, Stderr: "boom\n"}, `{"exitCode":3,"stderr":"boom\n"}`},
		{"answer", fmt.Errorf("x: %w", &plugins.CallError{Plugin: "p", Method: "m", Msg: "no", RPC: &jsonrpc2.Error{Code: 42, Message: "no"}}), `{"error":{"code":42,"message":"no"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := toError(tt.err)
			if got.Code != CodePluginFailed || got.Message != tt.err.Error() || got.Data == nil || string(*got.Data) != tt.data {
				data := ""
				if got.Data != nil {
					data = string(*got.Data)
				}
				t.Errorf("toError = %d %q %s, want %d %s", got.Code, got.Message, data, CodePluginFailed, tt.data)
			}
		})
	}
}
