package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/build"
	"github.com/moby/go-archive"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/berthdev/berth/backends"
)

var _ backends.Builder = (*Backend)(nil)

// ImageExists implements backends.Builder.
func (b *Backend) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := b.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	}
	return false, b.mapErr("inspect image "+ref, err, nil)
}

var _ backends.ImageInspector = (*Backend)(nil)

// InspectImage implements backends.ImageInspector, pulling the image when
// it is not here.
func (b *Backend) InspectImage(ctx context.Context, ref string) (backends.ImageInfo, error) {
	if _, err := b.ensureImage(ctx, ref); err != nil {
		return backends.ImageInfo{}, err
	}
	img, err := b.cli.ImageInspect(ctx, ref)
	if err != nil {
		return backends.ImageInfo{}, b.mapErr("inspect image "+ref, err, backends.ErrImageNotFound)
	}
	info := backends.ImageInfo{ID: img.ID}
	if img.Config != nil {
		info.User, info.Labels = img.Config.User, img.Config.Labels
		for p := range img.Config.ExposedPorts {
			port, proto, _ := strings.Cut(string(p), "/")
			if n, err := strconv.Atoi(port); err == nil && (proto == "" || proto == "tcp") {
				info.Ports = append(info.Ports, n)
			}
		}
		slices.Sort(info.Ports)
	}
	return info, nil
}

// Build implements backends.Builder with the engine's build API. The
// context goes up as a tar that honours .dockerignore, as the docker CLI
// sends it.
func (b *Backend) Build(ctx context.Context, spec backends.BuildSpec, log io.Writer) error {
	excludes, err := dockerignore(spec.Context)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(spec.Context, spec.Dockerfile)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("docker: build: %s is not inside the context %s: %w", spec.Dockerfile, spec.Context, backends.ErrBuild)
	}
	if excludes != nil {
		// The Dockerfile always goes, even if ignored, as with the CLI.
		excludes = append(excludes, "!"+filepath.ToSlash(rel))
	}
	tarball, err := archive.TarWithOptions(spec.Context, &archive.TarOptions{ExcludePatterns: excludes})
	if err != nil {
		return fmt.Errorf("docker: build context %s: %w", spec.Context, err)
	}
	defer tarball.Close()
	args := map[string]*string{}
	for k, v := range spec.Args {
		args[k] = &v
	}
	backends.Report(ctx, "building image %s", spec.Tag)
	resp, err := b.cli.ImageBuild(ctx, tarball, build.ImageBuildOptions{
		Tags: []string{spec.Tag}, Dockerfile: filepath.ToSlash(rel), BuildArgs: args, Target: spec.Target,
		Labels: spec.Labels, Remove: true, ForceRemove: true,
	})
	if err != nil {
		return b.mapErr("build "+spec.Tag, err, nil)
	}
	defer resp.Body.Close()
	return followBuild(ctx, resp.Body, log)
}

// followBuild copies the engine's JSON build stream to log as text and
// returns the error it ends with, naming the last step begun.
func followBuild(ctx context.Context, r io.Reader, log io.Writer) error {
	dec := json.NewDecoder(r)
	step := ""
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("docker: build log: %w", err)
		}
		if msg.Stream != "" {
			_, _ = io.WriteString(log, msg.Stream)
			if line := strings.TrimSpace(msg.Stream); strings.HasPrefix(line, "Step ") {
				step = line
				backends.Report(ctx, "build: %s", line)
			}
		}
		if msg.Status != "" {
			_, _ = io.WriteString(log, msg.Status+"\n")
		}
		if msg.Error != "" {
			_, _ = io.WriteString(log, msg.Error+"\n")
			if step == "" {
				return fmt.Errorf("docker: %w: %s", backends.ErrBuild, msg.Error)
			}
			return fmt.Errorf("docker: %w at %q: %s", backends.ErrBuild, step, msg.Error)
		}
	}
}

// dockerignore reads the context's .dockerignore patterns.
func dockerignore(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("docker: %s: %w", filepath.Join(dir, ".dockerignore"), err)
	}
	// Never leave out what the build needs to start.
	return append(patterns, "!.dockerignore"), nil
}
