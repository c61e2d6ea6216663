// Package docker implements backends.Backend on a Docker engine through the
// engine's API (github.com/docker/docker/client), found as the docker CLI
// finds it (DOCKER_HOST, TLS, ssh:// and contexts), negotiating the API
// version. The same backend, named "podman", drives Podman's
// Docker-compatible API.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"

	"github.com/berthdev/berth/backends"
)

// Name is the backend's name in berth's protocol and flags.
const Name = "docker"

// keepAlive is the instance's main process: it holds the container up
// whatever the image's CMD, and exits promptly on SIGTERM so stop is fast.
// docker-init (HostConfig.Init) runs above it as PID 1 and reaps zombies.
var keepAlive = []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 86400 & wait $!; done"}

// stopTimeout bounds a clean stop before the engine sends SIGKILL.
const stopTimeout = 3 // seconds

// Backend is a Docker engine.
type Backend struct {
	cli        *client.Client
	name       string   // Name or PodmanName
	ep         Endpoint // where the engine is
	log        *slog.Logger
	version    string     // berth version, recorded on instances
	composeCLI composeCLI // the user's Compose CLI, found on first use

	engineMu    sync.Mutex // guards the following, set by info
	engine      engineInfo
	engineKnown bool
}

var (
	_ backends.Backend    = (*Backend)(nil)
	_ backends.Platformer = (*Backend)(nil)
	_ backends.Localer    = (*Backend)(nil)
	_ backends.NetNSer    = (*Backend)(nil)
	_ backends.Downer     = (*Backend)(nil)
	_ backends.Resourcer  = (*Backend)(nil)
	_ backends.IDMapper   = (*Backend)(nil)
	_ backends.Endpointer = (*Backend)(nil)
)

// New connects to the engine the docker CLI would use (ResolveEndpoint)
// and settles the API version with it, briefly; an unreachable daemon is
// no error here: call Ping for that.
func New(log *slog.Logger, berthVersion string) (*Backend, error) {
	ep, err := ResolveEndpoint(os.Getenv)
	if err != nil {
		// berth still starts, and every call says what to fix (-32010).
		ep = Endpoint{Host: "unix:///var/run/docker.sock", From: "an unusable docker context", broken: err}
	}
	return NewAt(log, berthVersion, Name, ep)
}

// NewAt connects to the engine at ep, naming the backend name (Name or
// PodmanName).
func NewAt(log *slog.Logger, berthVersion, name string, ep Endpoint) (*Backend, error) {
	opts, err := clientOpts(ep)
	if err != nil {
		return nil, err
	}
	opts = append(opts, client.WithVersionFromEnv(), client.WithAPIVersionNegotiation())
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %s: %w", ep.Host, err)
	}
	// Negotiated lazily, the version is written by the first request while
	// others (the event watcher) may read it: a data race. Settle it now.
	ctx, cancel := context.WithTimeout(context.Background(), negotiateTimeout)
	defer cancel()
	cli.NegotiateAPIVersion(ctx)
	log = log.With("backend", name)
	log.Debug("engine", "endpoint", ep.Host, "from", ep.From, "remote", ep.Remote())
	return &Backend{cli: cli, name: name, ep: ep, log: log, version: berthVersion}, nil
}

// negotiateTimeout bounds New's one request to the daemon.
const negotiateTimeout = 2 * time.Second

// Close releases the client's connections.
func (b *Backend) Close() error { return b.cli.Close() }

// Name implements backends.Backend.
func (b *Backend) Name() string { return b.name }

// Endpoint implements backends.Endpointer.
func (b *Backend) Endpoint() string { return b.ep.Host }

// Ping implements backends.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	if _, err := b.cli.Ping(ctx); err != nil {
		return b.unavailable(err)
	}
	return nil
}

func (b *Backend) unavailable(err error) error {
	return fmt.Errorf("%w: %s engine not reachable at %s (%s): %s (%v)",
		backends.ErrUnavailable, b.name, b.ep.Host, b.ep.From, hint(b.ep, err), err)
}

