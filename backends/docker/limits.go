package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/docker/docker/api/types/container"

	"github.com/berthdev/berth/backends"
)

var _ backends.Limiter = (*Backend)(nil)

// resources maps limits onto docker's: --memory (with as much swap, that
// is none beyond it, so the limit holds on a host with swap), --cpus and
// --pids-limit. Zero fields stay zero, which docker reads as "no limit"
// on create and "unchanged" on update.
func resources(l backends.Limits) container.Resources {
	var r container.Resources
	if l.Memory > 0 {
		r.Memory, r.MemorySwap = l.Memory, l.Memory
	}
	if l.CPUs > 0 {
		r.NanoCPUs = int64(math.Round(l.CPUs * 1e9))
	}
	if l.Pids > 0 {
		p := l.Pids
		r.PidsLimit = &p
	}
	return r
}

// SetLimits implements backends.Limiter with docker's container update,
// which changes the cgroup of the running container in place.
func (b *Backend) SetLimits(ctx context.Context, id string, l backends.Limits) (backends.Limits, error) {
	c, err := b.cli.ContainerInspect(ctx, id)
	if err != nil {
		return backends.Limits{}, b.mapErr("update "+id, err, backends.ErrNotFound)
	}
	if c.State == nil || !c.State.Running {
		return backends.Limits{}, fmt.Errorf("docker: update %s: %w", id, backends.ErrNotRunning)
	}
	if l.IsZero() {
		return limitsOf(c.HostConfig), nil
	}
	if b.name == PodmanName {
		if e := b.info(); e.rootless && e.cgroupV1 {
			return backends.Limits{}, fmt.Errorf("podman: update %s: %w: rootless Podman can't apply resource limits on cgroup v1", id, backends.ErrNotSupported)
		}
	}
	if _, err := b.cli.ContainerUpdate(ctx, id, container.UpdateConfig{Resources: resources(l)}); err != nil {
		if cerrdefs.IsNotFound(err) {
			// The container was just there: it is the endpoint that is
			// missing, as in Podman 4's Docker API.
			return backends.Limits{}, fmt.Errorf("%s: update %s: %w: the engine can't change a running container's limits (%v); set customizations.berth.limits and recreate the container (berth up --recreate)", b.name, id, backends.ErrNotSupported, err)
		}
		return backends.Limits{}, b.mapErr("update "+id, err, backends.ErrNotFound)
	}
	b.log.Info("changed limits", "instance", id, "memory", l.Memory, "cpus", l.CPUs, "pids", l.Pids)
	if c, err = b.cli.ContainerInspect(ctx, id); err != nil {
		return backends.Limits{}, b.mapErr("update "+id, err, backends.ErrNotFound)
	}
	return limitsOf(c.HostConfig), nil
}

// limitsOf reads the limits resources set back from a host config.
func limitsOf(hc *container.HostConfig) backends.Limits {
	var l backends.Limits
	if hc == nil {
		return l
	}
	l.Memory = hc.Memory
	l.CPUs = float64(hc.NanoCPUs) / 1e9
	if hc.PidsLimit != nil && *hc.PidsLimit > 0 {
		l.Pids = *hc.PidsLimit
	}
	return l
}

// Usage implements backends.Limiter with one docker stats sample, which
// the daemon takes a second after the one before it, so CPU use is
// measured over that second.
func (b *Backend) Usage(ctx context.Context, id string) (backends.Usage, error) {
	c, err := b.cli.ContainerInspect(ctx, id)
	if err != nil {
		return backends.Usage{}, b.mapErr("stats "+id, err, backends.ErrNotFound)
	}
	if c.State == nil || !c.State.Running {
		return backends.Usage{}, fmt.Errorf("docker: stats %s: %w", id, backends.ErrNotRunning)
	}
	if b.name == PodmanName {
		if e := b.info(); e.rootless && e.cgroupV1 {
			// Its stats would be the whole machine's memory and none of
			// the rest.
			return backends.Usage{}, fmt.Errorf("podman: stats %s: %w: rootless Podman on cgroup v1 gives a container no cgroup of its own to measure", id, backends.ErrNotSupported)
		}
	}
	u := backends.Usage{Limits: limitsOf(c.HostConfig)}
	st, err := b.stats(ctx, id)
	if err != nil {
		return backends.Usage{}, err
	}
	if st.PreCPUStats.SystemUsage == 0 {
		// Podman answers at once, with no sample before: take that second
		// sample a second later.
		select {
		case <-ctx.Done():
			return backends.Usage{}, ctx.Err()
		case <-time.After(time.Second):
		}
		next, err := b.stats(ctx, id)
		if err != nil {
			return backends.Usage{}, err
		}
		next.PreCPUStats, next.PreRead = st.CPUStats, st.Read
		st = next
	}
	u.Memory = memoryUsed(st.MemoryStats)
	u.CPUPercent = cpuPercent(st)
	u.Processes = int(st.PidsStats.Current)
	return u, nil
}

