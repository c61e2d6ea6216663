package rpc_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/rpc"
)

// berth/up says what it leaves out, in its result and as
// window/showMessage warnings.
func TestUpWarnings(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"futureKey": {"x": 1}, "customizations": {"berth": {"frobnicate": 1}}, "settings": {}`)})
	c := e.dial()
	var up rpc.Instance
	c.mustCall("berth/up", nil, &up)
	if len(up.Warnings) != 2 || !strings.Contains(up.Warnings[0], "berth ignores futureKey") || !strings.Contains(up.Warnings[1], "customizations.berth.frobnicate") {
		t.Fatalf("warnings = %q", up.Warnings)
	}
	shown := decode[protocol.ShowMessageParams](t, c.notes.all(), "window/showMessage")
	var msgs []string
	for _, m := range shown {
		if m.Type != protocol.MessageTypeWarning {
			t.Errorf("showMessage type %v, want Warning", m.Type)
		}
		msgs = append(msgs, strings.TrimPrefix(m.Message, "berth: "))
	}
	if !slices.Equal(msgs, up.Warnings) {
		t.Errorf("showMessage %q, want the warnings %q", msgs, up.Warnings)
	}
}

func TestReadConfiguration(t *testing.T) {
	e := newEnv(t, envOptions{Files: dcFiles(`"name": "${localWorkspaceFolderBasename}", "runArgs": ["--init"], "futureKey": 1`)})
	c := e.dial()
	var res struct {
		Configuration       map[string]any `json:"configuration"`
		MergedConfiguration map[string]any `json:"mergedConfiguration"`
		Unsupported         []string       `json:"unsupported"`
		Source              string         `json:"source"`
	}
	c.mustCall("berth/readConfiguration", nil, &res)
	if res.Configuration["name"] == "" || res.Configuration["name"] == "${localWorkspaceFolderBasename}" || res.Source != "devcontainer.json" {
		t.Errorf("configuration = %v (source %s); want variables substituted", res.Configuration, res.Source)
	}
	if res.MergedConfiguration["futureKey"] != float64(1) || !slices.Equal(res.Unsupported, []string{"futureKey"}) {
		t.Errorf("merged %v, unsupported %q", res.MergedConfiguration, res.Unsupported)
	}
	if list, err := e.mem.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("berth/readConfiguration made an instance: %v, %v", list, err)
	}
}

func TestAmbiguousConfig(t *testing.T) {
	e := newEnv(t, envOptions{Files: map[string]string{
		".devcontainer/a/devcontainer.json": `{"image": "x"}`,
		".devcontainer/b/devcontainer.json": `{"image": "y"}`,
	}})
	c := e.dial()
	err := c.call("berth/up", nil, nil)
	var re *jsonrpc2.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeAmbiguousConfig || re.Data == nil || !strings.Contains(string(*re.Data), `/.devcontainer/b/devcontainer.json"]}`) {
		t.Fatalf("berth/up: %v (data %v), want code %d with the candidates", err, re, rpc.CodeAmbiguousConfig)
	}
	var res struct {
		Source string `json:"source"`
	}
	c.mustCall("berth/readConfiguration", rpc.ReadConfigurationParams{Config: ".devcontainer/b/devcontainer.json"}, &res)
	if res.Source != "explicit" {
		t.Errorf("source %q", res.Source)
	}
}