// mapErr translates an engine error into berth's sentinels. notFound is the
// sentinel a 404 means in this call's context.
func (b *Backend) mapErr(op string, err error, notFound error) error {
	switch {
	case err == nil:
		return nil
	case client.IsErrConnectionFailed(err):
		return b.unavailable(err)
	case cerrdefs.IsNotFound(err) && notFound != nil:
		return fmt.Errorf("docker: %s: %w: %v", op, notFound, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("docker: %s: %w", op, err)
	default:
		return fmt.Errorf("docker: %s: %w", op, err)
	}
}

// Find implements backends.Backend.
func (b *Backend) Find(ctx context.Context, workspace string) (backends.Instance, error) {
	list, err := b.list(ctx, filters.Arg("label", backends.LabelWorkspace+"="+workspace))
	if err != nil {
		return backends.Instance{}, err
	}
	for _, inst := range list {
		if inst.Workspace == workspace { // label filters match loosely on '='
			if inst.State != backends.StateRunning {
				return inst, nil
			}
			// A running instance's start time is only in its inspect.
			return b.inspectManaged(ctx, inst.ID)
		}
	}
	return backends.Instance{}, fmt.Errorf("docker: workspace %s: %w", workspace, backends.ErrNotFound)
}

// List implements backends.Backend.
func (b *Backend) List(ctx context.Context) ([]backends.Instance, error) {
	return b.list(ctx)
}

func (b *Backend) list(ctx context.Context, extra ...filters.KeyValuePair) ([]backends.Instance, error) {
	args := filters.NewArgs(append(extra, filters.Arg("label", backends.LabelManaged+"=true"))...)
	cs, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, b.mapErr("list", err, nil)
	}
	out := make([]backends.Instance, 0, len(cs))
	for _, c := range cs {
		out = append(out, fromSummary(c))
	}
	// Oldest first, so that if a race ever left two, every caller agrees.
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

func fromSummary(c container.Summary) backends.Instance {
	name := ""
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	inst := backends.Instance{
		ID:        c.ID,
		Name:      name,
		Image:     c.Image,
		Workspace: c.Labels[backends.LabelWorkspace],
		Workdir:   c.Labels[backends.LabelWorkdir],
		State:     stateOf(c.State),
		Labels:    c.Labels,
		Created:   time.Unix(c.Created, 0),
		Health:    healthOf(c.Status),
	}
	for _, m := range c.Mounts {
		if m.Type == mount.TypeBind {
			inst.Mounts = append(inst.Mounts, backends.Mount{Host: m.Source, Container: m.Destination})
		}
	}
	return inst
}

func fromInspect(c container.InspectResponse) backends.Instance {
	inst := backends.Instance{
		ID:   c.ID,
		Name: strings.TrimPrefix(c.Name, "/"),
	}
	if c.Config != nil {
		inst.Image = c.Config.Image
		inst.Labels = c.Config.Labels
		inst.Workspace = c.Config.Labels[backends.LabelWorkspace]
		inst.Workdir = c.Config.Labels[backends.LabelWorkdir]
		inst.User = c.Config.User
	}
	if c.State != nil {
		inst.State = stateOf(c.State.Status)
		if t, err := time.Parse(time.RFC3339Nano, c.State.StartedAt); err == nil && inst.State == backends.StateRunning {
			inst.Started = t
		}
		if h := c.State.Health; h != nil && inst.State == backends.StateRunning && h.Status != "none" {
			inst.Health = h.Status
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, c.Created); err == nil {
		inst.Created = t
	}
	for _, m := range c.Mounts {
		if m.Type == mount.TypeBind {
			inst.Mounts = append(inst.Mounts, backends.Mount{Host: m.Source, Container: m.Destination})
		}
	}
	return inst
}

// healthOf reads a HEALTHCHECK's verdict from a container list's status,
// "Up 3 minutes (healthy)".
func healthOf(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return backends.HealthHealthy
	case strings.HasSuffix(status, "(unhealthy)"):
		return backends.HealthUnhealthy
	case strings.HasSuffix(status, "(health: starting)"):
		return backends.HealthStarting
	}
	return ""
}

func stateOf(s string) backends.State {
	if s == "running" {
		return backends.StateRunning
	}
	return backends.StateStopped
}

// Ensure implements backends.Backend.
func (b *Backend) Ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	if spec.Compose != nil {
		return b.ensureCompose(ctx, spec)
	}
	// A caller that lost the race to create adopts the winner's container;
	// if the winner's set-up then failed, it removed that container, and
	// the loser tries again rather than fail on a container gone.
	for attempt := 1; ; attempt++ {
		inst, created, err := b.ensure(ctx, spec)
		if !errors.Is(err, errAdoptedGone) || attempt == 3 {
			return inst, created, err
		}
	}
}

