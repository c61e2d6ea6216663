package incus

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

func TestEngineConfig(t *testing.T) {
	spec := backends.Spec{
		Privileged: true, Devices: []string{"/dev/fuse", "/dev/sda:/dev/xvda"}, GPUs: "device=1",
		Ulimits: []backends.Ulimit{{Name: "nofile", Soft: 1024, Hard: -1}},
	}
	cfg, devs := map[string]string{}, map[string]map[string]string{}
	engineConfig(spec, false, cfg, devs)
	if diff := cmp.Diff(map[string]string{"security.privileged": "true", "limits.kernel.nofile": "1024:unlimited"}, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	wantDevs := map[string]map[string]string{
		"berth-dev0": {"type": "unix-char", "source": "/dev/fuse", "path": "/dev/fuse"},
		"berth-dev1": {"type": "unix-char", "source": "/dev/sda", "path": "/dev/xvda"},
		"berth-gpu":  {"type": "gpu", "id": "1"},
	}
	if diff := cmp.Diff(wantDevs, devs); diff != "" {
		t.Errorf("devices (-want +got):\n%s", diff)
	}
}

func TestUnsupported(t *testing.T) {
	spec := backends.Spec{
		CapAdd: []string{"SYS_PTRACE", "CAP_SYS_TIME"}, SecurityOpt: []string{"seccomp=unconfined"},
		KeepCommand: true, ExtraHosts: []string{"db:1.2.3.4"}, Network: "host", ShmSize: 1, Hostname: "h",
		Publish: []backends.PortPublish{{ContainerPort: "80"}},
		Mounts:  []backends.Mount{{Host: "/ws", Container: "/w"}, {Host: "cache", Container: "/c", Type: "volume"}},
	}
	want := []string{
		"capAdd CAP_SYS_TIME (Incus containers never get it; privileged does)",
		"securityOpt seccomp=unconfined (no Incus equivalent)",
		"overrideCommand false (the instance boots the image's init, not its command)",
		"--add-host db:1.2.3.4",
		"--network host (the default profile's network is used)",
		"--shm-size",
		"--hostname h (the instance's name is its hostname)",
		"appPort 80 (use forwardPorts)",
		"volume mount at /c (Incus binds host paths only)",
	}
	if diff := cmp.Diff(want, Unsupported(spec)); diff != "" {
		t.Errorf("Unsupported (-want +got):\n%s", diff)
	}
	if got := Unsupported(backends.Spec{Privileged: true, Devices: []string{"/dev/fuse"}}); len(got) != 0 {
		t.Errorf("Unsupported of what Incus maps = %q", got)
	}
}
