package session

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/devcontainer"
)

func TestPortAttributes(t *testing.T) {
	cfg := &devcontainer.Config{
		PortsAttributes: map[string]devcontainer.PortAttributes{
			"3000":      {Label: "web", OnAutoForward: "openBrowser"},
			"3000-3010": {Label: "range", OnAutoForward: "silent"},
			"9000-9001": {Label: "debug", OnAutoForward: "ignore"},
			"5432":      {Label: "db"}, // onAutoForward left to the default
		},
		OtherPortsAttributes: &devcontainer.PortAttributes{OnAutoForward: "ignore"},
	}
	noOther := &devcontainer.Config{PortsAttributes: map[string]devcontainer.PortAttributes{"80": {Label: "http"}}}
	for _, tc := range []struct {
		name       string
		cfg        *devcontainer.Config
		port       int
		label, act string
	}{
		{"exact beats range", cfg, 3000, "web", "openBrowser"},
		{"range", cfg, 3005, "range", "silent"},
		{"range end", cfg, 3010, "range", "silent"},
		{"range ignore", cfg, 9001, "debug", "ignore"},
		{"default onAutoForward", cfg, 5432, "db", "notify"},
		{"otherPortsAttributes", cfg, 8080, "", "ignore"},
		{"past the range", cfg, 3011, "", "ignore"},
		{"no otherPortsAttributes", noOther, 8080, "", "notify"},
		{"no configuration", nil, 8080, "", "notify"},
	} {
		a := PortAttributes(tc.cfg, tc.port)
		if a.Label != tc.label || a.OnAutoForward != tc.act {
			t.Errorf("%s: PortAttributes(%d) = %q %q, want %q %q", tc.name, tc.port, a.Label, a.OnAutoForward, tc.label, tc.act)
		}
	}
}

func TestDialHost(t *testing.T) {
	for bind, want := range map[string]string{
		"0.0.0.0": "127.0.0.1", "::": "127.0.0.1", "127.0.0.1": "127.0.0.1", "127.0.0.2": "127.0.0.1",
		"::1": "::1", "172.17.0.2": "172.17.0.2", "fd00::5": "fd00::5", "bogus": "127.0.0.1",
	} {
		if got := dialHost(bind); got != want {
			t.Errorf("dialHost(%q) = %q, want %q", bind, got, want)
		}
	}
}

// portRec is a Sink that hears of ports.
type portRec struct {
	mu    sync.Mutex // guards the following
	ports [][]Port
}

func (*portRec) Output(string, string, []byte)                      {}
func (*portRec) Exit(string, backends.ExitStatus, string)           {}
func (*portRec) ConfigChanged(string, []string)                     {}
func (*portRec) InstanceChanged(string, string, string)             {}
func (*portRec) ShowDocument(context.Context, string, string) error { return nil }
func (r *portRec) PortsChanged(_ string, ports []Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ports = append(r.ports, ports)
}

func (r *portRec) last() []Port {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ports) == 0 {
		return nil
	}
	return r.ports[len(r.ports)-1]
}

// freePorts returns n host ports free now.
func freePorts(t *testing.T, n int) []int {
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out
}

