package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/features"
)

// LabelMetadata holds, on an instance, the image-metadata entries it was
// created with (the base image's, then its Features'), as JSON: berth
// reads them back instead of fetching anything again.
const LabelMetadata = "berth.metadata"

// imagePlan is the image a new instance is made from, and what goes with
// it.
type imagePlan struct {
	image   string
	entries []devcontainer.Metadata // the base image's label, then one per Feature
	// install is set when the backend cannot build: the Features to run
	// in the instance once it is created.
	install *featureInstall
}

// featureInstall is Features to install in a new instance.
type featureInstall struct {
	set   *features.Set
	users features.Users
}

// planImage settles a new instance's image for cfg: the configured or
// built base image, read for its devcontainer.metadata label, and, when
// cfg has Features, an image built with them on top (tagged by a hash of
// every input, so an unchanged configuration never rebuilds) or, on a
// backend that cannot build, the Features to install after creation.
func (m *Manager) planImage(ctx context.Context, ws string, cfg *devcontainer.Config, blog io.Writer, log *slog.Logger) (imagePlan, error) {
	base := cfg.Image
	if cfg.Build != nil {
		base = buildTag(ws, cfg)
	}
	plan := imagePlan{image: base}
	var info backends.ImageInfo
	if ii, ok := m.backend.(backends.ImageInspector); ok {
		var err error
		info, err = ii.InspectImage(ctx, base)
		switch {
		case err != nil && len(cfg.Features) > 0:
			return plan, err
		case err != nil:
			// Creating the instance reports a missing image better.
			log.Debug("could not read the image's metadata", "image", base, "err", err)
		default:
			plan.entries = labelEntries(info.Labels[devcontainer.LabelMetadata], "the "+devcontainer.LabelMetadata+" label of "+base, log)
		}
	}
	if len(cfg.Features) == 0 {
		return plan, nil
	}
	backends.Report(ctx, "resolving Features")
	set, err := features.Resolve(ctx, cfg, features.Options{WriteLock: true, Log: log})
	if err != nil {
		return plan, err
	}
	withBase := devcontainer.Merge(cfg, plan.entries)
	users := features.Users{Container: withBase.ContainerUser, Remote: withBase.RemoteUser}
	if users.Container == "" {
		users.Container = info.User
	}
	plan.entries = append(plan.entries, set.Metadata()...)
	b, ok := m.backend.(backends.Builder)
	if !ok {
		plan.install = &featureInstall{set: set, users: users}
		return plan, nil
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{"berth features image v1", base, info.ID, set.Hash(), users.Container, users.Remote}, "\x00")))
	wsSum := sha256.Sum256([]byte(ws))
	plan.image = "berth-features/ws-" + hex.EncodeToString(wsSum[:])[:12] + ":" + hex.EncodeToString(sum[:])[:12]
	if ok, err := b.ImageExists(ctx, plan.image); err != nil {
		return plan, err
	} else if ok {
		return plan, nil
	}
	dir, err := os.MkdirTemp("", "berth-features-build-")
	if err != nil {
		return plan, err
	}
	defer os.RemoveAll(dir)
	label, err := json.Marshal(plan.entries)
	if err != nil {
		return plan, err
	}
	dockerfile, err := set.WriteContext(dir, base, info.User, users, map[string]string{
		backends.LabelManaged: "true", backends.LabelWorkspace: ws, devcontainer.LabelMetadata: string(label),
	})
	if err != nil {
		return plan, err
	}
	backends.Report(ctx, "installing Features: %s", strings.Join(set.Refs(), ", "))
	var tail tailBuffer
	err = b.Build(ctx, backends.BuildSpec{
		Context: dir, Dockerfile: dockerfile, Tag: plan.image,
	}, io.MultiWriter(blog, &tail))
	if err != nil {
		return plan, featureFailed(err, tail.String())
	}
	return plan, nil
}

// featureFailed names the Feature whose install a failed build or run
// ended in, with the end of its log.
func featureFailed(err error, log string) error {
	i := strings.LastIndex(log, features.Marker)
	if i < 0 {
		return err
	}
	rest := log[i+len(features.Marker):]
	name, out, _ := strings.Cut(rest, "\n")
	return fmt.Errorf("the Feature %s failed to install (%w); the end of its log:\n%s", name, err, strings.TrimSpace(out))
}

