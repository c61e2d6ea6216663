package trust

import (
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/devcontainer"
)

func TestClassify(t *testing.T) {
	const ws = "/home/u/proj"
	// Links as the host would resolve them.
	links := map[string]string{
		"/home/u/proj/etc-link":   "/etc",
		"/home/u/proj/inner-link": "/home/u/proj/sub",
	}
	resolve := func(p string) string {
		if r, ok := links[p]; ok {
			return r
		}
		return p
	}
	tests := []struct {
		name string
		cfg  *devcontainer.Config
		want []Finding
	}{
		{name: "nil", cfg: nil},
		{name: "image only", cfg: &devcontainer.Config{Image: "debian"}},
		{name: "harmless settings", cfg: &devcontainer.Config{
			Image: "debian", ContainerEnv: map[string]string{"A": "1"}, RemoteUser: "dev",
			ForwardPorts: []devcontainer.Port{{Port: 3000}}, ShutdownAction: "none",
		}},
		{name: "each hook", cfg: &devcontainer.Config{
			OnCreate:      &devcontainer.Hook{Shell: "make   deps"},
			UpdateContent: &devcontainer.Hook{Argv: []string{"npm", "ci"}},
			PostCreate:    &devcontainer.Hook{Parallel: map[string]*devcontainer.Hook{"b": {Shell: "two"}, "a": {Argv: []string{"one"}}}},
			PostStart:     &devcontainer.Hook{Shell: "start"},
			PostAttach:    &devcontainer.Hook{Shell: strings.Repeat("x", 100)},
		}, want: []Finding{
			{Kind: KindCommand, Field: "onCreateCommand", Detail: "make deps"},
			{Kind: KindCommand, Field: "updateContentCommand", Detail: "npm ci"},
			{Kind: KindCommand, Field: "postCreateCommand", Detail: "a: one, b: two"},
			{Kind: KindCommand, Field: "postStartCommand", Detail: "start"},
			{Kind: KindCommand, Field: "postAttachCommand", Detail: strings.Repeat("x", 79) + "…"},
		}},
		{name: "mounts inside the workspace", cfg: &devcontainer.Config{Mounts: []devcontainer.Mount{
			{Type: "bind", Source: ws, Target: "/w"},
			{Type: "bind", Source: ws + "/sub/../data", Target: "/d"},
			{Type: "bind", Source: ws + "/inner-link", Target: "/i"},
		}}},
		{name: "mounts outside", cfg: &devcontainer.Config{Mounts: []devcontainer.Mount{
			{Type: "bind", Source: "/", Target: "/host"},
			{Type: "volume", Source: "cache", Target: "/cache"},
			{Type: "tmpfs", Target: "/tmp"},
			{Type: "bind", Source: "/home/u/.ssh", Target: "/root/.ssh", ReadOnly: true},
			{Type: "bind", Source: ws + "/etc-link", Target: "/e"},
			{Type: "bind", Source: ws + "/../proj-other", Target: "/o"},
			{Type: "bind", Source: "/home/u/projx", Target: "/x"},
		}}, want: []Finding{
			{Kind: KindMount, Field: "mounts[0]", Path: "/", Detail: "at /host"},
			{Kind: KindMount, Field: "mounts[3]", Path: "/home/u/.ssh", Detail: "at /root/.ssh"},
			{Kind: KindMount, Field: "mounts[4]", Path: "/etc", Detail: "at /e"},
			{Kind: KindMount, Field: "mounts[5]", Path: "/home/u/proj-other", Detail: "at /o"},
			{Kind: KindMount, Field: "mounts[6]", Path: "/home/u/projx", Detail: "at /x"},
		}},
		{name: "workspaceMount of the workspace", cfg: &devcontainer.Config{WorkspaceMount: &devcontainer.Mount{Type: "bind", Source: ws, Target: "/src"}}},
		{name: "workspaceMount copy", cfg: &devcontainer.Config{WorkspaceMount: &devcontainer.Mount{Type: "copy"}}},
		{name: "workspaceMount of the parent", cfg: &devcontainer.Config{WorkspaceMount: &devcontainer.Mount{Type: "bind", Source: "/home/u", Target: "/src"}}, want: []Finding{
			{Kind: KindMount, Field: "workspaceMount", Path: "/home/u", Detail: "at /src"},
		}},
		{name: "build inside", cfg: &devcontainer.Config{Build: &devcontainer.Build{Dockerfile: ws + "/.devcontainer/Dockerfile", Context: ws}}},
		{name: "build outside", cfg: &devcontainer.Config{Build: &devcontainer.Build{Dockerfile: "/srv/Dockerfile", Context: "/"}}, want: []Finding{
			{Kind: KindBuild, Field: "build.context", Path: "/", Detail: "sent to the engine as the build context"},
			{Kind: KindBuild, Field: "build.dockerfile", Path: "/srv/Dockerfile", Detail: "the Dockerfile"},
		}},
		{name: "Features and image metadata", cfg: &devcontainer.Config{
			Image:    "debian",
			Features: []devcontainer.FeatureRef{{ID: "./tools"}, {ID: "registry.example/f/node:1"}},
			Metadata: []devcontainer.Metadata{
				{PostCreate: &devcontainer.Hook{Shell: "from the base image"}},
				{ID: "node", OnCreate: &devcontainer.Hook{Argv: []string{"npm", "i"}}, ContainerEnv: map[string]string{"A": "1"}},
				{ID: "quiet"},
			},
		}, want: []Finding{
			{Kind: KindFeature, Field: `features["./tools"]`, Detail: "./tools"},
			{Kind: KindFeature, Field: `features["registry.example/f/node:1"]`, Detail: "registry.example/f/node:1"},
			{Kind: KindCommand, Field: "image metadata[0] postCreateCommand", Detail: "from the base image"},
			{Kind: KindCommand, Field: "image metadata[1] (node) onCreateCommand", Detail: "npm i"},
		}},
		{name: "every compose file, inside the workspace or not", cfg: &devcontainer.Config{
			Compose: &devcontainer.Compose{Files: []string{ws + "/.devcontainer/compose.yml", "/srv/compose.yml"}, Service: "app"},
		}, want: []Finding{
			{Kind: KindCompose, Field: "dockerComposeFile[0]", Path: ws + "/.devcontainer/compose.yml", Detail: "its services can bind host paths and run with any privilege"},
			{Kind: KindCompose, Field: "dockerComposeFile[1]", Path: "/srv/compose.yml", Detail: "its services can bind host paths and run with any privilege"},
		}},
		{name: "initializeCommand runs on the host", cfg: &devcontainer.Config{InitializeCommand: &devcontainer.Hook{Argv: []string{"./scripts/prepare.sh"}}}, want: []Finding{
			{Kind: KindCommand, Field: "initializeCommand", Detail: "on the host: ./scripts/prepare.sh"},
		}},
		{name: "engine powers", cfg: &devcontainer.Config{
			Privileged: true, CapAdd: []string{"SYS_ADMIN"}, SecurityOpt: []string{"seccomp=unconfined"}, AppPort: []string{"3000"},
			Entrypoints: []string{"/usr/local/share/docker-init.sh"},
			Run: devcontainer.RunArgs{Network: "host", Devices: []string{"/dev/fuse"}, GPUs: "all",
				EnvFiles: []string{ws + "/.env", "/home/u/.aws/env"},
				Mounts:   []devcontainer.Mount{{Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}, {Type: "bind", Source: ws + "/x", Target: "/x"}, {Type: "volume", Source: "v", Target: "/v"}}},
		}, want: []Finding{
			{Kind: KindCommand, Field: "entrypoint[0]", Detail: "/usr/local/share/docker-init.sh"},
			{Kind: KindMount, Field: "runArgs mount 0", Path: "/var/run/docker.sock", Detail: "at /var/run/docker.sock"},
			{Kind: KindFile, Field: "runArgs --env-file", Path: "/home/u/.aws/env"},
			{Kind: KindPrivilege, Field: "privileged", Detail: "runs the container privileged, with every device and capability of the host"},
			{Kind: KindPrivilege, Field: "capAdd", Detail: "adds the capability SYS_ADMIN"},
			{Kind: KindPrivilege, Field: "securityOpt", Detail: "sets the security option seccomp=unconfined"},
			{Kind: KindPrivilege, Field: "runArgs --network", Detail: "joins the network host"},
			{Kind: KindPrivilege, Field: "appPort", Detail: "publishes 3000 on the host's network"},
			{Kind: KindDevice, Field: "runArgs --device", Detail: "/dev/fuse"},
			{Kind: KindDevice, Field: "runArgs --gpus", Detail: "GPUs all"},
		}},
		{name: "harmless engine settings", cfg: &devcontainer.Config{Init: true, WaitFor: "postCreateCommand", UserEnvProbe: "none",
			Run: devcontainer.RunArgs{Hostname: "dev", ShmSize: 1 << 30, Network: "bridge", Labels: map[string]string{"a": "b"}, ExtraHosts: []string{"db:10.0.0.1"}}}},
		{name: "ignored keys do nothing", cfg: &devcontainer.Config{Image: "debian", Unknown: []string{"runArgs", "initializeCommand", "privileged", "capAdd", "features"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(ws, tt.cfg, resolve)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Classify (-want +got):\n%s", diff)
			}
		})
	}
}