// The watcher's logic on the agent's reports, without an instance:
// attributes, merging, what is never reported, auto-forwards and closing
// one.
func TestPortWatcherUpdate(t *testing.T) {
	m := NewManager(memory.New(memory.Options{}), slog.New(slog.DiscardHandler), "")
	t.Cleanup(m.Close)
	rec := &portRec{}
	c := NewClient(m, slog.New(slog.DiscardHandler), rec)
	t.Cleanup(func() { c.Close(context.Background()) })
	ws := t.TempDir()
	w := c.Workspace(ws)
	ctx, cancel := context.WithCancel(context.Background())
	pw := &portWatcher{w: w, ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1),
		reported: make(chan struct{}), forwards: map[int]*tunnel{}, suppressed: map[int]bool{}}
	// run finds no instance and only waits; stopPorts stops it.
	w.mu.Lock()
	w.portWatch = pw
	w.mu.Unlock()
	go pw.run()

	p := freePorts(t, 3)
	web, quiet, other := p[0], p[1], p[2]
	cfg := &devcontainer.Config{
		Source: devcontainer.SourceDevcontainerJSON,
		PortsAttributes: map[string]devcontainer.PortAttributes{
			strconv.Itoa(web):   {Label: "web", OnAutoForward: "openBrowser"},
			strconv.Itoa(quiet): {Label: "quiet", OnAutoForward: "ignore"},
		},
	}
	r := Ready{Instance: Instance{Config: cfg}}
	raw := []agent.ListenPort{
		{Port: web, Addr: "0.0.0.0", PID: 10, PGID: 10, Name: "node"},
		{Port: web, Addr: "::", PID: 10, PGID: 10, Name: "node"}, // the same port: merged
		{Port: quiet, Addr: "127.0.0.1", PID: 11, PGID: 11, Name: "pg"},
		{Port: other, Addr: "::1", PID: 12, PGID: 12, Name: "x"},
		{Port: 1, Addr: "127.0.0.1"}, // no owner: berth's own
	}
	pw.update(r, raw)
	got := rec.last()
	byPort := map[int]Port{}
	for _, p := range got {
		byPort[p.Port] = p
	}
	if len(got) != 3 {
		t.Fatalf("ports = %+v, want 3", got)
	}
	if p := byPort[web]; p.Label != "web" || p.OnAutoForward != "openBrowser" || p.TunnelID == "" || p.HostPort != web || p.Process != "node" || p.PID != 10 {
		t.Errorf("web = %+v, want forwarded on the same host port", p)
	}
	if p := byPort[quiet]; p.TunnelID != "" || p.Label != "quiet" {
		t.Errorf("quiet = %+v, want ignored", p)
	}
	if p := byPort[other]; p.OnAutoForward != "notify" || p.TunnelID == "" {
		t.Errorf("other = %+v, want notify and forwarded", p)
	}
	fwds := c.Tunnels(ws)
	hosts := map[int]string{}
	for _, f := range fwds {
		if f.Auto {
			hosts[f.ContainerPort] = f.ContainerHost
		}
	}
	if len(fwds) != 2 || hosts[web] != "127.0.0.1" || hosts[other] != "::1" {
		t.Errorf("tunnels = %+v, want the 2 auto-forwards, the second to ::1", fwds)
	}

	// Closing one sticks while the port listens, and it comes back once
	// the port has stopped listening and listens again.
	id := byPort[web].TunnelID
	if err := c.CloseTunnel(id); err != nil {
		t.Fatal(err)
	}
	pw.update(r, raw)
	if p := rec.last()[0]; p.Port != web || p.TunnelID != "" {
		t.Errorf("after closeTunnel, web = %+v, want no forward", p)
	}
	pw.update(r, raw[2:])
	pw.update(r, raw)
	if p := rec.last()[0]; p.Port != web || p.TunnelID == "" || p.TunnelID == id {
		t.Errorf("listening anew, web = %+v, want a new forward", p)
	}

	before := len(rec.ports)
	pw.update(r, raw)
	if len(rec.ports) != before {
		t.Errorf("an unchanged report was notified again")
	}
	pw.reset()
	if got := rec.last(); len(got) != 0 {
		t.Errorf("after reset, ports = %+v", got)
	}
	if fwds := c.Tunnels(ws); len(fwds) != 0 {
		t.Errorf("after reset, tunnels = %+v", fwds)
	}

	// A plain image reports ports but forwards none; a devcontainer.json's
	// forwardPorts are the clients' own, never auto-forwarded.
	for _, tc := range []struct {
		name string
		cfg  *devcontainer.Config
	}{
		{"plain image", &devcontainer.Config{Source: devcontainer.SourceImage}},
		{"forwardPorts", &devcontainer.Config{Source: devcontainer.SourceDevcontainerJSON, ForwardPorts: []devcontainer.Port{{Port: other}}}},
	} {
		pw.update(Ready{Instance: Instance{Config: tc.cfg}}, raw[3:4])
		if got := rec.last(); len(got) != 1 || got[0].Port != other || got[0].TunnelID != "" {
			t.Errorf("%s: ports = %+v, want port %d, not forwarded", tc.name, got, other)
		}
		pw.reset()
	}
}
