package features

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"oras.land/oras-go/v2/registry"

	"github.com/berthdev/berth/devcontainer"
)

// resourceOf is a reference without its tag or digest.
func resourceOf(ref string) string {
	if strings.HasPrefix(ref, ".") || strings.Contains(ref, "://") {
		return ref
	}
	if pr, err := registry.ParseReference(ref); err == nil {
		return pr.Registry + "/" + pr.Repository
	}
	return ref
}

// names reports whether the reference or id s names f: its resource, its
// id or one of its legacy ids.
func (f *Feature) names(s string) bool {
	r := resourceOf(s)
	return r == f.Resource || s == f.ID || slices.Contains(f.legacyIDs, s)
}

// order sorts fs for installation as the spec's algorithm does: in rounds,
// each committing every Feature whose dependsOn and installsAfter (among
// fs) are installed, those that overrideFeatureInstallOrder puts first
// before the others, each round in its stable sort. A cycle is an error
// that names it.
func order(fs []*Feature, cfg *devcontainer.Config) ([]*Feature, error) {
	deps := make(map[*Feature][]*Feature, len(fs))
	for _, f := range fs {
		var ds []*Feature
		for _, d := range f.dependsOn {
			for _, g := range fs {
				if g != f && g.names(d.ref) && !slices.Contains(ds, g) {
					ds = append(ds, g)
				}
			}
		}
		for _, a := range f.installsAfter {
			for _, g := range fs {
				if g != f && g.names(a) && !slices.Contains(ds, g) {
					ds = append(ds, g)
				}
			}
		}
		deps[f] = ds
	}
	prio := map[*Feature]int{}
	for i, o := range cfg.OverrideFeatureInstallOrder {
		for _, f := range fs {
			if f.names(o) || f.Ref == o {
				if _, ok := prio[f]; !ok {
					prio[f] = len(cfg.OverrideFeatureInstallOrder) - i
				}
			}
		}
	}
	done := map[*Feature]bool{}
	var out []*Feature
	for len(out) < len(fs) {
		var ready []*Feature
		for _, f := range fs {
			if done[f] {
				continue
			}
			if !slices.ContainsFunc(deps[f], func(g *Feature) bool { return !done[g] }) {
				ready = append(ready, f)
			}
		}
		if len(ready) == 0 {
			return nil, cycleError(fs, deps, done, cfg)
		}
		top := 0
		for _, f := range ready {
			top = max(top, prio[f])
		}
		ready = slices.DeleteFunc(ready, func(f *Feature) bool { return prio[f] != top })
		slices.SortStableFunc(ready, roundCompare)
		for _, f := range ready {
			done[f] = true
		}
		out = append(out, ready...)
	}
	return out, nil
}

// roundCompare is the spec's round stable sort.
func roundCompare(a, b *Feature) int {
	if c := cmp.Compare(a.Resource, b.Resource); c != 0 {
		return c
	}
	if c := cmp.Compare(len(b.user), len(a.user)); c != 0 {
		return c // more user-defined options first
	}
	ak, bk := slices.Sorted(maps.Keys(a.user)), slices.Sorted(maps.Keys(b.user))
	if c := slices.Compare(ak, bk); c != 0 {
		return c
	}
	for _, k := range ak {
		if c := cmp.Compare(scalar(a.user[k]), scalar(b.user[k])); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.Resolved, b.Resolved)
}

// cycleError names one cycle among the Features not yet installed.
func cycleError(fs []*Feature, deps map[*Feature][]*Feature, done map[*Feature]bool, cfg *devcontainer.Config) error {
	var path []*Feature
	onPath := map[*Feature]int{}
	visited := map[*Feature]bool{}
	var cycle []*Feature
	var visit func(f *Feature) bool
	visit = func(f *Feature) bool {
		if i, ok := onPath[f]; ok {
			cycle = append(slices.Clone(path[i:]), f)
			return true
		}
		if visited[f] || done[f] {
			return false
		}
		visited[f] = true
		onPath[f] = len(path)
		path = append(path, f)
		for _, g := range deps[f] {
			if visit(g) {
				return true
			}
		}
		path = path[:len(path)-1]
		delete(onPath, f)
		return false
	}
	for _, f := range fs {
		if !done[f] && visit(f) {
			break
		}
	}
	names := make([]string, len(cycle))
	for i, f := range cycle {
		names[i] = f.Ref
	}
	e := &devcontainer.ConfigError{File: cfg.File, Field: "features", Msg: "the Features depend on each other in a cycle: " + strings.Join(names, " -> ")}
	for _, f := range cycle {
		if f.ref != nil {
			e.Line, e.Column = f.ref.Line, f.ref.Column
			e.Field = fmt.Sprintf("features[%q]", f.ref.ID)
			break
		}
	}
	return &entryError{e, ErrBadFeature}
}
