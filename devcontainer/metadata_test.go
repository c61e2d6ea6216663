package devcontainer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMetadata(t *testing.T) {
	label := `[
		{"id": "base-image", "remoteUser": "dev", "postCreateCommand": "echo base",
		 "containerEnv": {"A": "1"}, "mounts": ["type=volume,source=cache,target=/cache"]},
		{"id": "node", "capAdd": ["SYS_PTRACE"], "privileged": true, "init": true, "entrypoint": "/usr/local/share/start.sh",
		 "onCreateCommand": {"a": "one", "b": ["two", "args"]}, "forwardPorts": [3000, "db:5432"],
		 "portsAttributes": {"3000": {"label": "app", "onAutoForward": "notify"}}, "unknownKey": 1}
	]`
	got, err := ParseMetadata([]byte(label), "label")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	want := []Metadata{
		{ID: "base-image", RemoteUser: "dev", PostCreate: &Hook{Shell: "echo base"}, ContainerEnv: map[string]string{"A": "1"},
			Mounts: []Mount{{Type: "volume", Source: "cache", Target: "/cache"}}},
		{ID: "node", CapAdd: []string{"SYS_PTRACE"}, Privileged: &yes, Init: &yes, Entrypoint: "/usr/local/share/start.sh",
			OnCreate:        &Hook{Parallel: map[string]*Hook{"a": {Shell: "one"}, "b": {Argv: []string{"two", "args"}}}},
			ForwardPorts:    []Port{{Port: 3000}, {Host: "db", Port: 5432}},
			PortsAttributes: map[string]PortAttributes{"3000": {Label: "app", OnAutoForward: "notify"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseMetadata (-want +got):\n%s", diff)
	}
	// What MarshalJSON writes reads back the same.
	data, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseMetadata(data, "round trip")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, again); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// One object is one entry.
	if one, err := ParseMetadata([]byte(`{"remoteUser": "x"}`), "object"); err != nil || len(one) != 1 || one[0].RemoteUser != "x" {
		t.Errorf("single object: %+v, %v", one, err)
	}
	// A wrong type names its place.
	_, err = ParseMetadata([]byte("[{\n\"capAdd\": \"ALL\"}]"), "the label")
	var ce *ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `the label:2:11: [0].capAdd: want an array of strings`) {
		t.Errorf("bad label: %v", err)
	}
}

func TestMerge(t *testing.T) {
	yes, no := true, false
	cfg := &Config{
		Image: "img", RemoteUser: "", ContainerUser: "me", ShutdownAction: "stopContainer",
		ContainerEnv:    map[string]string{"A": "config", "C": "c"},
		RemoteEnv:       map[string]string{"R": "config"},
		CapAdd:          []string{"NET_ADMIN"},
		Mounts:          []Mount{{Type: "volume", Source: "mine", Target: "/data"}},
		ForwardPorts:    []Port{{Port: 8080}},
		PostCreate:      &Hook{Shell: "config"},
		OverrideCommand: &no, Hash: "h",
	}
	entries := []Metadata{
		{RemoteUser: "base", ContainerEnv: map[string]string{"A": "base", "B": "base"}, CapAdd: []string{"SYS_PTRACE"},
			Mounts: []Mount{{Type: "volume", Source: "theirs", Target: "/data"}, {Type: "tmpfs", Target: "/t"}}, PostCreate: &Hook{Shell: "base"}},
		{ID: "f", RemoteUser: "feature", Privileged: &yes, Init: &no, CapAdd: []string{"SYS_PTRACE", "NET_ADMIN"}, SecurityOpt: []string{"seccomp=unconfined"},
			Entrypoint: "/e.sh", ForwardPorts: []Port{{Port: 8080}, {Port: 9000}}, RemoteEnv: map[string]string{"R": "f", "S": "f"},
			OverrideCommand: &yes, ShutdownAction: "none", UpdateRemoteUserUID: &no},
	}
	got := Merge(cfg, entries)
	want := &Config{
		Image: "img", RemoteUser: "feature", ContainerUser: "me", ShutdownAction: "none",
		ContainerEnv: map[string]string{"A": "config", "B": "base", "C": "c"},
		RemoteEnv:    map[string]string{"R": "config", "S": "f"},
		CapAdd:       []string{"SYS_PTRACE", "NET_ADMIN"}, SecurityOpt: []string{"seccomp=unconfined"},
		Privileged: true, Entrypoints: []string{"/e.sh"},
		Mounts:          []Mount{{Type: "volume", Source: "mine", Target: "/data"}, {Type: "tmpfs", Target: "/t"}},
		ForwardPorts:    []Port{{Port: 8080}, {Port: 9000}},
		PostCreate:      &Hook{Shell: "config"},
		OverrideCommand: &no, UpdateRemoteUserUID: &no,
		Metadata: entries, Hash: "h",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge (-want +got):\n%s", diff)
	}
	if cfg.RemoteUser != "" || len(cfg.CapAdd) != 1 || cfg.Metadata != nil {
		t.Errorf("Merge changed its input: %+v", cfg)
	}
}
