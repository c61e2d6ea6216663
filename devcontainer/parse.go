package devcontainer

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
)

var utf8BOM = []byte("\xef\xbb\xbf")

// Parse reads a devcontainer.json. file is its absolute host path, used to
// resolve build paths and to name it in errors; ws is the host workspace
// folder; env looks up ${localEnv:VAR} (nil means no variable is set).
//
// Parse leaves Source empty (Discover sets it), and its Hash covers the
// config alone: Discover adds the Dockerfile's contents. Every error wraps
// ErrBadConfig and is a *ConfigError.
func Parse(data []byte, file, ws string, env func(string) (string, bool)) (*Config, error) {
	c := &Config{File: file}
	root, p, err := load(data, c, ws, env)
	if err != nil {
		return nil, err
	}
	if err := p.top(root); err != nil {
		return nil, err
	}
	c.Hash = computeHash(c)
	return c, nil
}

// load parses a devcontainer.json into a tree with its variables
// substituted, and sets c.WorkspaceFolder, which they may use.
func load(data []byte, c *Config, ws string, env func(string) (string, bool)) (*node, *parser, error) {
	// Editors on Windows may save a BOM; columns on line 1 ignore it, as
	// editors do.
	file := c.File
	src := bytes.TrimPrefix(data, utf8BOM)
	root, err := parseJSONC(src, file)
	if err != nil {
		return nil, nil, err
	}
	p := &parser{src: src, file: file, dir: filepath.Dir(file), ws: ws, env: env, c: c}
	if root.kind != '{' {
		return nil, nil, p.wrongType(root, "", "an object at the top level")
	}

	// workspaceFolder first: every other value may use
	// ${containerWorkspaceFolder}, which is its resolved value.
	s := &substituter{ws: ws, env: env}
	c.WorkspaceFolder = defaultWorkspaceFolder(ws)
	if n := root.get("workspaceFolder"); !n.isNull() {
		if n.kind != '"' {
			return nil, nil, p.wrongType(n, "workspaceFolder", "a string")
		}
		if wf := s.replace(n.str); wf != "" {
			c.WorkspaceFolder = wf
		}
	}
	s.containerWS = c.WorkspaceFolder
	s.walk(root)
	return root, p, nil
}