// stats is one docker stats sample of id.
func (b *Backend) stats(ctx context.Context, id string) (container.StatsResponse, error) {
	var st container.StatsResponse
	rc, err := b.cli.ContainerStats(ctx, id, false)
	if err != nil {
		return st, b.mapErr("stats "+id, err, backends.ErrNotFound)
	}
	defer rc.Body.Close()
	if err := json.NewDecoder(rc.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("docker: stats %s: %w", id, err)
	}
	return st, nil
}

// memoryUsed is docker stats' figure: usage less the page cache the
// kernel can drop (inactive_file on cgroup v2, total_inactive_file on v1).
func memoryUsed(m container.MemoryStats) int64 {
	used := m.Usage
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := m.Stats[k]; ok && v < used {
			used -= v
			break
		}
	}
	return int64(used)
}

// cpuPercent is the container's CPU time between the two samples over
// the wall time between them: 100 per busy CPU. docker stats divides by
// the host's CPU time instead, which is wall time times CPUs on Docker
// but on Podman with cgroup v2 is only the CPU the cgroups used, so an
// idle host showed half a CPU as nearly two. The host-time figure stays
// for a daemon that gives no sample times.
func cpuPercent(st container.StatsResponse) float64 {
	cpu := float64(st.CPUStats.CPUUsage.TotalUsage) - float64(st.PreCPUStats.CPUUsage.TotalUsage)
	if cpu <= 0 || st.PreCPUStats.CPUUsage.TotalUsage == 0 && st.PreCPUStats.SystemUsage == 0 {
		return 0
	}
	if !st.Read.IsZero() && !st.PreRead.IsZero() && st.Read.After(st.PreRead) {
		return cpu / float64(st.Read.Sub(st.PreRead).Nanoseconds()) * 100
	}
	sys := float64(st.CPUStats.SystemUsage) - float64(st.PreCPUStats.SystemUsage)
	n := float64(st.CPUStats.OnlineCPUs)
	if n == 0 {
		n = float64(len(st.CPUStats.CPUUsage.PercpuUsage))
	}
	if sys <= 0 || st.PreCPUStats.SystemUsage == 0 {
		return 0
	}
	return cpu / sys * n * 100
}

var _ backends.OOMReporter = (*Backend)(nil)

// OOMMark implements backends.OOMReporter: docker reports each OOM kill
// in a container as an "oom" event, so a mark is a time.
func (b *Backend) OOMMark(ctx context.Context, id string) (backends.OOMMark, error) {
	return backends.OOMMark{At: time.Now()}, nil
}

// oomWait is how long OOMSince waits for the daemon's oom event, which
// may trail the process's exit.
const oomWait = 500 * time.Millisecond

// OOMSince implements backends.OOMReporter with the daemon's events since
// the mark. The daemon keeps only its latest events, which is enough
// right after a process died. The mark is berth's clock and the events
// the daemon's: a remote daemon's clock must be close to berth's, or a
// kill just before the mark may count.
func (b *Backend) OOMSince(ctx context.Context, id string, mark backends.OOMMark) (bool, error) {
	deadline := time.Now().Add(oomWait)
	for {
		n, err := b.oomEvents(ctx, id, mark.At)
		if err != nil || n > 0 || time.Now().After(deadline) {
			return n > 0, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// eventTime is a time as the events API takes it: seconds.nanoseconds.
func eventTime(t time.Time) string { return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond()) }

func (b *Backend) oomEvents(ctx context.Context, id string, since time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("container", id), filters.Arg("event", "oom"), filters.Arg("type", "container"))
	msgs, errs := b.cli.Events(ctx, events.ListOptions{
		Since:   eventTime(since),
		Until:   eventTime(time.Now()),
		Filters: f,
	})
	n := 0
	for {
		select {
		case <-msgs:
			n++
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, b.mapErr("events of "+id, err, backends.ErrNotFound)
		}
	}
}
