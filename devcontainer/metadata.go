package devcontainer

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// LabelMetadata is the image label that carries image metadata: a JSON
// array of Metadata entries (or one object), written by the devcontainer
// CLI and by berth for images built with Features.
const LabelMetadata = "devcontainer.metadata"

// Metadata is one image-metadata entry: the devcontainer.json properties
// that an image (its devcontainer.metadata label) or a Feature
// (devcontainer-feature.json) brings along. Merge folds entries into a
// Config as the spec says.
type Metadata struct {
	// ID names the Feature the entry came from; "" for other entries.
	ID string

	Init, Privileged    *bool
	CapAdd, SecurityOpt []string
	Entrypoint          string
	Mounts              []Mount
	ContainerEnv        map[string]string
	RemoteEnv           map[string]string
	RemoteUser          string
	ContainerUser       string
	UserEnvProbe        string
	UpdateRemoteUserUID *bool
	OverrideCommand     *bool
	ShutdownAction      string
	WaitFor             string
	ForwardPorts        []Port
	PortsAttributes     map[string]PortAttributes

	OnCreate, UpdateContent, PostCreate, PostStart, PostAttach *Hook
}

// Hook returns the entry's lifecycle command for a stage, named as in
// devcontainer.json ("postCreateCommand"), or nil.
func (m Metadata) Hook(stage string) *Hook {
	switch stage {
	case "onCreateCommand":
		return m.OnCreate
	case "updateContentCommand":
		return m.UpdateContent
	case "postCreateCommand":
		return m.PostCreate
	case "postStartCommand":
		return m.PostStart
	case "postAttachCommand":
		return m.PostAttach
	}
	return nil
}

