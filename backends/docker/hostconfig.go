package docker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/berthdev/berth/backends"
)

// engineSettings maps a spec's engine settings onto the container's
// config and host config, as docker run maps its flags.
func engineSettings(spec backends.Spec, cfg *container.Config, hc *container.HostConfig) error {
	hc.CapAdd = spec.CapAdd
	hc.SecurityOpt = spec.SecurityOpt
	hc.Privileged = spec.Privileged
	hc.ExtraHosts = spec.ExtraHosts
	hc.ShmSize = spec.ShmSize
	hc.Resources = mergeResources(hc.Resources, resources(spec.Limits))
	if spec.Network != "" {
		hc.NetworkMode = container.NetworkMode(spec.Network)
	}
	cfg.Hostname = spec.Hostname
	for _, d := range spec.Devices {
		dm, err := deviceMapping(d)
		if err != nil {
			return err
		}
		hc.Devices = append(hc.Devices, dm)
	}
	if spec.GPUs != "" {
		req, err := gpuRequest(spec.GPUs)
		if err != nil {
			return err
		}
		hc.DeviceRequests = append(hc.DeviceRequests, req)
	}
	for _, u := range spec.Ulimits {
		hc.Ulimits = append(hc.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if len(spec.Publish) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hc.PortBindings = nat.PortMap{}
		for _, p := range spec.Publish {
			port, err := nat.NewPort(p.Proto, p.ContainerPort)
			if err != nil {
				return fmt.Errorf("docker: publish %s: %w", p.ContainerPort, err)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = append(hc.PortBindings[port], nat.PortBinding{HostIP: p.HostIP, HostPort: p.HostPort})
		}
	}
	return nil
}

// mergeResources sets the limits of l on r, leaving the rest of r.
func mergeResources(r, l container.Resources) container.Resources {
	r.Memory, r.MemorySwap, r.NanoCPUs, r.PidsLimit = l.Memory, l.MemorySwap, l.NanoCPUs, l.PidsLimit
	return r
}

// deviceMapping reads docker's --device HOST[:CONTAINER[:PERMS]].
func deviceMapping(s string) (container.DeviceMapping, error) {
	parts := strings.Split(s, ":")
	dm := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if isPerms(parts[1]) {
			dm.CgroupPermissions = parts[1]
		} else {
			dm.PathInContainer = parts[1]
		}
	case 3:
		if !isPerms(parts[2]) {
			return dm, fmt.Errorf("docker: device %q: permissions %q are not a mix of r, w and m", s, parts[2])
		}
		dm.PathInContainer, dm.CgroupPermissions = parts[1], parts[2]
	default:
		return dm, fmt.Errorf("docker: device %q: want HOST[:CONTAINER[:PERMISSIONS]]", s)
	}
	return dm, nil
}

func isPerms(s string) bool {
	return s != "" && strings.Trim(s, "rwm") == ""
}

// gpuRequest reads docker's --gpus: "all", a count, or
// "device=ID[,ID...]" (with an optional "count=N" or
// "capabilities=...", comma-separated, as docker takes them).
func gpuRequest(s string) (container.DeviceRequest, error) {
	req := container.DeviceRequest{Capabilities: [][]string{{"gpu"}}}
	if s == "all" {
		req.Count = -1
		return req, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		req.Count = n
		return req, nil
	}
	for part := range strings.SplitSeq(strings.Trim(s, `"`), ",") {
		k, v, ok := strings.Cut(part, "=")
		switch {
		case !ok && req.DeviceIDs != nil:
			req.DeviceIDs = append(req.DeviceIDs, k) // device=0,1
		case k == "device":
			req.DeviceIDs = append(req.DeviceIDs, v)
		case k == "count":
			if v == "all" {
				req.Count = -1
			} else if n, err := strconv.Atoi(v); err == nil {
				req.Count = n
			} else {
				return req, fmt.Errorf("docker: gpus %q: count %q is not a number", s, v)
			}
		case k == "driver":
			req.Driver = v
		case k == "capabilities":
			req.Capabilities = [][]string{strings.Split(v, ",")}
		default:
			return req, fmt.Errorf("docker: gpus %q: unknown option %q", s, part)
		}
	}
	return req, nil
}

// mainProcess is the container's entrypoint and command: berth's own
// (init, or the keep-alive), or with KeepCommand the image's, each behind
// the spec's entrypoint lines.
func mainProcess(spec backends.Spec, imgEntry, imgCmd []string) (entry, cmd []string) {
	main := keepAlive
	if len(spec.Init) > 0 {
		main = spec.Init
	}
	if spec.KeepCommand && len(spec.Command) > 0 {
		main = spec.Command
	} else if spec.KeepCommand {
		main = append(append([]string(nil), imgEntry...), imgCmd...)
		if len(spec.Entrypoint) == 0 {
			return nil, nil // the image's own, untouched
		}
	}
	if len(spec.Entrypoint) == 0 {
		return main, nil
	}
	// As the devcontainer CLI chains Features' entrypoints: each line in
	// turn, then the main process in the shell's place.
	script := strings.Join(spec.Entrypoint, "\n") + "\nexec \"$@\""
	return append([]string{"/bin/sh", "-c", script, "-"}, main...), nil
}

// Resources implements backends.Resourcer from the engine's info: its
// host's CPUs and memory, and whether it has a GPU runtime.
func (b *Backend) Resources(ctx context.Context) (backends.HostResources, error) {
	info, err := b.cli.Info(ctx)
	if err != nil {
		return backends.HostResources{}, b.mapErr("info", err, nil)
	}
	_, nvidia := info.Runtimes["nvidia"]
	out := backends.HostResources{CPUs: info.NCPU, Memory: info.MemTotal, GPU: nvidia, GPUKnown: true}
	// The engine doesn't report free space; on this host, its data root
	// tells.
	var fs syscall.Statfs_t
	if b.Local() && info.DockerRootDir != "" && syscall.Statfs(info.DockerRootDir, &fs) == nil {
		out.Storage = int64(fs.Bavail) * int64(fs.Bsize)
	}
	return out, nil
}

// MapsIDs implements backends.IDMapper: a daemon with user namespace
// remapping, or Podman behind Docker's API, maps ids itself. Asked once.
func (b *Backend) MapsIDs() bool { return b.info().mapsIDs }