// errAdoptedGone is a container adopted from a concurrent creator that
// vanished before it could be started.
var errAdoptedGone = errors.New("the container another caller created is gone")

func (b *Backend) ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	inst, err := b.Find(ctx, spec.Workspace)
	switch {
	case err == nil:
		inst, err = b.start(ctx, inst)
		return inst, false, err
	case !errors.Is(err, backends.ErrNotFound):
		return backends.Instance{}, false, err
	}

	img, err := b.ensureImage(ctx, spec.Image)
	if err != nil {
		return backends.Instance{}, false, err
	}
	if !slices.Contains(spec.InitPlatforms, img.platform) || spec.KeepCommand {
		spec.Init, spec.Files = nil, nil
	}
	id, err := b.create(ctx, spec, img)
	if errors.Is(err, errNameTaken) {
		// Another caller (maybe another berth process) won the race; adopt
		// its instance, which carries the same deterministic name.
		inst, err := b.adopt(ctx, spec.Name)
		if err == nil {
			inst, err = b.start(ctx, inst)
		}
		if errors.Is(err, backends.ErrNotFound) {
			err = fmt.Errorf("%w: %w", errAdoptedGone, err)
		}
		return inst, false, err
	}
	if err != nil {
		return backends.Instance{}, false, err
	}
	backends.Report(ctx, "starting container %s", spec.Name)
	if err := b.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return backends.Instance{}, false, b.mapErr("start "+spec.Name, err, backends.ErrNotFound)
	}
	inst, err = b.inspectManaged(ctx, id)
	return inst, true, err
}

var errNameTaken = errors.New("name taken")

func (b *Backend) create(ctx context.Context, spec backends.Spec, img imageInfo) (string, error) {
	platform := img.platform
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[backends.LabelManaged] = "true"
	labels[backends.LabelWorkspace] = spec.Workspace
	labels[backends.LabelWorkdir] = spec.Workdir
	labels[backends.LabelVersion] = b.version

	mounts := make([]mount.Mount, 0, len(spec.Mounts))
	for _, m := range spec.Mounts {
		mt := mount.Mount{Type: mount.TypeBind, Source: m.Host, Target: m.Container, ReadOnly: m.ReadOnly}
		switch m.Type {
		case "volume":
			mt.Type = mount.TypeVolume
		case "tmpfs":
			mt.Type, mt.Source = mount.TypeTmpfs, ""
		}
		mounts = append(mounts, mt)
	}
	// docker-init runs as PID 1 whatever the config's "init" says: it
	// reaps zombies and forwards signals, and costs nothing.
	init := true
	entry, cmd := mainProcess(spec, img.Config.Entrypoint, img.Config.Cmd)
	cfg := &container.Config{
		Image:      spec.Image,
		Entrypoint: entry,
		Cmd:        cmd,
		Env:        spec.Env,
		WorkingDir: spec.Workdir,
		Labels:     labels,
	}
	if spec.KeepCommand {
		cfg.User = spec.User
	}
	hc := &container.HostConfig{Mounts: mounts, Init: &init}
	if err := engineSettings(spec, cfg, hc); err != nil {
		return "", err
	}
	b.keepID(ctx, spec, img, cfg, hc)
	backends.Report(ctx, "creating container %s from %s", spec.Name, spec.Image)
	resp, err := b.cli.ContainerCreate(ctx, cfg, hc, nil, nil, spec.Name)
	// Podman answers a taken name with a 500 that says so.
	if cerrdefs.IsConflict(err) || (err != nil && strings.Contains(err.Error(), "is already in use")) {
		return "", errNameTaken
	}
	if err != nil {
		return "", b.mapErr("create "+spec.Name, err, backends.ErrImageNotFound)
	}
	b.log.Info("created container", "instance", spec.Name, "workspace", spec.Workspace, "image", spec.Image)
	if spec.Files != nil {
		if err := b.copyFiles(ctx, resp.ID, spec.Files, platform); err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
			_ = b.cli.ContainerRemove(rctx, resp.ID, container.RemoveOptions{Force: true})
			cancel()
			return "", err
		}
	}
	return resp.ID, nil
}