// ParseMetadata reads image metadata: a JSON array of entries or a single
// object, as a devcontainer.metadata label or a devcontainer-feature.json
// holds it. name says where it came from, for errors (which wrap
// ErrBadConfig). Keys that are not image-metadata properties are skipped.
func ParseMetadata(data []byte, name string) ([]Metadata, error) {
	src := []byte(strings.TrimPrefix(string(data), string(utf8BOM)))
	root, err := parseJSONC(src, name)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, file: name, c: &Config{}}
	var objs []*node
	switch root.kind {
	case '[':
		objs = root.elems
	case '{':
		objs = []*node{root}
	default:
		return nil, p.wrongType(root, "", "an array of objects")
	}
	out := make([]Metadata, 0, len(objs))
	for i, o := range objs {
		field := ""
		if root.kind == '[' {
			field = fmt.Sprintf("[%d].", i)
		}
		if o.kind != '{' {
			return nil, p.wrongType(o, strings.TrimSuffix(field, "."), "an object")
		}
		m, err := p.metadata(o, field)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (p *parser) metadata(n *node, prefix string) (Metadata, error) {
	var md Metadata
	boolp := func(v *node, f string) (*bool, error) {
		switch v.kind {
		case 'n':
			return nil, nil
		case 't', 'f':
			b := v.kind == 't'
			return &b, nil
		}
		return nil, p.wrongType(v, f, "a boolean")
	}
	for _, m := range unique(n) {
		v, f := m.val, prefix+m.key
		var err error
		switch m.key {
		case "id":
			md.ID, err = p.str(v, f)
		case "init":
			md.Init, err = boolp(v, f)
		case "privileged":
			md.Privileged, err = boolp(v, f)
		case "capAdd":
			md.CapAdd, err = p.strList(v, f)
		case "securityOpt":
			md.SecurityOpt, err = p.strList(v, f)
		case "entrypoint":
			md.Entrypoint, err = p.str(v, f)
		case "mounts":
			if !v.isNull() && v.kind == '[' {
				for i, e := range v.elems {
					var mt Mount
					if mt, err = p.mount(e, fmt.Sprintf("%s[%d]", f, i)); err != nil {
						break
					}
					md.Mounts = append(md.Mounts, mt)
				}
			} else if !v.isNull() {
				err = p.wrongType(v, f, "an array of mounts")
			}
		case "containerEnv":
			md.ContainerEnv, err = p.envMap(v, f)
		case "remoteEnv":
			md.RemoteEnv, err = p.envMap(v, f)
		case "remoteUser":
			md.RemoteUser, err = p.str(v, f)
		case "containerUser":
			md.ContainerUser, err = p.str(v, f)
		case "userEnvProbe":
			md.UserEnvProbe, err = p.str(v, f)
		case "updateRemoteUserUID":
			md.UpdateRemoteUserUID, err = boolp(v, f)
		case "overrideCommand":
			md.OverrideCommand, err = boolp(v, f)
		case "shutdownAction":
			md.ShutdownAction, err = p.str(v, f)
		case "waitFor":
			md.WaitFor, err = p.str(v, f)
		case "forwardPorts":
			md.ForwardPorts, err = p.ports(v)
		case "portsAttributes":
			md.PortsAttributes, err = p.portsAttributes(v, f)
		case "onCreateCommand":
			md.OnCreate, err = p.hook(v, f, true)
		case "updateContentCommand":
			md.UpdateContent, err = p.hook(v, f, true)
		case "postCreateCommand":
			md.PostCreate, err = p.hook(v, f, true)
		case "postStartCommand":
			md.PostStart, err = p.hook(v, f, true)
		case "postAttachCommand":
			md.PostAttach, err = p.hook(v, f, true)
		}
		if err != nil {
			return md, err
		}
	}
	return md, nil
}

// MarshalJSON writes the entry in the spec's format, as a
// devcontainer.metadata label holds it.
func (m Metadata) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	set := func(k string, v any, ok bool) {
		if ok {
			out[k] = v
		}
	}
	set("id", m.ID, m.ID != "")
	set("init", m.Init, m.Init != nil)
	set("privileged", m.Privileged, m.Privileged != nil)
	set("capAdd", m.CapAdd, len(m.CapAdd) > 0)
	set("securityOpt", m.SecurityOpt, len(m.SecurityOpt) > 0)
	set("entrypoint", m.Entrypoint, m.Entrypoint != "")
	if len(m.Mounts) > 0 {
		ms := make([]string, len(m.Mounts))
		for i, mt := range m.Mounts {
			ms[i] = mountString(mt)
		}
		out["mounts"] = ms
	}
	set("containerEnv", m.ContainerEnv, len(m.ContainerEnv) > 0)
	set("remoteEnv", m.RemoteEnv, len(m.RemoteEnv) > 0)
	set("remoteUser", m.RemoteUser, m.RemoteUser != "")
	set("containerUser", m.ContainerUser, m.ContainerUser != "")
	set("userEnvProbe", m.UserEnvProbe, m.UserEnvProbe != "")
	set("updateRemoteUserUID", m.UpdateRemoteUserUID, m.UpdateRemoteUserUID != nil)
	set("overrideCommand", m.OverrideCommand, m.OverrideCommand != nil)
	set("shutdownAction", m.ShutdownAction, m.ShutdownAction != "")
	set("waitFor", m.WaitFor, m.WaitFor != "")
	if len(m.ForwardPorts) > 0 {
		ps := make([]any, len(m.ForwardPorts))
		for i, p := range m.ForwardPorts {
			if p.Host == "" {
				ps[i] = p.Port
			} else {
				ps[i] = fmt.Sprintf("%s:%d", p.Host, p.Port)
			}
		}
		out["forwardPorts"] = ps
	}
	set("portsAttributes", m.PortsAttributes, len(m.PortsAttributes) > 0)
	for _, h := range []struct {
		k string
		h *Hook
	}{{"onCreateCommand", m.OnCreate}, {"updateContentCommand", m.UpdateContent}, {"postCreateCommand", m.PostCreate}, {"postStartCommand", m.PostStart}, {"postAttachCommand", m.PostAttach}} {
		if h.h != nil {
			out[h.k] = hookJSON(h.h)
		}
	}
	return json.Marshal(out)
}

func mountString(m Mount) string {
	s := "type=" + m.Type
	if m.Source != "" {
		s += ",source=" + m.Source
	}
	s += ",target=" + m.Target
	if m.ReadOnly {
		s += ",readonly"
	}
	return s
}

// hookJSON is a Hook in devcontainer.json's form.
func hookJSON(h *Hook) any {
	switch {
	case h.Shell != "":
		return h.Shell
	case len(h.Argv) > 0:
		return h.Argv
	}
	out := make(map[string]any, len(h.Parallel))
	for k, v := range h.Parallel {
		out[k] = hookJSON(v)
	}
	return out
}

// ConfigMetadata is the entry that c's own properties make, the last one
// of the label of an image built for c.
func ConfigMetadata(c *Config) Metadata {
	m := Metadata{
		CapAdd: c.CapAdd, SecurityOpt: c.SecurityOpt, Mounts: c.Mounts,
		ContainerEnv: c.ContainerEnv, RemoteEnv: c.RemoteEnv, RemoteUser: c.RemoteUser, ContainerUser: c.ContainerUser,
		UserEnvProbe: c.UserEnvProbe, UpdateRemoteUserUID: c.UpdateRemoteUserUID, OverrideCommand: c.OverrideCommand,
		WaitFor: c.WaitFor, ForwardPorts: c.ForwardPorts, PortsAttributes: c.PortsAttributes,
		OnCreate: c.OnCreate, UpdateContent: c.UpdateContent, PostCreate: c.PostCreate, PostStart: c.PostStart, PostAttach: c.PostAttach,
	}
	if c.Privileged {
		m.Privileged = &c.Privileged
	}
	if c.Init {
		m.Init = &c.Init
	}
	return m
}