// Every field of the configuration is classified, here and in Classify:
// a field berth learns to apply fails this test until someone decides
// whether it needs trust.
func TestClassifyCoversConfig(t *testing.T) {
	decided := map[string]string{
		// Checked by Classify.
		"OnCreate": "gated", "UpdateContent": "gated", "PostCreate": "gated", "PostStart": "gated", "PostAttach": "gated",
		"Mounts": "gated", "WorkspaceMount": "gated", "Build": "gated",
		"Features": "gated", "Metadata": "gated", "Compose": "gated",
		"OverrideFeatureInstallOrder": "harmless",
		// Reach nothing on the host: the image is the engine's, the rest
		// is the container's own, forwardPorts listen on loopback only.
		"Source": "harmless", "File": "harmless", "Image": "harmless", "WorkspaceFolder": "harmless",
		"ContainerEnv": "harmless", "RemoteEnv": "harmless", "RemoteUser": "harmless", "ContainerUser": "harmless",
		"ForwardPorts": "harmless", "ShutdownAction": "harmless", "Berth": "harmless", "Unknown": "harmless", "Hash": "harmless",
		// Commands on the host, entrypoints, powers over the host, host
		// devices and files: checked by Classify.
		"InitializeCommand": "gated", "Entrypoints": "gated", "CapAdd": "gated", "SecurityOpt": "gated", "Privileged": "gated",
		"AppPort": "gated", "Run": "gated (mounts, env files, devices, GPUs, network host; the rest is the container's own)",
		// The container's own business: its init, its own command, its
		// users and shell, and what editors show.
		"Init": "harmless", "OverrideCommand": "harmless (the image's own command)", "WaitFor": "harmless", "UserEnvProbe": "harmless",
		"UpdateRemoteUserUID": "harmless", "PortsAttributes": "harmless", "OtherPortsAttributes": "harmless", "HostRequirements": "harmless",
	}
	typ := reflect.TypeFor[devcontainer.Config]()
	for i := range typ.NumField() {
		if _, ok := decided[typ.Field(i).Name]; !ok {
			t.Errorf("devcontainer.Config.%s is not classified: decide whether it needs trust (Classify) and list it here", typ.Field(i).Name)
		}
	}
	// Limits only narrow the container; lifetime and service run the
	// container's own command in it and check it through the agent.
	// Two-way sync writes only inside the workspace, which a bind mount,
	// the default, lets the container write anyway.
	berth := map[string]bool{"Backend": true, "Test": true, "Lint": true, "Debug": true, "Agent": true, "Unknown": true,
		"Limits": true, "Lifetime": true, "Service": true, "Sync": true}
	bt := reflect.TypeFor[devcontainer.BerthSettings]()
	for i := range bt.NumField() {
		if !berth[bt.Field(i).Name] {
			t.Errorf("devcontainer.BerthSettings.%s is not classified", bt.Field(i).Name)
		}
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		dir, p string
		want   bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/c", true},
		{"/a/b", "/a/bc", false},
		{"/a/b", "/a", false},
		{"/", "/x", true},
	}
	for _, tt := range tests {
		if got := Within(tt.dir, tt.p); got != tt.want {
			t.Errorf("Within(%q, %q) = %v, want %v", tt.dir, tt.p, got, tt.want)
		}
	}
}
