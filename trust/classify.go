// Package trust decides when a workspace's own configuration may act on
// the host, and remembers the user's decisions.
//
// A cloned repository's devcontainer.json can run commands (lifecycle
// hooks) and reach host paths (bind mounts, a build context outside the
// workspace). Classify lists what a resolved configuration does of that
// kind; berth asks the user before the first container of such a
// configuration, and a Store keeps the answer per workspace and
// configuration hash, so that a changed configuration asks again.
package trust

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berthdev/berth/devcontainer"
)

// Kind sorts findings.
type Kind string

// Kinds of findings.
const (
	KindCommand Kind = "command" // a lifecycle command runs
	KindMount   Kind = "mount"   // a host path outside the workspace is bind-mounted
	KindBuild   Kind = "build"   // an image build reads host files outside the workspace
	KindFeature Kind = "feature" // a Feature's install script runs as root
	// KindCompose is a Docker Compose file: its services can bind any host
	// path, run privileged and build from anywhere, so it always needs
	// trust, wherever it lies.
	KindCompose Kind = "compose"
	// KindPrivilege: the container gets powers over the host: privileged,
	// added capabilities, a relaxed security profile, the host's network,
	// ports published on the host's addresses.
	KindPrivilege Kind = "privilege"
	KindDevice    Kind = "device" // a host device or GPU is passed in
	KindFile      Kind = "file"   // a host file outside the workspace is read into the container (--env-file)
)

// Finding is one thing a configuration does that needs the user's trust.
type Finding struct {
	Kind  Kind
	Field string // where in the configuration: "postCreateCommand", "mounts[1]", "build.context"
	// Path is the host path of a mount or build finding, symlinks
	// resolved as far as it exists; "" for commands.
	Path string
	// Detail is for people: the command, or what the path becomes.
	Detail string
}

// String describes the finding in a sentence's fragment.
func (f Finding) String() string {
	switch f.Kind {
	case KindCommand:
		return fmt.Sprintf("runs %s (%s)", f.Field, f.Detail)
	case KindMount:
		return fmt.Sprintf("bind-mounts the host path %s (%s)", f.Path, f.Field)
	case KindFeature:
		return fmt.Sprintf("installs the Feature %s as root (%s)", f.Detail, f.Field)
	case KindCompose:
		return fmt.Sprintf("runs the Docker Compose file %s (%s)", f.Path, f.Field)
	case KindPrivilege:
		return fmt.Sprintf("%s (%s)", f.Detail, f.Field)
	case KindDevice:
		return fmt.Sprintf("passes in the host device %s (%s)", f.Detail, f.Field)
	case KindFile:
		return fmt.Sprintf("reads the host file %s into the container (%s)", f.Path, f.Field)
	}
	return fmt.Sprintf("builds from the host path %s (%s)", f.Path, f.Field)
}