// Document returns a devcontainer.json as plain JSON values (comments
// gone, the last of repeated keys kept) with its variables substituted as
// Parse substitutes them: the "configuration" of the devcontainer CLI's
// read-configuration. Errors are as Parse's.
func Document(data []byte, file, ws string, env func(string) (string, bool)) (map[string]any, error) {
	root, p, err := load(data, &Config{File: file}, ws, env)
	if err != nil {
		return nil, err
	}
	v, err := p.toAny(root, "")
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// parser turns the substituted tree into a Config.
type parser struct {
	src  []byte
	file string
	dir  string // folder of the config file, for relative build paths
	ws   string // host workspace folder, for runArgs' relative paths
	env  func(string) (string, bool)
	c    *Config

	// Collected while reading the top level, settled by imageOrBuild.
	image, legacyDockerfile     string
	build, legacyContext        *node
	dockerfile, context, target string
	args                        map[string]string
	composeNode                 *node // dockerComposeFile
	composeFiles, runServices   []string
	service                     string
	runArgsNode                 *node
}

func (p *parser) errorf(n *node, field, format string, args ...any) error {
	e := &ConfigError{File: p.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = position(p.src, n.off)
	}
	return e
}

func (p *parser) wrongType(n *node, field, want string) error {
	return p.errorf(n, field, "want %s, got %s", want, kindName(n.kind))
}

func (p *parser) unknown(field string) { p.c.Unknown = append(p.c.Unknown, field) }

// unique returns n's members with only the last of each repeated key, which
// is the one that counts.
func unique(n *node) []member {
	last := make(map[string]int, len(n.members))
	for i, m := range n.members {
		last[m.key] = i
	}
	out := make([]member, 0, len(last))
	for i, m := range n.members {
		if last[m.key] == i {
			out = append(out, m)
		}
	}
	return out
}

func (p *parser) top(root *node) error {
	c := p.c
	for _, m := range unique(root) {
		v := m.val
		var err error
		switch m.key {
		case "workspaceFolder", "name", "$schema":
			// Done in Parse, or cosmetic.
		case "image":
			p.image, err = p.str(v, m.key)
		case "build":
			err = p.readBuild(v)
		case "dockerFile": // the pre-"build" spelling
			p.legacyDockerfile, err = p.str(v, m.key)
		case "context": // goes with dockerFile
			p.legacyContext = v
		case "workspaceMount":
			c.WorkspaceMount, err = p.workspaceMount(v)
		case "mounts":
			c.Mounts, err = p.mounts(v)
		case "containerEnv":
			c.ContainerEnv, err = p.envMap(v, m.key)
		case "remoteEnv":
			c.RemoteEnv, err = p.envMap(v, m.key)
		case "remoteUser":
			c.RemoteUser, err = p.str(v, m.key)
		case "containerUser":
			c.ContainerUser, err = p.str(v, m.key)
		case "forwardPorts":
			c.ForwardPorts, err = p.ports(v)
		case "onCreateCommand":
			c.OnCreate, err = p.hook(v, m.key, true)
		case "updateContentCommand":
			c.UpdateContent, err = p.hook(v, m.key, true)
		case "postCreateCommand":
			c.PostCreate, err = p.hook(v, m.key, true)
		case "postStartCommand":
			c.PostStart, err = p.hook(v, m.key, true)
		case "postAttachCommand":
			c.PostAttach, err = p.hook(v, m.key, true)
		case "shutdownAction":
			c.ShutdownAction, err = p.shutdownAction(v)
		case "customizations":
			err = p.customizations(v)
		case "features":
			c.Features, err = p.features(v)
		case "overrideFeatureInstallOrder":
			c.OverrideFeatureInstallOrder, err = p.strList(v, m.key)
		case "dockerComposeFile", "service", "runServices":
			err = p.composeKey(m)
		case "overrideCommand":
			c.OverrideCommand, err = p.boolPtr(v, m.key)
		case "initializeCommand":
			c.InitializeCommand, err = p.hook(v, m.key, true)
		case "waitFor":
			c.WaitFor, err = p.enum(v, m.key, hookNames[:5]...) // postAttach waits for an editor
		case "userEnvProbe":
			c.UserEnvProbe, err = p.enum(v, m.key, "none", "interactiveShell", "loginShell", "loginInteractiveShell")
		case "updateRemoteUserUID":
			c.UpdateRemoteUserUID, err = p.optBool(v, m.key)
		case "privileged":
			c.Privileged, err = p.boolean(v, m.key)
		case "init":
			c.Init, err = p.boolean(v, m.key)
		case "capAdd":
			c.CapAdd, err = p.strList(v, m.key)
		case "securityOpt":
			c.SecurityOpt, err = p.strList(v, m.key)
		case "appPort":
			c.AppPort, err = p.appPort(v)
		case "portsAttributes":
			c.PortsAttributes, err = p.portsAttributes(v, m.key)
		case "otherPortsAttributes":
			if !v.isNull() {
				var a PortAttributes
				a, err = p.portAttributes(v, m.key)
				c.OtherPortsAttributes = &a
			}
		case "hostRequirements":
			c.HostRequirements, err = p.hostRequirements(v)
		case "runArgs":
			p.runArgsNode = v // after the loop: it adds to containerEnv, capAdd...
		case "settings", "extensions":
			// Legacy editor-only keys (VS Code's, before customizations):
			// accepted, and nothing for berth to do.
		default:
			p.unknown(m.key)
		}
		if err != nil {
			return err
		}
	}
	if c.ShutdownAction == "" {
		c.ShutdownAction = defaultShutdownAction
	}
	if err := p.runArgs(p.runArgsNode); err != nil {
		return err
	}
	if err := p.imageOrBuild(); err != nil {
		return err
	}
	if c.Compose != nil && c.ShutdownAction != "none" {
		c.ShutdownAction = "stopCompose"
	}
	return nil
}

// readBuild reads the build object.
func (p *parser) readBuild(n *node) error {
	if n.isNull() {
		return nil
	}
	if n.kind != '{' {
		return p.wrongType(n, "build", "an object")
	}
	p.build = n
	for _, m := range unique(n) {
		field := "build." + m.key
		var err error
		switch m.key {
		case "dockerfile":
			p.dockerfile, err = p.str(m.val, field)
		case "context":
			p.context, err = p.str(m.val, field)
		case "args":
			p.args, err = p.envMap(m.val, field)
		case "target":
			p.target, err = p.str(m.val, field)
		default:
			p.unknown(field)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// imageOrBuild settles Image and Build. A Dockerfile wins over image, as in
// the devcontainer CLI.
func (p *parser) imageOrBuild() error {
	c := p.c
	if ok, err := p.compose(); ok || err != nil {
		return err
	}
	dockerfile, context := p.dockerfile, p.context
	if dockerfile == "" {
		dockerfile = p.legacyDockerfile
	}
	if context == "" && !p.legacyContext.isNull() {
		if p.legacyDockerfile == "" {
			p.unknown("context")
		} else {
			var err error
			if context, err = p.str(p.legacyContext, "context"); err != nil {
				return err
			}
		}
	}

	if dockerfile != "" {
		if context == "" {
			context = "."
		}
		c.Build = &Build{
			Dockerfile: hostPath(p.dir, dockerfile),
			Context:    hostPath(p.dir, context),
			Args:       p.args,
			Target:     p.target,
		}
		if p.image != "" {
			p.unknown("image")
		}
		return nil
	}
	if p.image != "" {
		c.Image = p.image
		if !p.build.isNull() {
			p.unknown("build")
		}
		return nil
	}
	msg := "neither image, build.dockerfile nor dockerComposeFile is set"
	if !p.build.isNull() {
		return p.errorf(p.build, "build", "%s", msg)
	}
	return p.errorf(nil, "", "%s", msg)
}

// str reads a string value; null means "".
func (p *parser) str(n *node, field string) (string, error) {
	switch {
	case n.isNull():
		return "", nil
	case n.kind == '"':
		return n.str, nil
	}
	return "", p.wrongType(n, field, "a string")
}

// boolPtr reads a boolean; null means unset.
func (p *parser) boolPtr(n *node, field string) (*bool, error) {
	switch {
	case n.isNull():
		return nil, nil
	case n.kind == 't', n.kind == 'f':
		v := n.kind == 't'
		return &v, nil
	}
	return nil, p.wrongType(n, field, "a boolean")
}

// envMap reads an object of environment variables or build args. Numbers
// and booleans are taken as their JSON text, since they end up as strings
// in the container anyway. A null value (remoteEnv's way to unset a
// variable) is dropped: berth sets nothing it did not read.
func (p *parser) envMap(n *node, field string) (map[string]string, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, "an object of strings")
	}
	out := make(map[string]string, len(n.members))
	for _, m := range unique(n) {
		switch v := m.val; v.kind {
		case '"', '0':
			out[m.key] = v.str
		case 't':
			out[m.key] = "true"
		case 'f':
			out[m.key] = "false"
		case 'n':
		default:
			return nil, p.wrongType(v, field+"."+m.key, "a string")
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (p *parser) ports(n *node) ([]Port, error) {
	const field = "forwardPorts"
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '[' {
		return nil, p.wrongType(n, field, "an array of ports")
	}
	var out []Port
	for i, e := range n.elems {
		f := fmt.Sprintf("%s[%d]", field, i)
		var host, port string
		switch e.kind {
		case '0':
			port = e.str
		case '"':
			port = strings.TrimSpace(e.str)
			if strings.Contains(port, ":") {
				var err error
				if host, port, err = net.SplitHostPort(port); err != nil {
					return nil, p.errorf(e, f, "%q is not a port or host:port", e.str)
				}
			}
		default:
			return nil, p.wrongType(e, f, `a port number or a "host:port" string`)
		}
		num, err := strconv.Atoi(port)
		if err != nil || num < 1 || num > 65535 {
			return nil, p.errorf(e, f, "port %q is not a whole number from 1 to 65535", port)
		}
		if host == "localhost" {
			host = "" // one spelling for "the container's own loopback"
		}
		out = append(out, Port{Host: host, Port: num})
	}
	return out, nil
}

func (p *parser) workspaceMount(n *node) (*Mount, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind == '"' {
		switch strings.TrimSpace(n.str) {
		case "":
			return nil, nil
		case "copy":
			return &Mount{Type: "copy"}, nil
		}
	}
	m, err := p.mount(n, "workspaceMount")
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func (p *parser) mounts(n *node) ([]Mount, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '[' {
		return nil, p.wrongType(n, "mounts", "an array of mounts")
	}
	var out []Mount
	for i, e := range n.elems {
		m, err := p.mount(e, fmt.Sprintf("mounts[%d]", i))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// mount reads the string form of docker's --mount
// ("type=bind,source=/a,target=/b,readonly") or the devcontainer object
// form ({"type", "source", "target"}). Options berth does not model are
// reported in Unknown, except consistency, which only ever mattered to
// Docker Desktop on macOS and is skipped silently.
func (p *parser) mount(n *node, field string) (Mount, error) {
	var m Mount
	switch n.kind {
	case '"':
		for part := range strings.SplitSeq(n.str, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			v = strings.TrimSpace(v)
			switch k {
			case "type":
				m.Type = v
			case "source", "src":
				m.Source = v
			case "target", "dst", "destination":
				m.Target = v
			case "readonly", "ro":
				// docker's rules: bare, 1 or true; 0 or false.
				switch strings.ToLower(v) {
				case "", "1", "true":
					m.ReadOnly = true
				case "0", "false":
					m.ReadOnly = false
				default:
					return m, p.errorf(n, field, "invalid %s value %q (want true or false)", k, v)
				}
			case "consistency":
			default:
				p.unknown(field + "." + k)
			}
		}
	case '{':
		for _, mm := range unique(n) {
			f := field + "." + mm.key
			var err error
			switch mm.key {
			case "type":
				m.Type, err = p.str(mm.val, f)
			case "source":
				m.Source, err = p.str(mm.val, f)
			case "target":
				m.Target, err = p.str(mm.val, f)
			case "consistency":
			default:
				p.unknown(f)
			}
			if err != nil {
				return m, err
			}
		}
	default:
		return m, p.wrongType(n, field, "a mount string or object")
	}

	m.Type = strings.ToLower(m.Type)
	if m.Type == "" {
		m.Type = "volume" // docker's default for --mount
	}
	switch m.Type {
	case "bind":
		if m.Source == "" {
			return m, p.errorf(n, field, "bind mount has no source")
		}
	case "volume", "tmpfs":
	default:
		return m, p.errorf(n, field, "unsupported mount type %q (want bind, volume or tmpfs)", m.Type)
	}
	if m.Target == "" {
		return m, p.errorf(n, field, "mount has no target")
	}
	return m, nil
}

// hook reads a lifecycle command. Empty commands are nil: nothing to run.
func (p *parser) hook(n *node, field string, top bool) (*Hook, error) {
	switch {
	case n.isNull():
		return nil, nil
	case n.kind == '"':
		if strings.TrimSpace(n.str) == "" {
			return nil, nil
		}
		return &Hook{Shell: n.str}, nil
	case n.kind == '[':
		var argv []string
		for i, e := range n.elems {
			if e.kind != '"' {
				return nil, p.wrongType(e, fmt.Sprintf("%s[%d]", field, i), "a string")
			}
			argv = append(argv, e.str)
		}
		if len(argv) == 0 {
			return nil, nil
		}
		return &Hook{Argv: argv}, nil
	case n.kind == '{' && top:
		par := make(map[string]*Hook)
		for _, m := range unique(n) {
			h, err := p.hook(m.val, field+"."+m.key, false)
			if err != nil {
				return nil, err
			}
			if h != nil {
				par[m.key] = h
			}
		}
		if len(par) == 0 {
			return nil, nil
		}
		return &Hook{Parallel: par}, nil
	case top:
		return nil, p.wrongType(n, field, "a string, an array of strings or an object of commands")
	}
	return nil, p.wrongType(n, field, "a string or an array of strings")
}

func (p *parser) shutdownAction(n *node) (string, error) {
	s, err := p.str(n, "shutdownAction")
	if err != nil {
		return "", err
	}
	switch s {
	case "none":
		return s, nil
	case "", "stopContainer", "stopCompose":
		// A Compose configuration makes it stopCompose (top).
		return defaultShutdownAction, nil
	}
	return "", p.errorf(n, "shutdownAction", "unknown value %q (want none, stopContainer or stopCompose)", s)
}

// customizations reads customizations.berth; other tools' sections are
// none of berth's business and are skipped without a word.
func (p *parser) customizations(n *node) error {
	if n.isNull() {
		return nil
	}
	if n.kind != '{' {
		return p.wrongType(n, "customizations", "an object")
	}
	b := n.get("berth")
	if b.isNull() {
		return nil
	}
	const field = "customizations.berth"
	if b.kind != '{' {
		return p.wrongType(b, field, "an object")
	}
	s := &p.c.Berth
	for _, m := range unique(b) {
		f := field + "." + m.key
		var err error
		switch m.key {
		case "backend":
			s.Backend, err = p.str(m.val, f)
		case "test":
			s.Test, err = p.anyMap(m.val, f)
		case "lint":
			s.Lint, err = p.anyMap(m.val, f)
		case "debug":
			s.Debug, err = p.anyMap(m.val, f)
		case "agent":
			switch m.val.kind {
			case 'n':
				s.Agent = nil
			case 't', 'f':
				v := m.val.kind == 't'
				s.Agent = &v
			default:
				err = p.wrongType(m.val, f, "a boolean")
			}
		case "limits":
			s.Limits, err = p.limits(m.val, f)
		case "lifetime":
			s.Lifetime, err = p.enum(m.val, f, LifetimeWorkspace, LifetimeCommand, LifetimeService)
		case "service":
			s.Service, err = p.berthService(m.val, f)
		case "sync":
			s.Sync, err = p.syncSettings(m.val, f)
		default:
			s.Unknown = append(s.Unknown, m.key)
		}
		if err != nil {
			return err
		}
	}
	switch {
	case s.Service != nil && s.Lifetime == "":
		// A service needs nothing more to say what it is.
		s.Lifetime = LifetimeService
	case s.Service != nil && s.Lifetime != LifetimeService:
		return p.errorf(b.get("service"), field+".service", "a service needs lifetime \"service\", not %q", s.Lifetime)
	case s.Service == nil && s.Lifetime == LifetimeService:
		s.Service = &Service{Health: "/", Scheme: "http"}
	}
	return nil
}

// syncSettings reads customizations.berth.sync.
func (p *parser) syncSettings(n *node, field string) (*SyncSettings, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, "an object")
	}
	s := &SyncSettings{}
	for _, m := range unique(n) {
		f := field + "." + m.key
		var err error
		switch m.key {
		case "twoWay":
			var v *bool
			v, err = p.boolPtr(m.val, f)
			s.TwoWay = v != nil && *v
		case "back":
			s.Back, err = p.strList(m.val, f)
		case "maxFiles":
			s.MaxFiles, err = p.count(m.val, f)
		case "maxBytes":
			s.MaxBytes, err = p.count(m.val, f)
		default:
			err = p.errorf(m.val, f, "unknown key (want twoWay, back, maxFiles or maxBytes)")
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// count reads a non-negative integer; null means 0.
func (p *parser) count(n *node, field string) (int64, error) {
	if n.isNull() {
		return 0, nil
	}
	if n.kind != '0' {
		return 0, p.wrongType(n, field, "a non-negative integer")
	}
	v, err := strconv.ParseInt(n.str, 10, 64)
	if err != nil || v < 0 {
		return 0, p.errorf(n, field, "%s is not a non-negative integer", n.str)
	}
	return v, nil
}

// anyMap reads a pass-through object into the types encoding/json would use.
func (p *parser) anyMap(n *node, field string) (map[string]any, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, "an object")
	}
	v, err := p.toAny(n, field)
	if err != nil {
		return nil, err
	}
	m := v.(map[string]any)
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

func (p *parser) toAny(n *node, field string) (any, error) {
	switch n.kind {
	case 't', 'f':
		return n.kind == 't', nil
	case '0':
		f, err := strconv.ParseFloat(n.str, 64)
		if err != nil {
			return nil, p.errorf(n, field, "number %s is out of range", n.str)
		}
		return f, nil
	case '"':
		return n.str, nil
	case '[':
		out := make([]any, 0, len(n.elems))
		for i, e := range n.elems {
			v, err := p.toAny(e, fmt.Sprintf("%s[%d]", field, i))
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case '{':
		out := make(map[string]any, len(n.members))
		for _, m := range unique(n) {
			v, err := p.toAny(m.val, field+"."+m.key)
			if err != nil {
				return nil, err
			}
			out[m.key] = v
		}
		return out, nil
	}
	return nil, nil
}

// features reads the features object: each key a Feature reference, each
// value its options (an object), a version (a string), or true for none.
func (p *parser) features(n *node) ([]FeatureRef, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, "features", "an object of Features and their options")
	}
	var out []FeatureRef
	for _, m := range unique(n) {
		field := fmt.Sprintf("features[%q]", m.key)
		id := strings.TrimSpace(m.key)
		if id == "" {
			return nil, p.errorf(m.val, field, "a Feature needs a reference")
		}
		f := FeatureRef{ID: id}
		f.Line, f.Column = position(p.src, m.keyOff)
		v := m.val
		switch v.kind {
		case 'n', 't':
		case '"':
			f.Options = map[string]any{"version": v.str}
			l, c := position(p.src, v.off)
			f.OptionPos = map[string][2]int{"version": {l, c}}
		case '{':
			for _, o := range unique(v) {
				var val any
				switch o.val.kind {
				case '"':
					val = o.val.str
				case '0':
					val = o.val.str
				case 't':
					val = true
				case 'f':
					val = false
				default:
					return nil, p.wrongType(o.val, field+"."+o.key, "a string or a boolean")
				}
				if f.Options == nil {
					f.Options, f.OptionPos = map[string]any{}, map[string][2]int{}
				}
				f.Options[o.key] = val
				l, c := position(p.src, o.val.off)
				f.OptionPos[o.key] = [2]int{l, c}
			}
		default:
			return nil, p.wrongType(v, field, "an object of options")
		}
		out = append(out, f)
	}
	return out, nil
}
