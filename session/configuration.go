package session

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/features"
)

// Configuration is a workspace's configuration as berth/readConfiguration
// and `berth config` report it.
type Configuration struct {
	// Configuration is the config file with its variables substituted, as
	// the devcontainer CLI's read-configuration gives it, configFilePath
	// included. A Containerfile or an image stands in as the build or
	// image key it amounts to.
	Configuration map[string]any `json:"configuration"`
	// MergedConfiguration is Configuration after Features and the base
	// image's metadata, offline (mergeConfiguration).
	MergedConfiguration map[string]any `json:"mergedConfiguration"`
	// Unsupported names what berth leaves out or could not resolve.
	Unsupported []string `json:"unsupported"`
	// Source and File say which configuration was read.
	Source string `json:"source"`
	File   string `json:"file,omitempty"`
}

// mergeConfiguration computes the merged configuration from the parsed
// one and its document, offline: Features come from the lock file and
// the cache only, and the engine is not asked for the base image's label.
// It returns the merged document and what it could not resolve (a Feature
// of a registry never reached, say).
func mergeConfiguration(cfg *devcontainer.Config, doc map[string]any) (map[string]any, []string) {
	merged, unresolved, err := features.Merged(context.Background(), cfg, nil, features.Options{Offline: true})
	if err != nil {
		return doc, []string{err.Error()}
	}
	var missing []string
	for _, u := range unresolved {
		missing = append(missing, fmt.Sprintf("features[%q]: not resolved offline: %v", u.Ref, u.Err))
	}
	out := maps.Clone(doc)
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	set("containerEnv", merged.ContainerEnv, len(merged.ContainerEnv) > 0)
	set("remoteEnv", merged.RemoteEnv, len(merged.RemoteEnv) > 0)
	set("capAdd", merged.CapAdd, len(merged.CapAdd) > 0)
	set("securityOpt", merged.SecurityOpt, len(merged.SecurityOpt) > 0)
	set("privileged", true, merged.Privileged)
	set("init", true, merged.Init)
	set("entrypoints", merged.Entrypoints, len(merged.Entrypoints) > 0)
	set("remoteUser", merged.RemoteUser, merged.RemoteUser != "")
	set("containerUser", merged.ContainerUser, merged.ContainerUser != "")
	// As the devcontainer CLI merges them: each stage's commands in the
	// order they run, the Features' first.
	for _, stage := range devcontainer.HookNames() {
		var cmds []any
		for _, nh := range stageHooks(merged, stage) {
			cmds = append(cmds, hookDoc(nh.hook))
		}
		if len(cmds) > 0 {
			delete(out, stage)
			out[strings.TrimSuffix(stage, "Command")+"Commands"] = cmds
		}
	}
	return out, missing
}

// hookDoc is a lifecycle command as devcontainer.json spells it.
func hookDoc(h *devcontainer.Hook) any {
	switch {
	case h.Argv != nil:
		return h.Argv
	case h.Parallel != nil:
		m := map[string]any{}
		for k, e := range h.Parallel {
			m[k] = hookDoc(e)
		}
		return m
	}
	return h.Shell
}

// ReadConfiguration reads the configuration of the workspace ws without
// touching the engine or the network. explicit and image are as for
// Ensure. unsupported, when not nil, is the backend's Checker: what it
// would leave out of the instance.
func ReadConfiguration(ws, explicit, image string, unsupported func(backends.Spec) []string) (*Configuration, error) {
	cfg, err := devcontainer.Discover(ws, explicit, image, os.LookupEnv)
	if err != nil {
		return nil, err
	}
	out := &Configuration{Source: string(cfg.Source), File: cfg.File, Unsupported: []string{}}
	switch {
	case cfg.Source == devcontainer.SourceImage:
		out.Configuration = map[string]any{"image": cfg.Image}
	case cfg.Source == devcontainer.SourceContainerfile || (cfg.Build != nil && cfg.File == cfg.Build.Dockerfile):
		out.Configuration = map[string]any{"build": map[string]any{"dockerfile": cfg.Build.Dockerfile, "context": cfg.Build.Context}}
	default:
		data, err := os.ReadFile(cfg.File)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", devcontainer.ErrBadConfig, err)
		}
		if out.Configuration, err = devcontainer.Document(data, cfg.File, ws, os.LookupEnv); err != nil {
			return nil, err
		}
		out.Configuration["configFilePath"] = map[string]any{"$mid": 1, "fsPath": cfg.File, "path": cfg.File, "scheme": "file"}
	}
	out.Unsupported = append(out.Unsupported, cfg.Unknown...)
	for _, k := range cfg.Berth.Unknown {
		out.Unsupported = append(out.Unsupported, "customizations.berth."+k)
	}
	if unsupported != nil {
		spec := backends.Spec{}
		for _, mt := range append(cfg.Mounts[:len(cfg.Mounts):len(cfg.Mounts)], cfg.Run.Mounts...) {
			spec.Mounts = append(spec.Mounts, backends.Mount{Host: mt.Source, Container: mt.Target, Type: mt.Type})
		}
		if err := engineSpec(&spec, cfg); err != nil {
			out.Unsupported = append(out.Unsupported, err.Error())
		} else {
			out.Unsupported = append(out.Unsupported, unsupported(spec)...)
		}
	}
	merged, unresolved := mergeConfiguration(cfg, out.Configuration)
	out.MergedConfiguration = merged
	out.Unsupported = append(out.Unsupported, unresolved...)
	return out, nil
}
