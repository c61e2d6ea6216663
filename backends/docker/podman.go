package docker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
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
	cgroupV1 bool
}

func (b *Backend) info() engineInfo {
	b.idsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), negotiateTimeout)
		defer cancel()
		info, err := b.cli.Info(ctx)
		if err != nil {
			return
		}
		b.engine.cgroupV1 = info.CgroupVersion == "1"
		podman := b.name == PodmanName || strings.Contains(strings.ToLower(info.OperatingSystem), "podman") || strings.Contains(strings.ToLower(info.InitBinary), "podman")
		// A fresh deadline: rootless Podman's info alone can take seconds.
		pctx, pcancel := context.WithTimeout(context.Background(), negotiateTimeout)
		defer pcancel()
		if podman && b.podmanRootless(pctx) {
			b.engine.rootless = true
		}
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

var _ backends.Checker = (*Backend)(nil)

// Unsupported implements backends.Checker: rootless Podman on cgroup v1
// can't limit a container's resources, and drops the limits it is given.
// It asks the engine once per backend, for the facts every create needs.
func (b *Backend) Unsupported(spec backends.Spec) []string {
	if spec.Limits.IsZero() || b.name != PodmanName {
		return nil
	}
	if e := b.info(); e.rootless && e.cgroupV1 {
		return []string{"limits (rootless Podman can't apply resource limits on cgroup v1)"}
	}
	return nil
}

// podmanRootless asks Podman's own API whether it runs rootless: its
// Docker API's info doesn't say so in Podman 4 (no "name=rootless").
func (b *Backend) podmanRootless(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/info", nil)
	if err != nil {
		return false
	}
	resp, err := b.cli.HTTPClient().Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var info struct {
		Host struct {
			Security struct {
				Rootless bool `json:"rootless"`
			} `json:"security"`
		} `json:"host"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info) != nil {
		return false
	}
	return info.Host.Security.Rootless
}
