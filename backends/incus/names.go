package incus

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
)

// Incus keeps free-form metadata only under user.* config keys, so berth's
// labels (berth.managed, berth.workspace, Spec.Labels...) live there as
// user.<label>, and Instance.Labels strips the prefix again so callers see
// the same labels as on Docker.
const (
	userPrefix = "user."
	// keyImage records the image reference the instance was made from. It
	// is berth's bookkeeping, not a label, and is left out of Labels.
	keyImage = "user.berth.image"
	// keyUUID changes whenever an instance of the same name is recreated.
	keyUUID   = "volatile.uuid"
	envPrefix = "environment."
)

// mountDevicePrefix names the disk devices berth adds for Spec.Mounts.
const mountDevicePrefix = "berth-mount-"

// maxNameLen is Incus's limit on instance names (they are hostnames).
const maxNameLen = 63

// instanceName turns a spec name into a valid Incus instance name: at most
// 63 lower-case letters, digits and hyphens, not starting with a digit or
// hyphen nor ending with a hyphen. A name that had to change gets a short
// hash of the original appended, so distinct spec names stay distinct.
func instanceName(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		case sb.Len() > 0 && !strings.HasSuffix(sb.String(), "-"):
			sb.WriteByte('-')
		}
	}
	n := strings.Trim(sb.String(), "-")
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = strings.TrimSuffix("berth-"+n, "-")
	}
	if n == s && len(n) <= maxNameLen {
		return n
	}
	sum := sha256.Sum256([]byte(s))
	suffix := "-" + hex.EncodeToString(sum[:4])
	if len(n) > maxNameLen-len(suffix) {
		n = strings.TrimRight(n[:maxNameLen-len(suffix)], "-")
	}
	return n + suffix
}

// An Instance.ID is "<name>.<volatile.uuid>": the name finds the instance
// in one request, and the uuid tells a recreated instance of the same name
// from the one the ID was handed out for. Names cannot contain dots. A bare
// name is accepted too.
func formatID(name, uuid string) string {
	if uuid == "" {
		return name
	}
	return name + "." + uuid
}

func parseID(id string) (name, uuid string) {
	name, uuid, _ = strings.Cut(id, ".")
	return name, uuid
}

// instanceConfig is the config of a new instance: berth's keys, the spec's
// labels, and its environment.
func instanceConfig(spec backends.Spec, version string) map[string]string {
	cfg := map[string]string{}
	for k, v := range spec.Labels {
		cfg[userPrefix+k] = v
	}
	cfg[userPrefix+backends.LabelManaged] = "true"
	cfg[userPrefix+backends.LabelWorkspace] = spec.Workspace
	cfg[userPrefix+backends.LabelWorkdir] = spec.Workdir
	cfg[userPrefix+backends.LabelVersion] = version
	cfg[keyImage] = spec.Image
	for _, kv := range spec.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			cfg[envPrefix+k] = v
		}
	}
	return cfg
}

// labelsFromConfig returns the user.* keys without the prefix.
func labelsFromConfig(cfg map[string]string) map[string]string {
	labels := map[string]string{}
	for k, v := range cfg {
		if strings.HasPrefix(k, userPrefix) && k != keyImage {
			labels[strings.TrimPrefix(k, userPrefix)] = v
		}
	}
	return labels
}

func managed(cfg map[string]string) bool {
	return cfg[userPrefix+backends.LabelManaged] == "true"
}

// diskDevices makes one disk device per bind mount. The spec lists the
// workspace's own mount, or none when the workspace is synced in. With shift the kernel maps host owners into
// the container's user namespace (idmapped mounts), so files keep their
// host uid and gid inside.
func diskDevices(spec backends.Spec, shift bool) map[string]map[string]string {
	mounts := spec.Mounts
	devs := map[string]map[string]string{}
	for i, m := range mounts {
		if !m.IsBind() {
			continue // volumes and tmpfs are Docker's; a disk device binds host paths
		}
		d := map[string]string{"type": "disk", "source": m.Host, "path": m.Container}
		if shift {
			d["shift"] = "true"
		}
		if m.ReadOnly {
			d["readonly"] = "true"
		}
		devs[fmt.Sprintf("%s%d", mountDevicePrefix, i)] = d
	}
	return devs
}

func isMountDevice(name string) bool { return strings.HasPrefix(name, mountDevicePrefix) }

// mountsFromDevices reports berth's disk devices as host/container pairs,
// in the order they were given.
func mountsFromDevices(devs map[string]map[string]string) []backends.Mount {
	var names []string
	for name, d := range devs {
		if isMountDevice(name) && d["type"] == "disk" && d["source"] != "" {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool { return deviceIndex(names[i]) < deviceIndex(names[j]) })
	var out []backends.Mount
	for _, name := range names {
		out = append(out, backends.Mount{Host: devs[name]["source"], Container: devs[name]["path"]})
	}
	return out
}

func fromAPI(in *rest.Instance) backends.Instance {
	// The instance's own config, not the expanded one: a profile's user.*
	// keys must not make every instance look berth's.
	cfg := in.Config
	inst := backends.Instance{
		ID:        formatID(in.Name, cfg[keyUUID]),
		Name:      in.Name,
		Image:     cfg[keyImage],
		Workspace: cfg[userPrefix+backends.LabelWorkspace],
		Workdir:   cfg[userPrefix+backends.LabelWorkdir],
		State:     stateOf(in.StatusCode),
		Mounts:    mountsFromDevices(in.Devices),
		Labels:    labelsFromConfig(cfg),
		Created:   in.CreatedAt,
	}
	if inst.State == backends.StateRunning {
		inst.Started = in.LastUsedAt // incusd sets it at every start
	}
	return inst
}

func stateOf(code rest.StatusCode) backends.State {
	if code == rest.Running {
		return backends.StateRunning
	}
	return backends.StateStopped // stopped, frozen, or in between
}

// goArch names an Incus architecture the way GOARCH does; an unknown one
// comes back as is.
func goArch(arch string) string {
	switch arch {
	case "x86_64", "amd64":
		return "amd64"
	case "i686", "i586", "i386":
		return "386"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "armv6l", "armv8l", "armhf":
		return "arm"
	case "ppc64le", "ppc64el":
		return "ppc64le"
	case "riscv64", "s390x", "ppc64":
		return arch
	case "loongarch64":
		return "loong64"
	}
	return arch
}
