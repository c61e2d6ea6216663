package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/berthdev/berth/backends"
)

func TestOverride(t *testing.T) {
	spec := backends.Spec{
		Workspace: "/home/u/shop",
		Workdir:   "/workspaces/shop",
		Mounts: []backends.Mount{
			{Host: "/home/u/shop", Container: "/workspaces/shop"},
			{Host: "/home/u/.ssh", Container: "/root/.ssh", ReadOnly: true},
			{Host: "cache", Container: "/cache", Type: "volume"},
			{Container: "/anon", Type: "volume"},
			{Container: "/tmp/t", Type: "tmpfs"},
		},
		Labels: map[string]string{"berth.config": "abc"},
		Env:    []string{"A=1", "B=x=y"},
		Init:   []string{"/.berth/init", "init"},
		Compose: &backends.ComposeSpec{
			Files: []string{"/home/u/shop/docker-compose.yml"}, Service: "app", Project: "shop",
		},
	}
	b := &Backend{version: "1.2.3"}
	type svc struct {
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Init        bool              `yaml:"init"`
		Labels      map[string]string `yaml:"labels"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Tmpfs       []string          `yaml:"tmpfs"`
	}
	type doc struct {
		Version  string                    `yaml:"version"`
		Services map[string]svc            `yaml:"services"`
		Volumes  map[string]map[string]any `yaml:"volumes"`
	}
	labels := map[string]string{
		"berth.config": "abc", "berth.managed": "true", "berth.workspace": "/home/u/shop",
		"berth.workdir": "/workspaces/shop", "berth.version": "1.2.3", "berth.compose": "shop",
	}
	vols := []string{"/home/u/shop:/workspaces/shop", "/home/u/.ssh:/root/.ssh:ro", "cache:/cache", "/anon"}
	tests := []struct {
		name     string
		version  string
		withInit bool
		keep     bool
		want     doc
	}{
		{
			name: "the agent as main process", version: "3.8", withInit: true,
			want: doc{Version: "3.8", Services: map[string]svc{"app": {
				Entrypoint: []string{"/.berth/init"}, Command: []string{"init"}, Init: true,
				Labels: labels, Environment: map[string]string{"A": "1", "B": "x=y"}, Volumes: vols, Tmpfs: []string{"/tmp/t"},
			}}, Volumes: map[string]map[string]any{"cache": {"name": "cache"}}},
		},
		{
			name:    "the keep-alive, in a version without init",
			version: "3.4",
			want: doc{Version: "3.4", Services: map[string]svc{"app": {
				Entrypoint: keepAlive[:1], Command: keepAlive[1:],
				Labels: labels, Environment: map[string]string{"A": "1", "B": "x=y"}, Volumes: vols, Tmpfs: []string{"/tmp/t"},
			}}, Volumes: map[string]map[string]any{"cache": {"name": "cache"}}},
		},
		{
			name: "overrideCommand false keeps the service's command", keep: true, withInit: true,
			want: doc{Services: map[string]svc{"app": {
				Labels: labels, Environment: map[string]string{"A": "1", "B": "x=y"}, Volumes: vols, Tmpfs: []string{"/tmp/t"},
			}}, Volumes: map[string]map[string]any{"cache": {"name": "cache"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec
			cs := *spec.Compose
			cs.KeepCommand = tt.keep
			s.Compose = &cs
			data, err := b.override(s, tt.version, tt.withInit && !tt.keep)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# Written by berth") {
				t.Errorf("override has no header:\n%s", data)
			}
			var got doc
			if err := yaml.Unmarshal(data, &got); err != nil {
				t.Fatalf("override is no YAML: %v\n%s", err, data)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("override (-want +got):\n%s\n%s", diff, data)
			}
		})
	}
}

func TestRemoteBinds(t *testing.T) {
	const cfg = `
services:
  app:
    volumes:
      - named:/data:rw
      - /anonymous
      - type: volume
        source: other
        target: /o
  db:
    volumes:
      - /srv/db:/var/lib/db:rw
  web:
    volumes:
      - type: bind
        source: /home/u/site
        target: /site
`
	var c composeConfig
	if err := yaml.Unmarshal([]byte(cfg), &c); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		started []string
		want    string
	}{
		{[]string{"app"}, ""},
		{[]string{"app", "db"}, `compose service "db" binds the host path /srv/db (volume "/srv/db:/var/lib/db:rw")`},
		{[]string{"web"}, `compose service "web" binds the host path /home/u/site (volume "/home/u/site:/site")`},
		{nil, `service "db"`},
	}
	for _, tt := range tests {
		err := remoteBinds(c, tt.started, "tcp://engine:2375")
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("remoteBinds(%v) = %v, want nil", tt.started, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, backends.ErrComposeConfig)):
			t.Errorf("remoteBinds(%v) = %v, want an ErrComposeConfig containing %q", tt.started, err, tt.want)
		}
	}
}

func TestInitSupported(t *testing.T) {
	for v, want := range map[string]bool{"": true, "2": false, "2.1": false, "2.2": true, "2.4": true, "3": false, "3.6": false, "3.7": true, "3.9": true, "1": false} {
		if got := initSupported(v); got != want {
			t.Errorf("initSupported(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestUpServices(t *testing.T) {
	tests := []struct {
		run  []string
		want []string
	}{
		{nil, nil},
		{[]string{}, []string{"app"}},
		{[]string{"db"}, []string{"db", "app"}},
		{[]string{"app", "db"}, []string{"app", "db"}},
	}
	for _, tt := range tests {
		if got := upServices(&backends.ComposeSpec{Service: "app", RunServices: tt.run}); !cmp.Equal(got, tt.want) {
			t.Errorf("upServices(%v) = %v, want %v", tt.run, got, tt.want)
		}
	}
}

func TestComposeError(t *testing.T) {
	cfg := &composeError{op: "config", err: errors.New("exit status 1"), tail: "ERROR: The Compose file './a.yml' is invalid\n"}
	if !errors.Is(cfg, backends.ErrComposeConfig) || !strings.Contains(cfg.Error(), "'./a.yml' is invalid") {
		t.Errorf("config error %q: want ErrComposeConfig with Compose's output", cfg)
	}
	if up := (&composeError{op: "up", err: errors.New("exit status 1")}); !errors.Is(up, backends.ErrCompose) {
		t.Errorf("up error %q: want ErrCompose", up)
	}
	var tb tailBuffer
	tb.max = 10
	for _, l := range []string{"first line", "second", "third"} {
		tb.add(l)
	}
	if got := tb.String(); got != "third" {
		t.Errorf("tail = %q, want the last lines within 10 bytes", got)
	}
}

// Without a Compose CLI, berth says how to get one.
func TestNoComposeCLI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("BERTH_COMPOSE", "")
	var c composeCLI
	_, err := c.get(t.Context())
	if !errors.Is(err, backends.ErrNotSupported) || !strings.Contains(err.Error(), "apt-get install docker-compose") {
		t.Errorf("no Compose CLI: %v, want ErrNotSupported saying how to install one", err)
	}
	t.Setenv("BERTH_COMPOSE", "/opt/compose --verbose")
	c = composeCLI{}
	if argv, err := c.get(t.Context()); err != nil || !cmp.Equal(argv, []string{"/opt/compose", "--verbose"}) {
		t.Errorf("BERTH_COMPOSE: %v, %v", argv, err)
	}
}
