package docker

import (
	"math"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestCPUPercent(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	sample := func(read time.Time, total, system uint64, cpus uint32) (time.Time, container.CPUStats) {
		return read, container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: total}, SystemUsage: system, OnlineCPUs: cpus}
	}
	stats := func(pre, read time.Time, preCPU, cpu container.CPUStats) container.StatsResponse {
		var st container.StatsResponse
		st.PreRead, st.Read, st.PreCPUStats, st.CPUStats = pre, read, preCPU, cpu
		return st
	}
	for _, tc := range []struct {
		name string
		st   container.StatsResponse
		want float64
	}{{
		// Podman 4 on cgroup v2: system_cpu_usage sums the cgroups' usage,
		// 1.19 s over 1.42 s of wall time on two CPUs.
		name: "podman half a CPU on an idle host",
		st: func() container.StatsResponse {
			pr, pc := sample(t0, 1_251_170_395, 12_346_516_313_484, 2)
			r, c := sample(t0.Add(1_418_169_242), 1_955_850_691, 12_347_704_201_414, 2)
			return stats(pr, r, pc, c)
		}(),
		want: 49.7,
	}, {
		name: "docker one busy CPU of two",
		st: func() container.StatsResponse {
			pr, pc := sample(t0, 5e9, 100e9, 2)
			r, c := sample(t0.Add(time.Second), 6e9, 102e9, 2)
			return stats(pr, r, pc, c)
		}(),
		want: 100,
	}, {
		name: "no sample times: the host's CPU time",
		st: func() container.StatsResponse {
			_, pc := sample(time.Time{}, 5e9, 100e9, 2)
			_, c := sample(time.Time{}, 5.5e9, 102e9, 2)
			return stats(time.Time{}, time.Time{}, pc, c)
		}(),
		want: 50,
	}, {
		name: "no sample before",
		st: func() container.StatsResponse {
			r, c := sample(t0, 5e9, 100e9, 2)
			return stats(time.Time{}, r, container.CPUStats{}, c)
		}(),
		want: 0,
	}, {
		name: "idle",
		st: func() container.StatsResponse {
			pr, pc := sample(t0, 5e9, 100e9, 2)
			r, c := sample(t0.Add(time.Second), 5e9, 102e9, 2)
			return stats(pr, r, pc, c)
		}(),
		want: 0,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuPercent(tc.st); math.Abs(got-tc.want) > 0.1 {
				t.Errorf("cpuPercent = %.2f, want %.1f", got, tc.want)
			}
		})
	}
}
