package devcontainer

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseBerthLifetime(t *testing.T) {
	tests := []struct {
		name, json string // customizations.berth's members
		want       BerthSettings
	}{
		{"limits", `"limits": {"memory": "2g", "cpus": 1.5, "pids": 512}`,
			BerthSettings{Limits: &Limits{Memory: 2 << 30, CPUs: 1.5, Pids: 512}}},
		{"memory in bytes", `"limits": {"memory": 104857600}`, BerthSettings{Limits: &Limits{Memory: 100 << 20}}},
		{"null limits set none", `"limits": {"memory": null}`, BerthSettings{}},
		{"lifetime command", `"lifetime": "command"`, BerthSettings{Lifetime: LifetimeCommand}},
		{"lifetime workspace", `"lifetime": "workspace"`, BerthSettings{Lifetime: LifetimeWorkspace}},
		{"service alone is the service lifetime", `"service": {"port": 8080}`,
			BerthSettings{Lifetime: LifetimeService, Service: &Service{Port: 8080, Health: "/", Scheme: "http"}}},
		{"service lifetime without a service", `"lifetime": "service"`,
			BerthSettings{Lifetime: LifetimeService, Service: &Service{Health: "/", Scheme: "http"}}},
		{"service in full, shell command", `"lifetime": "service", "service": {"command": "httpd -f", "port": 80, "health": "/ok", "scheme": "https"}`,
			BerthSettings{Lifetime: LifetimeService, Service: &Service{Shell: "httpd -f", Port: 80, Health: "/ok", Scheme: "https"}}},
		{"service command as an array", `"service": {"command": ["httpd", "-f"]}`,
			BerthSettings{Lifetime: LifetimeService, Service: &Service{Command: []string{"httpd", "-f"}, Health: "/", Scheme: "http"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(`{"image": "a", "customizations": {"berth": {`+tt.json+`}}}`), testFile, testWS, nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, c.Berth, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("customizations.berth (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBerthLifetimeErrors(t *testing.T) {
	const pre = `{"image": "a", "customizations": {"berth": {`
	tests := []struct{ json, want string }{
		{`"limits": {"memory": "2q"}}}}`, `f:1:66: customizations.berth.limits.memory: "2q" is not a size such as 512mb or 4gb`},
		{`"limits": {"memory": 1.5}}}}`, `f:1:66: customizations.berth.limits.memory: 1.5 is not a whole number of bytes`},
		{`"limits": {"memory": "0"}}}}`, `f:1:66: customizations.berth.limits.memory: want a size above 0, got "0"`},
		{`"limits": {"memory": true}}}}`, `f:1:66: customizations.berth.limits.memory: want a size such as "2g", got a boolean`},
		{`"limits": {"cpus": "2"}}}}`, `f:1:64: customizations.berth.limits.cpus: want a number of CPUs above 0 such as 1.5, got "2"`},
		{`"limits": {"cpus": 0}}}}`, `f:1:64: customizations.berth.limits.cpus: want a number of CPUs above 0 such as 1.5, got 0`},
		{`"limits": {"pids": 2.5}}}}`, `f:1:64: customizations.berth.limits.pids: want a whole number of processes above 0, got 2.5`},
		{`"limits": {"memroy": "1g"}}}}`, `f:1:66: customizations.berth.limits.memroy: unknown limit "memroy" (want memory, cpus or pids)`},
		{`"limits": 3}}}`, `f:1:55: customizations.berth.limits: want an object such as {"memory": "2g", "cpus": 1.5, "pids": 512}, got a number`},
		{`"lifetime": "forever"}}}`, `f:1:57: customizations.berth.lifetime: unknown value "forever" (want workspace, command or service)`},
		{`"service": {"port": 0}}}}`, `f:1:65: customizations.berth.service.port: port 0 is not a whole number from 1 to 65535`},
		{`"service": {"health": "ok"}}}}`, `f:1:67: customizations.berth.service.health: "ok" is not an HTTP path starting with /`},
		{`"service": {"scheme": "ftp"}}}}`, `f:1:67: customizations.berth.service.scheme: unknown value "ftp" (want http or https)`},
		{`"service": {"prot": 80}}}}`, `f:1:65: customizations.berth.service.prot: unknown key "prot" (want command, port, health or scheme)`},
		{`"service": {"command": 1}}}}`, `f:1:68: customizations.berth.service.command: want a string or an array of strings, got a number`},
		{`"lifetime": "command", "service": {}}}}`, `f:1:79: customizations.berth.service: a service needs lifetime "service", not "command"`},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(pre+tt.json), "f", "/ws", nil)
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("Parse(%s) error = %v, want a *ConfigError", tt.json, err)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("Parse(%s) error:\n got %s\nwant %s", tt.json, got, tt.want)
		}
	}
}

func TestHashIgnoresLimits(t *testing.T) {
	hash := func(berth string) string {
		c, err := Parse([]byte(`{"image": "a", "customizations": {"berth": {`+berth+`}}}`), testFile, testWS, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash
	}
	none := hash(``)
	if got := hash(`"limits": {"memory": "1g"}`); got != none {
		t.Error("a limit changed the config hash: the container would be recreated for what berth applies live")
	}
	if got := hash(`"lifetime": "service"`); got == none {
		t.Error("the service lifetime kept the config hash: the container's main process changes with it")
	}
}
