package docker

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/berthdev/berth/backends"
)

// PodmanName is the backend's name when it drives Podman's
// Docker-compatible API (`podman system service`).
const PodmanName = "podman"

// rootfulPodmanSocket is where rootful `podman system service` listens.
const rootfulPodmanSocket = "/run/podman/podman.sock"

// PodmanEndpoint finds Podman's API as podman-remote does: CONTAINER_HOST,
// else the first socket that exists of $XDG_RUNTIME_DIR/podman/podman.sock
// (rootless) and /run/podman/podman.sock (rootful), else the first of them.
func PodmanEndpoint(getenv func(string) string) Endpoint {
	if h := getenv("CONTAINER_HOST"); h != "" {
		return Endpoint{Host: h, From: "CONTAINER_HOST"}
	}
	var socks []string
	if dir := getenv("XDG_RUNTIME_DIR"); dir != "" {
		socks = append(socks, filepath.Join(dir, "podman", "podman.sock"))
	}
	socks = append(socks, rootfulPodmanSocket)
	for _, s := range socks {
		if _, err := os.Stat(s); err == nil {
			return Endpoint{Host: "unix://" + s, From: "podman socket"}
		}
	}
	return Endpoint{Host: "unix://" + socks[0], From: "podman socket"}
}

// NewPodman connects to Podman's Docker-compatible API (PodmanEndpoint).
func NewPodman(log *slog.Logger, berthVersion string) (*Backend, error) {
	return NewAt(log, berthVersion, PodmanName, PodmanEndpoint(os.Getenv))
}

// engineInfo is what berth asks of the engine once: whether it maps ids
// itself, and whether it is rootless Podman.
type engineInfo struct {
	mapsIDs  bool
	rootless bool // rootless Podman, where keep-id applies
}

func (b *Backend) info() engineInfo {
	b.idsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), negotiateTimeout)
		defer cancel()
		info, err := b.cli.Info(ctx)
		if err != nil {
			return
		}
		podman := strings.Contains(strings.ToLower(info.OperatingSystem), "podman") || strings.Contains(strings.ToLower(info.InitBinary), "podman")
		for _, o := range info.SecurityOptions {
			if strings.Contains(o, "name=userns") {
				b.engine.mapsIDs = true
			}
			if strings.Contains(o, "name=rootless") && podman {
				b.engine.rootless = true
			}
		}
		if podman {
			b.engine.mapsIDs = true
		}
	})
	return b.engine
}

// keepID sets a keep-id user namespace on hc for rootless Podman (see
// keepIDMode).
func (b *Backend) keepID(spec backends.Spec, hc *container.HostConfig) {
	if user, _, _ := strings.Cut(spec.RemoteUser, ":"); user == "" || user == "root" || user == "0" || spec.Network == "host" {
		return // without asking the engine
	}
	hc.UsernsMode = container.UsernsMode(keepIDMode(spec.RemoteUser, spec.Network, b.info().rootless))
}

// keepIDMode is the user namespace for rootless Podman and a non-root
// remote user, so that files keep the host user's ownership: the host
// user becomes the remote user's uid (given as a number) or keeps its own
// (given as a name). "" for root, for host networking (where Podman
// refuses it), and for engines that aren't rootless Podman.
func keepIDMode(remoteUser, network string, rootless bool) string {
	user, group, _ := strings.Cut(remoteUser, ":")
	if !rootless || user == "" || user == "root" || user == "0" || network == "host" {
		return ""
	}
	mode := "keep-id"
	if uid, err := strconv.Atoi(user); err == nil {
		gid := uid
		if g, err := strconv.Atoi(group); err == nil {
			gid = g
		}
		mode += ":uid=" + strconv.Itoa(uid) + ",gid=" + strconv.Itoa(gid)
	}
	return mode
}
