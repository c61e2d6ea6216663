package rpc_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthdev/berth/rpc"
)

// TestLimits: the config's limits apply on create, initializationOptions
// win field by field, berth/limits changes them on the running instance,
// and berth/status {usage: true} reports them.
func TestLimits(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"customizations": {"berth": {"limits": {"memory": "1g", "cpus": 2, "pids": 100}}}`)})
	c := e.connect(false)
	c.mustCall("initialize", rpc.InitializeParams{RootURI: "file://" + e.ws, InitializationOptions: &rpc.InitializationOptions{
		Trust: true, Limits: &rpc.LimitsParams{Memory: json.RawMessage(`"512m"`)}}}, nil)
	var up rpc.Instance
	c.mustCall("berth/up", nil, &up)
	var st rpc.Instance
	c.mustCall("berth/status", rpc.StatusParams{Usage: true}, &st)
	if st.Usage == nil || st.Usage.Limits != (rpc.Limits{Memory: 512 << 20, CPUs: 2, Pids: 100}) {
		t.Fatalf("status usage %+v, want the config's limits with the client's memory", st.Usage)
	}
	var got rpc.Limits
	c.mustCall("berth/limits", map[string]any{"memory": 1 << 30, "pids": 64}, &got)
	if want := (rpc.Limits{Memory: 1 << 30, CPUs: 2, Pids: 64}); got != want {
		t.Errorf("berth/limits = %+v, want %+v", got, want)
	}
	st = rpc.Instance{}
	c.mustCall("berth/status", nil, &st)
	if st.Usage != nil {
		t.Errorf("berth/status without usage reported %+v", st.Usage)
	}
	if st.ID != up.ID {
		t.Errorf("berth/limits replaced the instance: %s, then %s", up.ID, st.ID)
	}

	for _, tt := range []struct {
		params any
		want   string
	}{
		{map[string]any{"memory": "lots"}, `memory: "lots" is not a size`},
		{map[string]any{"memory": 0}, "memory: want a size above 0"},
		{map[string]any{"memory": true}, "memory: want a number of bytes"},
		{map[string]any{"cpus": -1}, "cpus: want a number of CPUs above 0"},
		{map[string]any{"pids": 1.5}, "pids: want a whole number"},
	} {
		err := c.call("berth/limits", tt.params, nil)
		if code(err) != rpc.CodeInvalidParams || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("berth/limits %v: %v, want invalid params saying %q", tt.params, err, tt.want)
		}
	}
	c2 := e.connect(false)
	err := c2.call("initialize", map[string]any{"initializationOptions": map[string]any{"limits": map[string]any{"memory": "1x"}}}, nil)
	if code(err) != rpc.CodeInvalidParams || !strings.Contains(err.Error(), "initializationOptions.limits.memory") {
		t.Errorf("initialize with a bad limit: %v, want invalid params naming initializationOptions.limits.memory", err)
	}
}
