package incus

import (
	"testing"

	"github.com/berthdev/berth/backends"
)

func TestOOMFile(t *testing.T) {
	tests := []struct {
		name, cgroup, want string
	}{
		{"cgroup v1", "12:pids:/lxc.payload.c1\n4:memory:/lxc.payload.c1\n0::/lxc.payload.c1/.lxc\n", "/sys/fs/cgroup/memory/lxc.payload.c1/memory.oom_control"},
		{"v1, init deeper", "4:cpuacct,memory:/lxc.payload.c2/init.scope\n", "/sys/fs/cgroup/memory/lxc.payload.c2/memory.oom_control"},
		{"no memory cgroup", "1:name=systemd:/\n", ""},
	}
	for _, tt := range tests {
		got, _ := oomFile(tt.cgroup)
		if got != tt.want {
			t.Errorf("%s: oomFile = %q, want %q", tt.name, got, tt.want)
		}
	}
	if n := oomKillCount("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"); n != 3 {
		t.Errorf("oomKillCount(v1) = %d, want 3", n)
	}
	if n := oomKillCount("low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n"); n != 2 {
		t.Errorf("oomKillCount(v2) = %d, want 2", n)
	}
}

func TestLimitsConfigRoundTrip(t *testing.T) {
	for _, l := range []backends.Limits{{Memory: 64 << 20, CPUs: 1.5, Pids: 512}, {CPUs: 0.25}, {}} {
		cfg := map[string]string{}
		limitsConfig(l, cfg)
		if got := limitsOf(cfg); got != l {
			t.Errorf("limitsOf(limitsConfig(%+v)) = %+v (%v)", l, got, cfg)
		}
	}
}
