package incus

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
)

var _ backends.Limiter = (*Backend)(nil)

// Incus config keys of berth's limits.
const (
	keyMemory    = "limits.memory"
	keyAllowance = "limits.cpu.allowance"
	keyProcesses = "limits.processes"
)

// cpuPeriod is the scheduler period of limits.cpu.allowance's hard form:
// 1.5 CPUs is 150ms of every 100ms.
const cpuPeriod = 100 * time.Millisecond

// limitsConfig maps limits onto Incus config keys; zero fields set none.
func limitsConfig(l backends.Limits, cfg map[string]string) {
	if l.Memory > 0 {
		cfg[keyMemory] = strconv.FormatInt(l.Memory, 10)
	}
	if l.CPUs > 0 {
		ms := max(1, int64(math.Round(l.CPUs*float64(cpuPeriod/time.Millisecond))))
		cfg[keyAllowance] = fmt.Sprintf("%dms/%dms", ms, cpuPeriod/time.Millisecond)
	}
	if l.Pids > 0 {
		cfg[keyProcesses] = strconv.FormatInt(l.Pids, 10)
	}
}

// limitsOf reads back the limits limitsConfig wrote; keys in other forms
// (a percentage, a CPU count) read as no limit.
func limitsOf(cfg map[string]string) backends.Limits {
	var l backends.Limits
	l.Memory, _ = strconv.ParseInt(cfg[keyMemory], 10, 64)
	var used, period int64
	if n, _ := fmt.Sscanf(cfg[keyAllowance], "%dms/%dms", &used, &period); n == 2 && period > 0 {
		l.CPUs = float64(used) / float64(period)
	}
	l.Pids, _ = strconv.ParseInt(cfg[keyProcesses], 10, 64)
	return l
}

// SetLimits implements backends.Limiter with a PATCH of the instance's
// config, which Incus applies to the running container's cgroup.
func (b *Backend) SetLimits(ctx context.Context, id string, l backends.Limits) (backends.Limits, error) {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return backends.Limits{}, err
	}
	if in.StatusCode != rest.Running {
		return backends.Limits{}, fmt.Errorf("incus: limits of %s: %w", in.Name, backends.ErrNotRunning)
	}
	if l.IsZero() {
		return limitsOf(in.Config), nil
	}
	cfg := map[string]string{}
	limitsConfig(l, cfg)
	op, err := b.c.PatchInstance(ctx, in.Name, cfg)
	if err == nil && op != nil {
		_, err = b.waitOp(ctx, op.ID)
	}
	if err != nil {
		return backends.Limits{}, b.mapErr("limits of "+in.Name, err, backends.ErrNotFound)
	}
	b.log.Info("changed limits", "instance", in.Name, "memory", l.Memory, "cpus", l.CPUs, "pids", l.Pids)
	if in, err = b.getManaged(ctx, id); err != nil {
		return backends.Limits{}, err
	}
	return limitsOf(in.Config), nil
}

// usageInterval is how long Usage measures CPU use over.
const usageInterval = time.Second

// Usage implements backends.Limiter from two readings of the instance's
// state, usageInterval apart.
func (b *Backend) Usage(ctx context.Context, id string) (backends.Usage, error) {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return backends.Usage{}, err
	}
	if in.StatusCode != rest.Running {
		return backends.Usage{}, fmt.Errorf("incus: usage of %s: %w", in.Name, backends.ErrNotRunning)
	}
	first, err := b.c.InstanceState(ctx, in.Name)
	if err != nil {
		return backends.Usage{}, b.mapErr("state of "+in.Name, err, backends.ErrNotFound)
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return backends.Usage{}, ctx.Err()
	case <-time.After(usageInterval):
	}
	st, err := b.c.InstanceState(ctx, in.Name)
	if err != nil {
		return backends.Usage{}, b.mapErr("state of "+in.Name, err, backends.ErrNotFound)
	}
	u := backends.Usage{Memory: st.Memory.Usage, Processes: st.Processes, Limits: limitsOf(in.Config)}
	if d := st.CPU.Usage - first.CPU.Usage; d > 0 {
		u.CPUPercent = float64(d) / float64(time.Since(start).Nanoseconds()) * 100
	}
	return u, nil
}

var _ backends.OOMReporter = (*Backend)(nil)

// cgroupRoot is where the host mounts its cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// OOMMark implements backends.OOMReporter with the oom_kill counter of
// the instance's memory cgroup, which a local berth reads on the host
// (Incus has no OOM event). A remote engine is ErrNotSupported.
func (b *Backend) OOMMark(ctx context.Context, id string) (backends.OOMMark, error) {
	n, err := b.oomKills(ctx, id)
	return backends.OOMMark{Kills: n}, err
}

// OOMSince implements backends.OOMReporter.
func (b *Backend) OOMSince(ctx context.Context, id string, mark backends.OOMMark) (bool, error) {
	n, err := b.oomKills(ctx, id)
	return n > mark.Kills, err
}

func (b *Backend) oomKills(ctx context.Context, id string) (int64, error) {
	if b.remote {
		return 0, fmt.Errorf("incus: OOM kills: daemon is remote: %w", backends.ErrNotSupported)
	}
	name, _ := parseID(id)
	st, err := b.c.InstanceState(ctx, name)
	if err != nil {
		return 0, b.mapErr("state of "+name, err, backends.ErrNotFound)
	}
	if st.Pid <= 0 {
		return 0, fmt.Errorf("incus: %s: %w", name, backends.ErrNotRunning)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	if err != nil {
		return 0, fmt.Errorf("incus: cgroup of %s: %w", name, backends.ErrNotSupported)
	}
	file, ok := oomFile(string(data))
	if !ok {
		return 0, fmt.Errorf("incus: %s has no memory cgroup: %w", name, backends.ErrNotSupported)
	}
	data, err = os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("incus: OOM kills of %s: %w", name, err)
	}
	return oomKillCount(string(data)), nil
}

// oomFile finds, in a /proc/PID/cgroup, the file that counts OOM kills
// of the container's memory cgroup: memory.oom_control of cgroup v1's
// memory hierarchy, else memory.events of the v2 one. The container's own
// cgroup is its first component below the root (lxc.payload.NAME); its
// init may sit deeper.
func oomFile(procCgroup string) (string, bool) {
	top := func(p string) string {
		p = strings.TrimPrefix(p, "/")
		first, _, _ := strings.Cut(p, "/")
		return first
	}
	var v2 string
	for line := range strings.Lines(procCgroup) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			if t := top(parts[2]); t != "" {
				return filepath.Join(cgroupRoot, "memory", t, "memory.oom_control"), true
			}
		case parts[0] == "0" && parts[1] == "":
			v2 = top(parts[2])
		}
	}
	if v2 != "" {
		if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
			return filepath.Join(cgroupRoot, v2, "memory.events"), true
		}
	}
	return "", false
}

// oomKillCount reads the oom_kill line of memory.oom_control or
// memory.events.
func oomKillCount(s string) int64 {
	for line := range strings.Lines(s) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "oom_kill "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
