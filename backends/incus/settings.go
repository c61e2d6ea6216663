package incus

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/berthdev/berth/backends"
)

// droppedCaps are the capabilities LXC drops from every container, which
// capAdd can't bring back; the rest a container's root already holds in
// its own user namespace.
var droppedCaps = []string{"MAC_ADMIN", "MAC_OVERRIDE", "SYS_MODULE", "SYS_TIME", "SYS_RAWIO"}

// Unsupported implements backends.Checker with the package's Unsupported.
func (b *Backend) Unsupported(spec backends.Spec) []string { return Unsupported(spec) }

// Unsupported is what an Incus system container can't take from a
// devcontainer's engine settings. It asks nothing of any daemon.
func Unsupported(spec backends.Spec) []string {
	var out []string
	for _, c := range spec.CapAdd {
		name := strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		if name == "ALL" || slices.Contains(droppedCaps, name) {
			out = append(out, fmt.Sprintf("capAdd %s (Incus containers never get it; privileged does)", c))
		}
	}
	for _, o := range spec.SecurityOpt {
		out = append(out, fmt.Sprintf("securityOpt %s (no Incus equivalent)", o))
	}
	if len(spec.Entrypoint) > 0 {
		out = append(out, "entrypoint scripts (the instance boots its own init)")
	}
	if spec.KeepCommand {
		out = append(out, "overrideCommand false (the instance boots the image's init, not its command)")
	}
	for _, h := range spec.ExtraHosts {
		out = append(out, "--add-host "+h)
	}
	if spec.Network != "" {
		out = append(out, "--network "+spec.Network+" (the default profile's network is used)")
	}
	if spec.ShmSize > 0 {
		out = append(out, "--shm-size")
	}
	if spec.Hostname != "" {
		out = append(out, "--hostname "+spec.Hostname+" (the instance's name is its hostname)")
	}
	for _, p := range spec.Publish {
		out = append(out, "appPort "+p.ContainerPort+" (use forwardPorts)")
	}
	for _, m := range spec.Mounts {
		if !m.IsBind() {
			out = append(out, fmt.Sprintf("%s mount at %s (Incus binds host paths only)", m.Type, m.Container))
		}
	}
	return out
}

// engineConfig adds the engine settings Incus can honour to an instance's
// config and devices: privileged, devices, GPUs and ulimits.
func engineConfig(spec backends.Spec, local bool, cfg map[string]string, devs map[string]map[string]string) {
	if spec.Privileged {
		cfg["security.privileged"] = "true"
	}
	limitsConfig(spec.Limits, cfg)
	for _, u := range spec.Ulimits {
		cfg["limits.kernel."+u.Name] = limit(u.Soft) + ":" + limit(u.Hard)
	}
	for i, d := range spec.Devices {
		parts := strings.Split(d, ":")
		host, path := parts[0], parts[0]
		if len(parts) > 1 && strings.HasPrefix(parts[1], "/") {
			path = parts[1]
		}
		typ := "unix-char"
		if fi, err := os.Stat(host); local && err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
			typ = "unix-block"
		}
		devs[fmt.Sprintf("berth-dev%d", i)] = map[string]string{"type": typ, "source": host, "path": path}
	}
	if g := spec.GPUs; g != "" {
		d := map[string]string{"type": "gpu"}
		if id, ok := strings.CutPrefix(g, "device="); ok {
			d["id"] = strings.Split(id, ",")[0]
		}
		devs["berth-gpu"] = d
	}
}

func limit(v int64) string {
	if v < 0 {
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}

// Resources implements backends.Resourcer from the server's resources.
func (b *Backend) Resources(ctx context.Context) (backends.HostResources, error) {
	res, err := b.c.Resources(ctx)
	if err != nil {
		return backends.HostResources{}, b.mapErr("resources", err, nil)
	}
	out := backends.HostResources{
		CPUs: int(res.CPU.Total), Memory: int64(res.Memory.Total),
		GPU: res.GPU.Total > 0, GPUKnown: true,
	}
	// Free space in the pool new instances' root disks come from, when
	// the default profile names one.
	if prof, err := b.c.Profile(ctx, "default"); err == nil {
		for _, d := range prof.Devices {
			if d["type"] == "disk" && d["path"] == "/" && d["pool"] != "" {
				if pr, err := b.c.StoragePoolResources(ctx, d["pool"]); err == nil && pr.Space.Total > pr.Space.Used {
					out.Storage = int64(pr.Space.Total - pr.Space.Used)
				}
			}
		}
	}
	return out, nil
}