// substituteEntries replaces, in the entries' mounts and containerEnv,
// the variables that the spec resolves in image metadata and Features:
// ${devcontainerId} (stable for the workspace), ${localWorkspaceFolder}
// and ${containerWorkspaceFolder}. Docker-in-docker style Features name
// their volumes after ${devcontainerId}.
func substituteEntries(entries []devcontainer.Metadata, ws, workdir string) []devcontainer.Metadata {
	sum := sha256.Sum256([]byte("berth devcontainerId\x00" + ws))
	r := strings.NewReplacer(
		"${devcontainerId}", hex.EncodeToString(sum[:])[:16],
		"${localWorkspaceFolder}", ws,
		"${containerWorkspaceFolder}", workdir,
	)
	out := make([]devcontainer.Metadata, len(entries))
	for i, e := range entries {
		if len(e.Mounts) > 0 {
			ms := make([]devcontainer.Mount, len(e.Mounts))
			for j, m := range e.Mounts {
				m.Source, m.Target = r.Replace(m.Source), r.Replace(m.Target)
				ms[j] = m
			}
			e.Mounts = ms
		}
		if len(e.ContainerEnv) > 0 {
			env := make(map[string]string, len(e.ContainerEnv))
			for k, v := range e.ContainerEnv {
				env[k] = r.Replace(v)
			}
			e.ContainerEnv = env
		}
		out[i] = e
	}
	return out
}

// labelEntries parses image metadata; what can't be read is logged and
// skipped: an image's label must not make its workspace unusable.
func labelEntries(label, what string, log *slog.Logger) []devcontainer.Metadata {
	if strings.TrimSpace(label) == "" {
		return nil
	}
	entries, err := devcontainer.ParseMetadata([]byte(label), what)
	if err != nil {
		log.Warn("ignoring unreadable image metadata", "err", err)
		return nil
	}
	return entries
}

// instanceEnv is the instance's environment: the metadata entries'
// containerEnv, then the configuration's own. An image built with the
// entries has their values already, expanded by its ENV, so a value that
// refers to another variable (PATH=/x:${PATH}) is left to the image;
// without a build (install), such values are expanded here.
func instanceEnv(cfg *devcontainer.Config, entries []devcontainer.Metadata, built bool) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		env := e.ContainerEnv
		if !built {
			env = features.ExpandEnv(env)
		}
		for k, v := range env {
			if built && strings.Contains(v, "${") {
				continue
			}
			out[k] = v
		}
	}
	for k, v := range cfg.ContainerEnv {
		out[k] = v
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// installFeatures runs the Features' install scripts in a new instance
// that could not be built with them, as root, in order, with the same
// options and environment as a build. A failure names the Feature and
// ends with its output.
func (w *Workspace) installFeatures(ctx context.Context, r *Ready, fi *featureInstall) error {
	tarball, steps, err := fi.set.Tar(fi.users)
	if err != nil {
		return err
	}
	if err := w.m.backend.CopyTo(ctx, r.ID, "/", tarball); err != nil {
		return w.m.engineErr(ctx, "copy Features", err)
	}
	for _, st := range steps {
		backends.Report(ctx, "installing Feature %s", st.Feature.Ref)
		var out tailBuffer
		proc, err := w.m.backend.Exec(ctx, r.ID, backends.ExecSpec{
			Argv: []string{"/bin/sh", st.Script}, User: "root", Env: st.Env, Stdout: &out, Stderr: &out,
		})
		if err != nil {
			return fmt.Errorf("the Feature %s: %w", st.Feature.Ref, err)
		}
		status, err := proc.Wait(context.WithoutCancel(ctx))
		if err == nil && status.Code != 0 {
			err = fmt.Errorf("%w: install.sh exited with code %d", backends.ErrBuild, status.Code)
		}
		if err != nil {
			return featureFailed(err, out.String())
		}
	}
	proc, err := w.m.backend.Exec(ctx, r.ID, backends.ExecSpec{Argv: []string{"rm", "-rf", features.InstallDir}, User: "root", Stdout: io.Discard, Stderr: io.Discard})
	if err == nil {
		_, _ = proc.Wait(ctx)
	}
	return nil
}

// removeHalfBuilt removes a new instance whose Features failed to install,
// so that nothing half-built serves the workspace.
func (w *Workspace) removeHalfBuilt(ctx context.Context, r *Ready, cause error) error {
	w.forget()
	w.dropRunner("its Features failed to install")
	w.setOwnStop()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idleTimeout)
	defer cancel()
	if err := w.m.backend.Remove(rctx, r.ID); err != nil && !errors.Is(err, backends.ErrNotFound) {
		w.log.Warn("could not remove the half-built instance", "instance", r.Name, "err", err)
	} else {
		w.m.forgetHost(rctx, r.Instance.Instance)
	}
	return cause
}
