package rpc

import (
	"context"
	"encoding/json"
	"math"
	"strconv"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// LimitsParams are berth/limits's params and initializationOptions.limits.
// Memory is a number of bytes or a size such as "2g"; an absent field is
// left as it is.
type LimitsParams struct {
	Workspace string          `json:"workspace,omitempty"`
	Memory    json.RawMessage `json:"memory,omitempty"`
	CPUs      *float64        `json:"cpus,omitempty"`
	Pids      *float64        `json:"pids,omitempty"`
}

// Limits are the limits in effect; 0 is no limit.
type Limits struct {
	Memory int64   `json:"memory"` // bytes
	CPUs   float64 `json:"cpus"`
	Pids   int64   `json:"pids"`
}

// Usage is an instance's current use of memory, CPU and processes, with
// its limits (berth/status {usage: true}).
type Usage struct {
	Memory     int64   `json:"memory"`     // bytes
	CPUPercent float64 `json:"cpuPercent"` // over about a second; 100 is one CPU
	Processes  int     `json:"processes"`
	Limits     Limits  `json:"limits"`
}

func toLimits(l backends.Limits) Limits { return Limits{Memory: l.Memory, CPUs: l.CPUs, Pids: l.Pids} }

func toUsage(u backends.Usage) *Usage {
	return &Usage{Memory: u.Memory, CPUPercent: math.Round(u.CPUPercent*10) / 10, Processes: u.Processes, Limits: toLimits(u.Limits)}
}

// limits validates p's limits; prefix names them in errors, as
// "initializationOptions.limits." does.
func (p LimitsParams) limits(prefix string) (backends.Limits, error) {
	var l backends.Limits
	if len(p.Memory) > 0 && string(p.Memory) != "null" {
		var s string
		if err := json.Unmarshal(p.Memory, &s); err == nil {
			b, err := devcontainer.ParseSize(s)
			if err != nil {
				return l, badParam(prefix+"memory", "%v", err)
			}
			l.Memory = b
		} else if b, err := strconv.ParseInt(string(p.Memory), 10, 64); err == nil {
			l.Memory = b
		} else {
			return l, badParam(prefix+"memory", "want a number of bytes or a size such as \"2g\", got %s", p.Memory)
		}
		if l.Memory <= 0 {
			return l, badParam(prefix+"memory", "want a size above 0, got %s", p.Memory)
		}
	}
	if p.CPUs != nil {
		if *p.CPUs <= 0 || math.IsInf(*p.CPUs, 0) {
			return l, badParam(prefix+"cpus", "want a number of CPUs above 0 such as 1.5, got %v", *p.CPUs)
		}
		l.CPUs = *p.CPUs
	}
	if p.Pids != nil {
		if *p.Pids < 1 || *p.Pids != math.Trunc(*p.Pids) || *p.Pids > math.MaxInt32 {
			return l, badParam(prefix+"pids", "want a whole number of processes above 0, got %v", *p.Pids)
		}
		l.Pids = int64(*p.Pids)
	}
	return l, nil
}

// limitsMethod changes a running instance's limits without restarting it.
func limitsMethod(ctx context.Context, c *conn, raw json.RawMessage) (any, error) {
	var p LimitsParams
	if err := decode(raw, &p); err != nil {
		return nil, err
	}
	l, err := p.limits("")
	if err != nil {
		return nil, err
	}
	ws, err := c.workspace(p.Workspace)
	if err != nil {
		return nil, err
	}
	mgr, _, _ := c.session()
	got, err := mgr.Workspace(ws).SetLimits(ctx, l)
	if err != nil {
		return nil, err
	}
	return toLimits(got), nil
}
