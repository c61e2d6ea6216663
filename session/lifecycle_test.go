package session

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"testing"
)

// shutdownAction stopContainer stops the container when the last editor
// session leaves, counted across berth processes; CLI clients never count.
func TestShutdownAction(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skipf("no true on the host: %v", err)
	}
	lease := func(owner string) func(e *memEnv) {
		return func(e *memEnv) {
			p := sessionsDir + "/" + url.PathEscape(owner)
			if err := e.fs().MkdirAll(sessionsDir, 0o755); err != nil {
				e.t.Fatal(err)
			}
			if err := e.fs().WriteFile(p, []byte(owner), 0o644); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name    string
		files   map[string]string
		config  string // explicit config
		editors []bool // the clients that use the workspace, closed in order
		setup   func(e *memEnv)
		want    []string // the state after each close
	}{
		{name: "the editor leaves", files: dcFiles(""), editors: []bool{true}, want: []string{"stopped"}},
		{name: "a CLI client never stops it", files: dcFiles(""), editors: []bool{false}, want: []string{"running"}},
		{name: "two editors", files: dcFiles(""), editors: []bool{true, true}, want: []string{"running", "stopped"}},
		{name: "an editor and a CLI client", files: dcFiles(""), editors: []bool{false, true}, want: []string{"running", "stopped"}},
		{name: "the CLI client leaves last", files: dcFiles(""), editors: []bool{true, false}, want: []string{"stopped", "stopped"}},
		{name: "shutdownAction none", files: dcFiles(`"shutdownAction": "none"`), editors: []bool{true}, want: []string{"running"}},
		{name: "an image alone", editors: []bool{true}, want: []string{"running"}},
		{name: "an explicit devcontainer.json", files: map[string]string{"conf/dev.json": `{"image": "img:1"}`}, config: "conf/dev.json", editors: []bool{true}, want: []string{"stopped"}},
		{name: "another berth's editor", files: dcFiles(""), editors: []bool{true}, setup: lease("otherhost:42"), want: []string{"running"}},
		{name: "a dead berth's lease", files: dcFiles(""), editors: []bool{true}, setup: lease(fmt.Sprintf("%s:%d", host, dead.Process.Pid)), want: []string{"stopped"}},
		{name: "a released lease", files: dcFiles(""), editors: []bool{true}, setup: func(e *memEnv) {
			lease("otherhost:42")(e)
			if err := e.fs().WriteFile(sessionsDir+"/"+url.PathEscape("otherhost:42"), nil, 0o644); err != nil {
				e.t.Fatal(err)
			}
		}, want: []string{"stopped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Files: tt.files})
			var clients []*Client
			for _, editor := range tt.editors {
				c, _ := e.client(nil, editor)
				c.SetConfig(tt.config)
				e.run(c, "true")
				clients = append(clients, c)
			}
			if tt.setup != nil {
				tt.setup(e)
			}
			var got []string
			for _, c := range clients {
				c.Close(testCtx(t))
				got = append(got, e.state())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("states after each close: %q, want %q", got, tt.want)
			}
		})
	}
}

// The other clients hear that berth stopped it; the next call starts it.
func TestShutdownActionTold(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles("")})
	editor, _ := e.client(nil, true)
	cli, heard := e.client(nil, false)
	e.run(editor, "true")
	e.run(cli, "true")
	e.waitWatchers()
	editor.Close(testCtx(t))
	heard.waitInstance(t, "stopped/"+ReasonStoppedByBerth)
	if res := e.run(cli, "echo", "up"); res.Stdout != "up\n" {
		t.Errorf("after the stop: %q", res.Stdout)
	}
}

// An editor whose container vanished leaves quietly.
func TestEditorLeavesAVanishedContainer(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles("")})
	c, sink := e.client(nil, true)
	e.run(c, "true")
	e.waitWatchers()
	if err := e.mem.RemoveExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	sink.waitInstance(t, instanceStateRemoved+"/"+ReasonRemoved)
	c.Close(testCtx(t))
	if got := e.state(); got != "none" {
		t.Errorf("state %s", got)
	}
}
