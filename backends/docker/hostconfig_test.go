package docker

import (
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

func TestEngineSettingsMapping(t *testing.T) {
	spec := backends.Spec{
		CapAdd: []string{"SYS_PTRACE"}, SecurityOpt: []string{"seccomp=unconfined"}, Privileged: true,
		Devices: []string{"/dev/fuse", "/dev/sda:/dev/xvda", "/dev/kvm:rw", "/dev/a:/dev/b:r"}, GPUs: "all",
		ExtraHosts: []string{"db:10.0.0.2"}, Network: "host", ShmSize: 64 << 20, Hostname: "dev",
		Ulimits: []backends.Ulimit{{Name: "nofile", Soft: 1, Hard: 2}},
		Publish: []backends.PortPublish{{ContainerPort: "3000", HostPort: "3000", Proto: "tcp"}, {HostIP: "127.0.0.1", ContainerPort: "53", Proto: "udp"}},
	}
	cfg, hc := &container.Config{}, &container.HostConfig{}
	if err := engineSettings(spec, cfg, hc); err != nil {
		t.Fatal(err)
	}
	want := &container.HostConfig{
		CapAdd: []string{"SYS_PTRACE"}, SecurityOpt: []string{"seccomp=unconfined"}, Privileged: true,
		ExtraHosts: []string{"db:10.0.0.2"}, NetworkMode: "host", ShmSize: 64 << 20,
		PortBindings: nat.PortMap{"3000/tcp": {{HostPort: "3000"}}, "53/udp": {{HostIP: "127.0.0.1"}}},
	}
	want.Devices = []container.DeviceMapping{
		{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
		{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "rwm"},
		{PathOnHost: "/dev/kvm", PathInContainer: "/dev/kvm", CgroupPermissions: "rw"},
		{PathOnHost: "/dev/a", PathInContainer: "/dev/b", CgroupPermissions: "r"},
	}
	want.DeviceRequests = []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}
	want.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 1, Hard: 2}}
	if diff := cmp.Diff(want, hc); diff != "" {
		t.Errorf("host config (-want +got):\n%s", diff)
	}
	if cfg.Hostname != "dev" || len(cfg.ExposedPorts) != 2 {
		t.Errorf("config: hostname %q, exposed %v", cfg.Hostname, cfg.ExposedPorts)
	}
}

func TestGPURequest(t *testing.T) {
	tests := []struct {
		in   string
		want container.DeviceRequest
	}{
		{"all", container.DeviceRequest{Count: -1, Capabilities: [][]string{{"gpu"}}}},
		{"2", container.DeviceRequest{Count: 2, Capabilities: [][]string{{"gpu"}}}},
		{"device=0,1", container.DeviceRequest{DeviceIDs: []string{"0", "1"}, Capabilities: [][]string{{"gpu"}}}},
		{`"device=GPU-3a,GPU-4b"`, container.DeviceRequest{DeviceIDs: []string{"GPU-3a", "GPU-4b"}, Capabilities: [][]string{{"gpu"}}}},
		{"count=all,driver=nvidia", container.DeviceRequest{Count: -1, Driver: "nvidia", Capabilities: [][]string{{"gpu"}}}},
	}
	for _, tt := range tests {
		got, err := gpuRequest(tt.in)
		if err != nil {
			t.Errorf("gpuRequest(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("gpuRequest(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
	for _, bad := range []string{"count=x", "colour=red"} {
		if _, err := gpuRequest(bad); err == nil {
			t.Errorf("gpuRequest(%q): no error", bad)
		}
	}
	if _, err := deviceMapping("/a:/b:xyz"); err == nil {
		t.Error(`deviceMapping("/a:/b:xyz"): no error`)
	}
}

func TestMainProcess(t *testing.T) {
	initArgv := []string{"/.berth/init", "init"}
	tests := []struct {
		name                 string
		spec                 backends.Spec
		wantEntry, wantCmd   []string
		imgEntry, imgCommand []string
	}{
		{name: "keep-alive", wantEntry: keepAlive},
		{name: "the agent as init", spec: backends.Spec{Init: initArgv}, wantEntry: initArgv},
		{name: "entrypoints before init", spec: backends.Spec{Init: initArgv, Entrypoint: []string{"/usr/local/share/docker-init.sh"}},
			wantEntry: []string{"/bin/sh", "-c", "/usr/local/share/docker-init.sh\nexec \"$@\"", "-", "/.berth/init", "init"}},
		{name: "overrideCommand false keeps the image's", spec: backends.Spec{KeepCommand: true}, imgEntry: []string{"/entry"}, imgCommand: []string{"serve"}},
		{name: "overrideCommand false behind entrypoints", spec: backends.Spec{KeepCommand: true, Entrypoint: []string{"a", "b"}}, imgEntry: []string{"/entry"}, imgCommand: []string{"serve"},
			wantEntry: []string{"/bin/sh", "-c", "a\nb\nexec \"$@\"", "-", "/entry", "serve"}},
	}
	for _, tt := range tests {
		entry, cmd := mainProcess(tt.spec, tt.imgEntry, tt.imgCommand)
		if diff := cmp.Diff(tt.wantEntry, entry); diff != "" {
			t.Errorf("%s: entrypoint (-want +got):\n%s", tt.name, diff)
		}
		if diff := cmp.Diff(tt.wantCmd, cmd); diff != "" {
			t.Errorf("%s: cmd (-want +got):\n%s", tt.name, diff)
		}
	}
}
