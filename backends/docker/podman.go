package docker

import (
	"archive/tar"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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

// Bounds on the engine's info: rootless Podman takes seconds to answer it
// on a busy machine (8 s seen for Docker's /info, 4 s for its own), and a
// give-up would leave keep-id off; dockerd answers at once.
const (
	infoTimeout       = 5 * time.Second
	podmanInfoTimeout = 30 * time.Second
)

// info asks the engine once for engineInfo; a failed ask is logged and
// asked again next time, not remembered.
func (b *Backend) info() engineInfo {
	b.engineMu.Lock()
	defer b.engineMu.Unlock()
	if b.engineKnown {
		return b.engine
	}
	timeout := infoTimeout
	if b.name == PodmanName {
		timeout = podmanInfoTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e, err := b.askInfo(ctx)
	if err != nil {
		b.log.Warn("engine info unavailable: assuming it neither maps ids nor runs rootless", "err", err)
		return e
	}
	b.engine, b.engineKnown = e, true
	return e
}

func (b *Backend) askInfo(ctx context.Context) (engineInfo, error) {
	if b.name == PodmanName {
		// Podman's own info says whether it runs rootless, which its
		// Docker API's doesn't in Podman 4 (no "name=rootless"), and it
		// answers faster.
		if p, err := b.podmanInfo(ctx); err == nil {
			return engineInfo{rootless: p.Host.Security.Rootless, mapsIDs: p.Host.Security.Rootless, cgroupV1: p.Host.CgroupVersion == "v1"}, nil
		}
	}
	info, err := b.cli.Info(ctx)
	if err != nil {
		return engineInfo{}, fmt.Errorf("docker: info: %w", err)
	}
	var e engineInfo
	e.cgroupV1 = info.CgroupVersion == "1"
	podman := b.name == PodmanName || strings.Contains(strings.ToLower(info.OperatingSystem), "podman") || strings.Contains(strings.ToLower(info.InitBinary), "podman")
	for _, o := range info.SecurityOptions {
		if strings.Contains(o, "name=userns") {
			e.mapsIDs = true
		}
		if strings.Contains(o, "name=rootless") && podman {
			e.rootless, e.mapsIDs = true, true
		}
	}
	if podman && !e.rootless {
		if p, err := b.podmanInfo(ctx); err == nil && p.Host.Security.Rootless {
			e.rootless, e.mapsIDs = true, true
		}
	}
	return e, nil
}

// keepID sets a keep-id user namespace on hc for rootless Podman (see
// keepIDMode), with the remote user's ids looked up in the image.
func (b *Backend) keepID(ctx context.Context, spec backends.Spec, img imageInfo, cfg *container.Config, hc *container.HostConfig) {
	if user, _, _ := strings.Cut(spec.RemoteUser, ":"); user == "" || user == "root" || user == "0" || spec.Network == "host" {
		return // without asking the engine
	}
	if !b.info().rootless {
		return
	}
	uid, gid, err := b.imageUser(ctx, spec.Image, spec.RemoteUser)
	if err != nil {
		// A user made later (by a lifecycle command) isn't in the image:
		// the host user keeps its own uid.
		backends.Report(ctx, "keep-id: %v: the host user keeps its own uid in the container", err)
	}
	mode := keepIDMode(spec.RemoteUser, spec.Network, true, uid, gid)
	hc.UsernsMode = container.UsernsMode(mode)
	if mode != "" && cfg.User == "" {
		// keep-id also makes the mapped user the main process's, unless
		// one is given: keep the image's, as on Docker.
		cfg.User = cmp.Or(img.Config.User, "0")
	}
}

// keepIDMode is the user namespace for rootless Podman and a non-root
// remote user, so that files keep the host user's ownership: the host
// user becomes the remote user's uid and gid (uid >= 0, as looked up in
// the image), else keeps its own. "" for root, for host networking (where
// Podman refuses it), and for engines that aren't rootless Podman.
func keepIDMode(remoteUser, network string, rootless bool, uid, gid int) string {
	user, _, _ := strings.Cut(remoteUser, ":")
	if !rootless || user == "" || user == "root" || user == "0" || network == "host" || uid == 0 {
		return ""
	}
	if uid < 0 {
		return "keep-id"
	}
	return "keep-id:uid=" + strconv.Itoa(uid) + ",gid=" + strconv.Itoa(gid)
}

// imageUser finds user (NAME or UID, optionally :GROUP or :GID) in
// image's /etc/passwd and /etc/group, read from a container created for
// it and removed. A uid missing from /etc/passwd is its own gid, unless
// a group is given. -1s and an error when it can't tell.
func (b *Backend) imageUser(ctx context.Context, image, user string) (uid, gid int, err error) {
	name, group, _ := strings.Cut(user, ":")
	if u, err := strconv.Atoi(name); err == nil {
		if g, err := strconv.Atoi(group); err == nil {
			return u, g, nil // nothing to look up
		}
	}
	resp, err := b.cli.ContainerCreate(ctx, &container.Config{Image: image, Entrypoint: []string{"/nonexistent"}, Labels: map[string]string{labelProbe: "true"}}, nil, nil, nil, "")
	if err != nil {
		return -1, -1, b.mapErr("create a container to read "+image+"'s users", err, backends.ErrImageNotFound)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
		_ = b.cli.ContainerRemove(rctx, resp.ID, container.RemoveOptions{Force: true})
		cancel()
	}()
	read := func(path string) []byte {
		rc, _, err := b.cli.CopyFromContainer(ctx, resp.ID, path)
		if err != nil {
			return nil
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		if _, err := tr.Next(); err != nil {
			return nil
		}
		data, _ := io.ReadAll(io.LimitReader(tr, 4<<20))
		return data
	}
	uid, gid, err = lookupIDs(user, read("/etc/passwd"), read("/etc/group"))
	if err != nil {
		return -1, -1, fmt.Errorf("%s in %s: %w", user, image, err)
	}
	return uid, gid, nil
}

// labelProbe marks the short-lived containers berth makes to read an
// image's files.
const labelProbe = "berth.probe"

// lookupIDs resolves user (NAME or UID, optionally :GROUP or :GID) with
// the contents of /etc/passwd and /etc/group.
func lookupIDs(user string, passwd, group []byte) (uid, gid int, err error) {
	name, grp, hasGroup := strings.Cut(user, ":")
	uid, gid = -1, -1
	for _, f := range colonFields(passwd, 4) {
		if f[0] == name || f[2] == name {
			u, err1 := strconv.Atoi(f[2])
			g, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				uid, gid = u, g
				break
			}
		}
	}
	if uid < 0 {
		n, err := strconv.Atoi(name)
		if err != nil {
			return -1, -1, fmt.Errorf("no user %q in /etc/passwd", name)
		}
		uid, gid = n, n
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if g, err := strconv.Atoi(grp); err == nil {
		return uid, g, nil
	}
	for _, f := range colonFields(group, 3) {
		if g, err := strconv.Atoi(f[2]); err == nil && f[0] == grp {
			return uid, g, nil
		}
	}
	return -1, -1, fmt.Errorf("no group %q in /etc/group", grp)
}

// colonFields splits /etc/passwd-style lines, skipping comments and lines
// with fewer than n fields.
func colonFields(data []byte, n int) [][]string {
	var out [][]string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Split(line, ":"); len(f) >= n {
			out = append(out, f)
		}
	}
	return out
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

// podmanInfo is what berth reads of Podman's own info.
type podmanInfo struct {
	Host struct {
		CgroupVersion string `json:"cgroupVersion"` // "v1" or "v2"
		Security      struct {
			Rootless bool `json:"rootless"`
		} `json:"security"`
	} `json:"host"`
}

// podmanInfo asks Podman's own API for its info.
func (b *Backend) podmanInfo(ctx context.Context) (podmanInfo, error) {
	var info podmanInfo
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v4.0.0/libpod/info", nil)
	if err != nil {
		return info, err
	}
	resp, err := b.cli.HTTPClient().Do(req)
	if err != nil {
		return info, fmt.Errorf("podman: info: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return info, fmt.Errorf("podman: info: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return info, fmt.Errorf("podman: info: %w", err)
	}
	return info, nil
}