// Summary joins findings for a message.
func Summary(fs []Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// detailMax bounds a command's text in a finding.
const detailMax = 80

// Classify lists what cfg, the resolved configuration of the workspace ws
// (a resolved host path), does that needs trust: initializeCommand (on
// the host), lifecycle commands and entrypoints, bind mounts of host paths
// outside the workspace (workspaceMount and runArgs' included), host files
// read into the container (--env-file), image builds whose Dockerfile or
// context lies outside it, and powers over the host (privileged, capAdd,
// securityOpt, the host's network, appPort, devices and GPUs). Volumes and
// tmpfs mounts reach no host path. None means the configuration needs no
// trust. resolve resolves a host path's symlinks as far as it exists.
//
// Features run their install scripts as root, and image-metadata entries
// (Config.Metadata, after devcontainer.Merge) bring lifecycle commands of
// their own, and every Docker Compose file can do all of the above: all
// are listed.
//
// Keys berth ignores (Config.Unknown) do nothing, so they need no trust;
// a key berth learns to apply must be classified here first
// (TestClassifyCoversConfig).
func Classify(ws string, cfg *devcontainer.Config, resolve func(string) string) []Finding {
	if cfg == nil {
		return nil
	}
	var out []Finding
	if h := cfg.InitializeCommand; h != nil {
		out = append(out, Finding{Kind: KindCommand, Field: "initializeCommand", Detail: "on the host: " + hookText(h)})
	}
	for i, e := range cfg.Entrypoints {
		out = append(out, Finding{Kind: KindCommand, Field: fmt.Sprintf("entrypoint[%d]", i), Detail: hookText(&devcontainer.Hook{Shell: e})})
	}
	for _, f := range cfg.Features {
		out = append(out, Finding{Kind: KindFeature, Field: fmt.Sprintf("features[%q]", f.ID), Detail: f.ID})
	}
	for i, m := range cfg.Metadata {
		who := fmt.Sprintf("image metadata[%d]", i)
		if m.ID != "" {
			who = fmt.Sprintf("image metadata[%d] (%s)", i, m.ID)
		}
		for _, stage := range []string{"onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand", "postAttachCommand"} {
			if h := m.Hook(stage); h != nil {
				out = append(out, Finding{Kind: KindCommand, Field: who + " " + stage, Detail: hookText(h)})
			}
		}
	}
	for _, h := range []struct {
		field string
		hook  *devcontainer.Hook
	}{
		{"onCreateCommand", cfg.OnCreate},
		{"updateContentCommand", cfg.UpdateContent},
		{"postCreateCommand", cfg.PostCreate},
		{"postStartCommand", cfg.PostStart},
		{"postAttachCommand", cfg.PostAttach},
	} {
		if h.hook != nil {
			out = append(out, Finding{Kind: KindCommand, Field: h.field, Detail: hookText(h.hook)})
		}
	}
	outside := func(p string) (string, bool) {
		real := resolve(filepath.Clean(p))
		return real, !Within(ws, real)
	}
	if wm := cfg.WorkspaceMount; wm != nil && isBind(wm.Type) && wm.Source != "" {
		if real, ok := outside(wm.Source); ok {
			out = append(out, Finding{Kind: KindMount, Field: "workspaceMount", Path: real, Detail: "at " + wm.Target})
		}
	}
	for i, m := range cfg.Mounts {
		if !isBind(m.Type) || m.Source == "" {
			continue
		}
		if real, ok := outside(m.Source); ok {
			out = append(out, Finding{Kind: KindMount, Field: fmt.Sprintf("mounts[%d]", i), Path: real, Detail: "at " + m.Target})
		}
	}
	for i, m := range cfg.Run.Mounts {
		if !isBind(m.Type) || m.Source == "" {
			continue
		}
		if real, ok := outside(m.Source); ok {
			out = append(out, Finding{Kind: KindMount, Field: fmt.Sprintf("runArgs mount %d", i), Path: real, Detail: "at " + m.Target})
		}
	}
	for _, f := range cfg.Run.EnvFiles {
		if real, ok := outside(f); ok {
			out = append(out, Finding{Kind: KindFile, Field: "runArgs --env-file", Path: real})
		}
	}
	out = append(out, privileges(cfg)...)
	if b := cfg.Build; b != nil {
		for _, in := range []struct{ field, path, detail string }{
			{"build.context", b.Context, "sent to the engine as the build context"},
			{"build.dockerfile", b.Dockerfile, "the Dockerfile"},
		} {
			if in.path == "" {
				continue
			}
			if real, ok := outside(in.path); ok {
				out = append(out, Finding{Kind: KindBuild, Field: in.field, Path: real, Detail: in.detail})
			}
		}
	}
	if cc := cfg.Compose; cc != nil {
		for i, f := range cc.Files {
			out = append(out, Finding{Kind: KindCompose, Field: fmt.Sprintf("dockerComposeFile[%d]", i), Path: resolve(filepath.Clean(f)),
				Detail: "its services can bind host paths and run with any privilege"})
		}
	}
	return out
}

func isBind(typ string) bool { return typ == "" || typ == "bind" }

// Within reports whether the host path p is dir or below it. Both are
// clean absolute paths.
func Within(dir, p string) bool {
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}

// hookText is a lifecycle command as one short line.
func hookText(h *devcontainer.Hook) string {
	var s string
	switch {
	case h.Shell != "":
		s = h.Shell
	case len(h.Argv) > 0:
		s = strings.Join(h.Argv, " ")
	default:
		names := make([]string, 0, len(h.Parallel))
		for name, sub := range h.Parallel {
			names = append(names, name+": "+hookText(sub))
		}
		slices.Sort(names)
		s = strings.Join(names, ", ")
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > detailMax {
		s = string(r[:detailMax-1]) + "…"
	}
	return s
}

// privileges lists the powers over the host a configuration gives its
// container, and the host devices it passes in.
func privileges(cfg *devcontainer.Config) []Finding {
	var out []Finding
	if cfg.Privileged {
		out = append(out, Finding{Kind: KindPrivilege, Field: "privileged", Detail: "runs the container privileged, with every device and capability of the host"})
	}
	for _, c := range cfg.CapAdd {
		out = append(out, Finding{Kind: KindPrivilege, Field: "capAdd", Detail: "adds the capability " + c})
	}
	for _, o := range cfg.SecurityOpt {
		out = append(out, Finding{Kind: KindPrivilege, Field: "securityOpt", Detail: "sets the security option " + o})
	}
	if n := cfg.Run.Network; n == "host" || strings.HasPrefix(n, "container:") {
		out = append(out, Finding{Kind: KindPrivilege, Field: "runArgs --network", Detail: "joins the network " + n})
	}
	for _, p := range cfg.AppPort {
		out = append(out, Finding{Kind: KindPrivilege, Field: "appPort", Detail: "publishes " + p + " on the host's network"})
	}
	for _, d := range cfg.Run.Devices {
		out = append(out, Finding{Kind: KindDevice, Field: "runArgs --device", Detail: d})
	}
	if g := cfg.Run.GPUs; g != "" {
		out = append(out, Finding{Kind: KindDevice, Field: "runArgs --gpus", Detail: "GPUs " + g})
	}
	return out
}