// adopt returns the instance another caller is creating under name. The
// engine reserves the name before the container can be inspected, so wait
// for it briefly.
func (b *Backend) adopt(ctx context.Context, name string) (backends.Instance, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		inst, err := b.inspectManaged(ctx, name)
		if !errors.Is(err, backends.ErrNotFound) || time.Now().After(deadline) {
			return inst, err
		}
		select {
		case <-ctx.Done():
			return backends.Instance{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *Backend) copyFiles(ctx context.Context, id string, files func(string) (io.Reader, error), platform string) error {
	r, err := files(platform)
	if err != nil {
		return fmt.Errorf("docker: files for %s: %w", id, err)
	}
	return b.CopyTo(ctx, id, "/", r)
}

// inspectManaged inspects by name or id and refuses containers without
// berth's labels.
func (b *Backend) inspectManaged(ctx context.Context, ref string) (backends.Instance, error) {
	c, err := b.cli.ContainerInspect(ctx, ref)
	if err != nil {
		return backends.Instance{}, b.mapErr("inspect "+ref, err, backends.ErrNotFound)
	}
	inst := fromInspect(c)
	if inst.Labels[backends.LabelManaged] != "true" {
		return backends.Instance{}, fmt.Errorf("docker: container %s exists but has no %s label; remove or rename it: %w",
			inst.Name, backends.LabelManaged, backends.ErrForeign)
	}
	return inst, nil
}

func (b *Backend) start(ctx context.Context, inst backends.Instance) (backends.Instance, error) {
	if inst.State == backends.StateRunning {
		return inst, nil
	}
	backends.Report(ctx, "starting container %s", inst.Name)
	if err := b.cli.ContainerStart(ctx, inst.ID, container.StartOptions{}); err != nil {
		return backends.Instance{}, b.mapErr("start "+inst.Name, err, backends.ErrNotFound)
	}
	return b.inspectManaged(ctx, inst.ID)
}

// imageInfo is what creating a container needs to know of its image.
type imageInfo struct {
	platform string // GOOS/GOARCH
	Config   struct {
		Entrypoint, Cmd []string
		User            string // "" for root
	}
}

// ensureImage makes sure ref is present, pulling it if needed, and returns
// its platform and default command.
func (b *Backend) ensureImage(ctx context.Context, ref string) (imageInfo, error) {
	if ref == "" {
		return imageInfo{}, fmt.Errorf("docker: no image given: %w", backends.ErrImageNotFound)
	}
	img, err := b.cli.ImageInspect(ctx, ref)
	if err == nil {
		return infoOf(img), nil
	}
	if !cerrdefs.IsNotFound(err) {
		return imageInfo{}, b.mapErr("inspect image "+ref, err, backends.ErrImageNotFound)
	}
	backends.Report(ctx, "pulling image %s", ref)
	rc, err := b.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return imageInfo{}, fmt.Errorf("docker: image %q is not present locally and could not be pulled (%v): %w", ref, err, backends.ErrImageNotFound)
	}
	defer rc.Close()
	if err := b.followPull(ctx, ref, rc); err != nil {
		return imageInfo{}, fmt.Errorf("docker: image %q is not present locally and could not be pulled (%v): %w", ref, err, backends.ErrImageNotFound)
	}
	img, err = b.cli.ImageInspect(ctx, ref)
	if err != nil {
		return imageInfo{}, b.mapErr("inspect image "+ref, err, backends.ErrImageNotFound)
	}
	return infoOf(img), nil
}

func infoOf(img image.InspectResponse) imageInfo {
	info := imageInfo{platform: img.Os + "/" + img.Architecture}
	if img.Config != nil {
		info.Config.Entrypoint, info.Config.Cmd, info.Config.User = img.Config.Entrypoint, img.Config.Cmd, img.Config.User
	}
	return info
}

// followPull reads the engine's JSON progress stream, forwarding its steps
// (a line per status change, unless something draws them) and returning
// the first error message.
func (b *Backend) followPull(ctx context.Context, ref string, rc io.Reader) error {
	defer backends.ReportPull(ctx, backends.PullEvent{Ref: ref, Done: true})
	dec := json.NewDecoder(rc)
	draws := backends.DrawsPulls(ctx)
	last := ""
	for {
		var msg jsonmessage.JSONMessage
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
		if msg.ErrorMessage != "" {
			return errors.New(msg.ErrorMessage)
		}
		e := backends.PullEvent{Ref: ref, Layer: msg.ID, Status: msg.Status}
		if p := msg.Progress; p != nil {
			e.Current, e.Total = p.Current, p.Total
		}
		// Byte counts change many times a second: a line each is noise.
		if step := e.Layer + " " + e.Status; step != last || draws {
			last = step
			backends.ReportPull(ctx, e)
		}
	}
}

// Local implements backends.Localer: the engine is local when it is
// reached on a unix socket (Endpoint.Remote).
func (b *Backend) Local() bool { return !b.ep.Remote() }

// NetNS implements backends.NetNSer for a local engine.
func (b *Backend) NetNS(ctx context.Context, id string) (string, error) {
	if !b.Local() {
		return "", fmt.Errorf("docker: engine is remote: %w", backends.ErrNotSupported)
	}
	c, err := b.cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", b.mapErr("inspect "+id, err, backends.ErrNotFound)
	}
	if c.State == nil || c.State.Pid == 0 {
		return "", fmt.Errorf("docker: %s: %w", id, backends.ErrNotRunning)
	}
	p := fmt.Sprintf("/proc/%d/ns/net", c.State.Pid)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("docker: %s not visible here (is the engine in another namespace?): %w", p, backends.ErrNotSupported)
	}
	return p, nil
}

