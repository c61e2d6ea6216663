package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// pluginsImage is the image with plugins that testdata/images/plugins.sh
// builds for each backend.
func pluginsImage(e engine) string {
	if e.name == docker.Name {
		return envOr("BERTH_TEST_PLUGINS_IMAGE", "berth-test/plugins:1")
	}
	return envOr("BERTH_TEST_PLUGINS_INCUS_IMAGE", "berth-test/plugins-1")
}

// pluginsUp brings a workspace up on the plugins image.
func pluginsUp(t *testing.T, e engine) (*berth, string) {
	t.Helper()
	ws := workspace(t, e.b)
	if err := os.WriteFile(filepath.Join(ws, "hello.txt"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := startBerth(t, e)
	b.initialize(ws, &rpc.InitializationOptions{Image: pluginsImage(e)})
	var inst rpc.Instance
	if err := b.call("berth/up", rpc.UpParams{}, &inst); err != nil {
		if code(err) == rpc.CodeImageNotFound && !backendtest.Required(e.name) {
			t.Skipf("plugins test image missing (run testdata/images/plugins.sh %s): %v", e.name, err)
		}
		t.Fatalf("berth/up: %v", err)
	}
	return b, ws
}

// TestPlugins lists and calls the plugins the test image exports, in exec
// and rpc mode, with paths mapped both ways, and every way a plugin can
// fail; berth keeps serving after each.
func TestPlugins(t *testing.T) { eachBackend(t, testPlugins) }

func testPlugins(t *testing.T, e engine) {
	b, ws := pluginsUp(t, e)

	var list rpc.PluginsResult
	b.mustCall("berth/plugins", rpc.WorkspaceParams{}, &list)
	var got []string
	for _, p := range list.Plugins {
		got = append(got, p.Name+" "+p.Mode+" "+p.Source+" "+strings.Join(p.Exports, ","))
	}
	want := []string{
		"hello exec /.plugin.toml version,greet,stat,fail,garbage,hang",
		"counter rpc /etc/berth/plugins.d/counter.toml count,echo,stat,fail,hang,crash,garbage",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("berth/plugins:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(list.Errors) != 1 || list.Errors[0].File != "/etc/berth/plugins.d/broken.toml" || list.Errors[0].Line != 3 ||
		!strings.HasPrefix(list.Errors[0].Message, "/etc/berth/plugins.d/broken.toml:3:") {
		t.Errorf("berth/plugins errors: %+v, want broken.toml:3", list.Errors)
	}

	hostFile := filepath.Join(ws, "hello.txt")
	call := func(method string, params any, timeoutMs int64) (json.RawMessage, error) {
		p := rpc.PluginParams{Method: method, TimeoutMs: timeoutMs}
		if params != nil {
			raw, _ := json.Marshal(params)
			p.Params = raw
		}
		var res json.RawMessage
		err := b.call("berth/plugin", p, &res)
		return res, err
	}
	ok := func(method string, params any, want string) {
		t.Helper()
		start := time.Now()
		res, err := call(method, params, 0)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var g, w any
		if json.Unmarshal(res, &g) != nil || json.Unmarshal([]byte(want), &w) != nil || !jsonEqual(g, w) {
			t.Errorf("%s = %s, want %s", method, res, want)
		}
		t.Logf("%s took %v", method, time.Since(start))
	}
	fails := func(method string, params any, timeoutMs int64, wantCode int64, wantText string) *jsonrpc2.Error {
		t.Helper()
		start := time.Now()
		res, err := call(method, params, timeoutMs)
		var re *jsonrpc2.Error
		if !errors.As(err, &re) || re.Code != wantCode || !strings.Contains(re.Message, wantText) {
			t.Fatalf("%s = %s, %v; want code %d with %q", method, res, err, wantCode, wantText)
		}
		if timeoutMs > 0 && time.Since(start) > time.Duration(timeoutMs)*time.Millisecond+15*time.Second {
			t.Errorf("%s with timeoutMs %d took %v", method, timeoutMs, time.Since(start))
		}
		return re
	}

	// Exec mode.
	ok("hello.version", nil, `"1.0.0"`)
	ok("hello.greet", map[string]string{"name": "berth"}, `{"greeting":"hello, berth"}`)
	ok("hello.stat", map[string]string{"path": hostFile}, `{"path":"`+hostFile+`","exists":true,"cwd":"`+ws+`","user":"root"}`)
	re := fails("hello.fail", nil, 0, rpc.CodePluginFailed, "exited with code 3")
	if re.Data == nil || !strings.Contains(string(*re.Data), `"exitCode":3`) || !strings.Contains(string(*re.Data), "failing as asked") {
		t.Errorf("hello.fail data: %v", re.Data)
	}
	fails("hello.garbage", nil, 0, rpc.CodePluginFailed, "no JSON")
	fails("hello.hang", nil, 1000, rpc.CodePluginTimeout, "killed")
	fails("hello.nope", nil, 0, rpc.CodeNoSuchPlugin, "not exported")
	fails("nobody.x", nil, 0, rpc.CodeNoSuchPlugin, "no such plugin")
	fails("broken.version", nil, 0, rpc.CodeNoSuchPlugin, "broken.toml:3")
	ok("hello.version", nil, `"1.0.0"`)

	// Rpc mode: one process keeps its state between calls.
	ok("counter.count", nil, `1`)
	ok("counter.count", nil, `2`)
	ok("counter.stat", map[string]string{"path": hostFile}, `{"path":"`+hostFile+`","exists":true}`)
	ok("counter.echo", map[string]any{"uri": "file://" + hostFile, "n": 1}, `{"uri":"file://`+hostFile+`","n":1}`)
	fails("counter.fail", nil, 0, rpc.CodePluginFailed, "failing as asked")
	ok("counter.count", nil, `3`)
	re = fails("counter.crash", nil, 0, rpc.CodePluginFailed, "exited with code 3")
	if re.Data == nil || !strings.Contains(string(*re.Data), "crashing as asked") {
		t.Errorf("counter.crash data: %v", re.Data)
	}
	ok("counter.count", nil, `1`) // started again
	fails("counter.hang", nil, 1000, rpc.CodePluginTimeout, "killed")
	ok("counter.count", nil, `1`)
	fails("counter.garbage", nil, 0, rpc.CodePluginFailed, "other than a JSON-RPC message")
	ok("counter.count", nil, `1`)

	// The killed plugins are gone from the container.
	var run rpc.RunResult
	b.mustCall("berth/run", rpc.ExecParams{Argv: []string{"ps", "-o", "args"}}, &run)
	if strings.Contains(run.Stdout, "sleep 3600") || strings.Count(run.Stdout, "/usr/lib/berth-test/counter") != 1 {
		t.Errorf("processes after the kills:\n%s", run.Stdout)
	}

	// The rpc plugin is the workspace's: stopping the container ends it, and
	// the next call starts both again.
	b.mustCall("berth/down", rpc.DownParams{}, nil)
	ok("counter.count", nil, `1`)

	// The CLI.
	out, errOut, code := cli(t, e, ws, "plugin", "hello.greet", `{"name":"cli"}`)
	if code != 0 || !strings.Contains(out, `"greeting": "hello, cli"`) {
		t.Errorf("berth plugin hello.greet: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, errOut, code := cli(t, e, ws, "plugin", "hello.fail"); code != 3 || !strings.Contains(errOut, "failing as asked") {
		t.Errorf("berth plugin hello.fail: code %d, stderr %q; want 3 and the plugin's stderr", code, errOut)
	}
	if _, _, code := cli(t, e, ws, "plugin", "hello.nope"); code != 127 {
		t.Errorf("berth plugin hello.nope: code %d, want 127", code)
	}
	if _, _, code := cli(t, e, ws, "plugin", "hello.greet", "{not json"); code != 125 {
		t.Errorf("berth plugin with bad JSON: code %d, want 125", code)
	}
	out, errOut, code = cli(t, e, ws, "plugins")
	if code != 0 || !strings.Contains(out, "counter  rpc") || !strings.Contains(errOut, "broken.toml:3:") {
		t.Errorf("berth plugins: code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