// Merge returns c with the image-metadata entries folded in, as the spec
// says: containerEnv and remoteEnv merge with c winning; capAdd and
// securityOpt are unions; privileged and init are true if any says so;
// mounts are a union by target with c winning; forwardPorts a union;
// portsAttributes merge with c winning; the single-valued properties are
// c's when set, else the last entry's. Lifecycle commands accumulate: c
// keeps its own, and Metadata holds the entries, whose commands run
// first. c is not modified; Hash stays c's.
func Merge(c *Config, entries []Metadata) *Config {
	if c == nil {
		return nil
	}
	out := *c
	if len(entries) == 0 {
		return &out
	}
	out.Metadata = append(slices.Clone(c.Metadata), entries...)

	env := func(own map[string]string, pick func(Metadata) map[string]string) map[string]string {
		var m map[string]string
		for _, e := range entries {
			if v := pick(e); len(v) > 0 {
				if m == nil {
					m = map[string]string{}
				}
				maps.Copy(m, v)
			}
		}
		if m == nil {
			return own
		}
		maps.Copy(m, own)
		return m
	}
	out.ContainerEnv = env(c.ContainerEnv, func(m Metadata) map[string]string { return m.ContainerEnv })
	out.RemoteEnv = env(c.RemoteEnv, func(m Metadata) map[string]string { return m.RemoteEnv })

	union := func(own []string, pick func(Metadata) []string) []string {
		var all []string
		for _, e := range entries {
			all = append(all, pick(e)...)
		}
		all = append(all, own...)
		var u []string
		for _, s := range all {
			if !slices.Contains(u, s) {
				u = append(u, s)
			}
		}
		return u
	}
	out.CapAdd = union(c.CapAdd, func(m Metadata) []string { return m.CapAdd })
	out.SecurityOpt = union(c.SecurityOpt, func(m Metadata) []string { return m.SecurityOpt })

	var mounts []Mount
	byTarget := map[string]int{}
	addMount := func(m Mount) {
		if i, ok := byTarget[m.Target]; ok {
			mounts[i] = m
			return
		}
		byTarget[m.Target] = len(mounts)
		mounts = append(mounts, m)
	}
	for _, e := range entries {
		for _, m := range e.Mounts {
			addMount(m)
		}
		if e.Privileged != nil && *e.Privileged {
			out.Privileged = true
		}
		if e.Init != nil && *e.Init {
			out.Init = true
		}
		if e.Entrypoint != "" {
			out.Entrypoints = append(out.Entrypoints, e.Entrypoint)
		}
	}
	for _, m := range c.Mounts {
		addMount(m)
	}
	out.Mounts = mounts

	last := func(own string, pick func(Metadata) string) string {
		if own != "" {
			return own
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if v := pick(entries[i]); v != "" {
				return v
			}
		}
		return ""
	}
	out.RemoteUser = last(c.RemoteUser, func(m Metadata) string { return m.RemoteUser })
	out.ContainerUser = last(c.ContainerUser, func(m Metadata) string { return m.ContainerUser })
	out.UserEnvProbe = last(c.UserEnvProbe, func(m Metadata) string { return m.UserEnvProbe })
	out.WaitFor = last(c.WaitFor, func(m Metadata) string { return m.WaitFor })
	if c.ShutdownAction == defaultShutdownAction {
		// Parse fills in the default, so an entry's "none" counts unless
		// c says otherwise.
		if v := last("", func(m Metadata) string { return m.ShutdownAction }); v == "none" {
			out.ShutdownAction = v
		}
	}
	lastBool := func(own *bool, pick func(Metadata) *bool) *bool {
		if own != nil {
			return own
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if v := pick(entries[i]); v != nil {
				return v
			}
		}
		return nil
	}
	out.UpdateRemoteUserUID = lastBool(c.UpdateRemoteUserUID, func(m Metadata) *bool { return m.UpdateRemoteUserUID })
	out.OverrideCommand = lastBool(c.OverrideCommand, func(m Metadata) *bool { return m.OverrideCommand })

	var ports []Port
	for _, e := range entries {
		for _, p := range e.ForwardPorts {
			if !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	for _, p := range c.ForwardPorts {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	out.ForwardPorts = ports

	var pa map[string]PortAttributes
	for _, e := range entries {
		if len(e.PortsAttributes) > 0 && pa == nil {
			pa = map[string]PortAttributes{}
		}
		maps.Copy(pa, e.PortsAttributes)
	}
	if pa != nil {
		maps.Copy(pa, c.PortsAttributes)
		out.PortsAttributes = pa
	}
	return &out
}