// Platform implements backends.Platformer from the instance's image.
func (b *Backend) Platform(ctx context.Context, id string) (string, string, error) {
	c, err := b.cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", "", b.mapErr("inspect "+id, err, backends.ErrNotFound)
	}
	img, err := b.cli.ImageInspect(ctx, c.Image)
	if err != nil {
		return "", "", b.mapErr("inspect image "+c.Image, err, backends.ErrImageNotFound)
	}
	return img.Os, img.Architecture, nil
}

// Stop implements backends.Backend.
func (b *Backend) Stop(ctx context.Context, id string) error {
	t := stopTimeout
	if err := b.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &t}); err != nil {
		return b.mapErr("stop "+id, err, backends.ErrNotFound)
	}
	return nil
}

// Remove implements backends.Backend.
func (b *Backend) Remove(ctx context.Context, id string) error {
	if err := b.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		return b.mapErr("remove "+id, err, backends.ErrNotFound)
	}
	return nil
}

// CopyTo implements backends.Backend.
func (b *Backend) CopyTo(ctx context.Context, id, dir string, tar io.Reader) error {
	err := b.cli.CopyToContainer(ctx, id, dir, tar, container.CopyToContainerOptions{})
	return b.mapErr("copy to "+dir, err, backends.ErrNotFound)
}

// CopyFrom implements backends.Backend.
func (b *Backend) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	rc, _, err := b.cli.CopyFromContainer(ctx, id, path)
	if err != nil {
		return nil, b.mapErr("copy from "+path, err, backends.ErrNotFound)
	}
	return rc, nil
}
