package session

import (
	"context"
	"fmt"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// warnings lists, in words for the user, what berth leaves out of cfg:
// keys it doesn't know or support (Config.Unknown), and engine settings
// the backend can't honour. Nothing berth ignores goes unsaid.
func (m *Manager) warnings(cfg *devcontainer.Config, spec backends.Spec) []string {
	var out []string
	where := "the configuration"
	if cfg.File != "" {
		where = cfg.File
	}
	if len(cfg.Unknown) > 0 {
		out = append(out, fmt.Sprintf("%s: berth ignores %s", where, strings.Join(cfg.Unknown, ", ")))
	}
	if len(cfg.Berth.Unknown) > 0 {
		out = append(out, fmt.Sprintf("%s: berth ignores customizations.berth.%s", where, strings.Join(cfg.Berth.Unknown, ", customizations.berth.")))
	}
	if c, ok := m.backend.(backends.Checker); ok {
		if un := c.Unsupported(spec); len(un) > 0 {
			out = append(out, fmt.Sprintf("%s: the %s backend can't honour %s", where, m.backend.Name(), strings.Join(un, "; ")))
		}
	}
	return out
}

// hostShortfall checks hostRequirements against the engine's host, which
// may be remote, and says where it falls short. A backend that can't
// tell gets a warning saying so.
func (m *Manager) hostShortfall(ctx context.Context, req *devcontainer.HostRequirements) []string {
	if req == nil || *req == (devcontainer.HostRequirements{}) {
		return nil
	}
	r, ok := m.backend.(backends.Resourcer)
	if !ok {
		return []string{fmt.Sprintf("hostRequirements not checked: the %s backend can't tell its host's resources", m.backend.Name())}
	}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	have, err := r.Resources(ctx)
	if err != nil {
		return []string{fmt.Sprintf("hostRequirements not checked: %v", err)}
	}
	var short []string
	if req.CPUs > 0 && have.CPUs < req.CPUs {
		short = append(short, fmt.Sprintf("%d CPUs (it has %d)", req.CPUs, have.CPUs))
	}
	if req.Memory > 0 && have.Memory < req.Memory {
		short = append(short, fmt.Sprintf("%s of memory (it has %s)", size(req.Memory), size(have.Memory)))
	}
	if req.Storage > 0 && have.Storage > 0 && have.Storage < req.Storage {
		short = append(short, fmt.Sprintf("%s of storage (it has %s)", size(req.Storage), size(have.Storage)))
	}
	if req.GPU == "required" && have.GPUKnown && !have.GPU {
		short = append(short, "a GPU (it has none berth can see)")
	}
	var out []string
	if len(short) > 0 {
		out = append(out, fmt.Sprintf("hostRequirements: the %s engine's host falls short: the configuration asks for %s", m.backend.Name(), strings.Join(short, ", ")))
	}
	if req.Storage > 0 && have.Storage == 0 {
		out = append(out, fmt.Sprintf("hostRequirements.storage not checked: the %s engine doesn't report free storage", m.backend.Name()))
	}
	return out
}

// size writes bytes as the largest whole binary unit.
func size(b int64) string {
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if b >= u.n {
			return fmt.Sprintf("%.1f %s", float64(b)/float64(u.n), u.name)
		}
	}
	return fmt.Sprintf("%d B", b)
}
