package devcontainer

import (
	"fmt"
	"strconv"
	"strings"
)

// hookNames are the lifecycle commands in the order they run; waitFor
// names one of them.
var hookNames = []string{"initializeCommand", "onCreateCommand", "updateContentCommand", "postCreateCommand", "postStartCommand", "postAttachCommand"}

// HookNames lists the lifecycle commands in the order they run.
func HookNames() []string { return append([]string(nil), hookNames...) }

// HookIndex is name's place in the order lifecycle commands run, or -1.
func HookIndex(name string) int {
	for i, n := range hookNames {
		if n == name {
			return i
		}
	}
	return -1
}

// DefaultWaitFor is the spec's waitFor when the config names none.
const DefaultWaitFor = "updateContentCommand"

// DefaultUserEnvProbe is the spec's userEnvProbe when the config names none.
const DefaultUserEnvProbe = "loginInteractiveShell"

// EffectiveWaitFor is WaitFor, or the spec's default.
func (c *Config) EffectiveWaitFor() string {
	if c.WaitFor == "" {
		return DefaultWaitFor
	}
	return c.WaitFor
}

// EffectiveUserEnvProbe is UserEnvProbe, or the spec's default.
func (c *Config) EffectiveUserEnvProbe() string {
	if c.UserEnvProbe == "" {
		return DefaultUserEnvProbe
	}
	return c.UserEnvProbe
}

// OverridesCommand reports whether berth's main process replaces the
// image's (overrideCommand, true unless set false).
func (c *Config) OverridesCommand() bool { return c.OverrideCommand == nil || *c.OverrideCommand }

// UpdatesRemoteUserUID reports whether the remote user's uid and gid
// should follow the host user's (updateRemoteUserUID, true unless set
// false).
func (c *Config) UpdatesRemoteUserUID() bool {
	return c.UpdateRemoteUserUID == nil || *c.UpdateRemoteUserUID
}

// enum reads a string that must be one of values; null means "".
func (p *parser) enum(n *node, field string, values ...string) (string, error) {
	s, err := p.str(n, field)
	if err != nil || s == "" {
		return s, err
	}
	for _, v := range values {
		if s == v {
			return s, nil
		}
	}
	return "", p.errorf(n, field, "unknown value %q (want %s)", s, orList(values))
}

func orList(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

func (p *parser) boolean(n *node, field string) (bool, error) {
	switch {
	case n.isNull():
		return false, nil
	case n.kind == 't' || n.kind == 'f':
		return n.kind == 't', nil
	}
	return false, p.wrongType(n, field, "a boolean")
}

func (p *parser) optBool(n *node, field string) (*bool, error) {
	if n.isNull() {
		return nil, nil
	}
	b, err := p.boolean(n, field)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// strList reads an array of strings; null means none.
func (p *parser) strList(n *node, field string) ([]string, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '[' {
		return nil, p.wrongType(n, field, "an array of strings")
	}
	var out []string
	for i, e := range n.elems {
		if e.kind != '"' {
			return nil, p.wrongType(e, fmt.Sprintf("%s[%d]", field, i), "a string")
		}
		out = append(out, e.str)
	}
	return out, nil
}

// appPort reads a port, a docker -p string, or an array of them.
func (p *parser) appPort(n *node) ([]string, error) {
	const field = "appPort"
	one := func(e *node, f string) (string, error) {
		switch e.kind {
		case '0':
			if v, err := strconv.Atoi(e.str); err != nil || v < 1 || v > 65535 {
				return "", p.errorf(e, f, "port %s is not a whole number from 1 to 65535", e.str)
			}
			return e.str, nil
		case '"':
			s := strings.TrimSpace(e.str)
			if _, err := parsePublish(s); err != nil {
				return "", p.errorf(e, f, "%v", err)
			}
			return s, nil
		}
		return "", p.wrongType(e, f, `a port number or a "[HOST:]HOSTPORT:PORT" string`)
	}
	switch {
	case n.isNull():
		return nil, nil
	case n.kind == '[':
		var out []string
		for i, e := range n.elems {
			s, err := one(e, fmt.Sprintf("%s[%d]", field, i))
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := one(n, field)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// Publish is one published port of appPort.
type Publish struct {
	HostIP        string // "" for every address
	HostPort      string // "" lets the engine pick
	ContainerPort string
	Proto         string // tcp or udp
}

// ParsePublish reads docker's -p form: [[HOSTIP:]HOSTPORT:]PORT[/PROTO],
// or a bare port, which publishes the same port on the host as the
// devcontainer CLI does.
func ParsePublish(s string) (Publish, error) { return parsePublish(s) }

func parsePublish(s string) (Publish, error) {
	var pb Publish
	rest, proto, _ := strings.Cut(s, "/")
	pb.Proto = "tcp"
	if proto != "" {
		if proto != "tcp" && proto != "udp" {
			return pb, fmt.Errorf("%q: protocol %q is neither tcp nor udp", s, proto)
		}
		pb.Proto = proto
	}
	parts := strings.Split(rest, ":")
	if strings.HasPrefix(rest, "[") { // [::1]:8080:80
		if i := strings.Index(rest, "]:"); i > 0 {
			parts = append([]string{rest[1:i]}, strings.Split(rest[i+2:], ":")...)
		}
	}
	switch len(parts) {
	case 1:
		pb.HostPort, pb.ContainerPort = parts[0], parts[0]
	case 2:
		pb.HostPort, pb.ContainerPort = parts[0], parts[1]
	case 3:
		pb.HostIP, pb.HostPort, pb.ContainerPort = parts[0], parts[1], parts[2]
	default:
		return pb, fmt.Errorf("%q is not [[HOSTIP:]HOSTPORT:]PORT", s)
	}
	for _, port := range []string{pb.HostPort, pb.ContainerPort} {
		if port == "" && port == pb.HostPort {
			continue
		}
		if v, err := strconv.Atoi(port); err != nil || v < 1 || v > 65535 {
			return pb, fmt.Errorf("%q: port %q is not a whole number from 1 to 65535", s, port)
		}
	}
	return pb, nil
}

var onAutoForward = []string{"notify", "openBrowser", "openBrowserOnce", "openPreview", "silent", "ignore"}

func (p *parser) portAttributes(n *node, field string) (PortAttributes, error) {
	var a PortAttributes
	if n.kind != '{' {
		return a, p.wrongType(n, field, "an object")
	}
	for _, m := range unique(n) {
		f := field + "." + m.key
		var err error
		switch m.key {
		case "label":
			a.Label, err = p.str(m.val, f)
		case "onAutoForward":
			a.OnAutoForward, err = p.enum(m.val, f, onAutoForward...)
		case "requireLocalPort":
			a.RequireLocalPort, err = p.boolean(m.val, f)
		case "elevateIfNeeded":
			a.ElevateIfNeeded, err = p.boolean(m.val, f)
		case "protocol":
			a.Protocol, err = p.enum(m.val, f, "http", "https")
		default:
			p.unknown(f)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

// portsAttributes reads an object of port attributes by port or range.
func (p *parser) portsAttributes(n *node, field string) (map[string]PortAttributes, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, "an object of port attributes")
	}
	out := map[string]PortAttributes{}
	for _, m := range unique(n) {
		a, err := p.portAttributes(m.val, field+"."+m.key)
		if err != nil {
			return nil, err
		}
		out[m.key] = a
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// hostRequirements reads cpus, memory, storage and gpu.
func (p *parser) hostRequirements(n *node) (*HostRequirements, error) {
	const field = "hostRequirements"
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, "an object")
	}
	h := &HostRequirements{}
	for _, m := range unique(n) {
		f := field + "." + m.key
		v := m.val
		switch m.key {
		case "cpus":
			if v.isNull() {
				continue
			}
			c, err := strconv.Atoi(v.str)
			if v.kind != '0' || err != nil || c < 0 {
				return nil, p.errorf(v, f, "want a whole number of CPUs, got %s", describe(v))
			}
			h.CPUs = c
		case "memory", "storage":
			if v.isNull() {
				continue
			}
			if v.kind != '"' {
				return nil, p.wrongType(v, f, `a size such as "4gb"`)
			}
			b, err := ParseSize(v.str)
			if err != nil {
				return nil, p.errorf(v, f, "%v", err)
			}
			if m.key == "memory" {
				h.Memory = b
			} else {
				h.Storage = b
			}
		case "gpu":
			switch {
			case v.isNull(), v.kind == 'f':
			case v.kind == 't':
				h.GPU = "required"
			case v.kind == '"' && v.str == "optional":
				h.GPU = "optional"
			case v.kind == '{':
				// {cores, memory}: berth checks that a GPU is there,
				// not its size.
				h.GPU = "required"
				for _, mm := range unique(v) {
					p.unknown(f + "." + mm.key)
				}
			default:
				return nil, p.errorf(v, f, `want true, false, "optional" or an object, got %s`, describe(v))
			}
		default:
			p.unknown(f)
		}
	}
	return h, nil
}

// describe names a value for an error: its text for strings and numbers.
func describe(n *node) string {
	switch n.kind {
	case '"':
		return strconv.Quote(n.str)
	case '0':
		return n.str
	}
	return kindName(n.kind)
}

// ParseSize reads a size as the devcontainer spec and docker write it: a
// number with an optional unit b, k/kb, m/mb, g/gb, t/tb (powers of 1024,
// case-insensitive, as docker reads them).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	num := strings.TrimRightFunc(t, func(r rune) bool { return r >= 'a' && r <= 'z' })
	unit := strings.TrimSpace(t[len(num):])
	num = strings.TrimSpace(num)
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || f < 0 || num == "" {
		return 0, fmt.Errorf("%q is not a size such as 512mb or 4gb", s)
	}
	return int64(f * float64(mult)), nil
}

// AttributesOf returns the portsAttributes entry for port: the entry of
// that port, or of a range ("3000-3010") holding it, else
// otherPortsAttributes, else none.
func (c *Config) AttributesOf(port int) PortAttributes {
	if a, ok := c.PortsAttributes[strconv.Itoa(port)]; ok {
		return a
	}
	for k, a := range c.PortsAttributes {
		lo, hi, ok := strings.Cut(k, "-")
		l, err1 := strconv.Atoi(strings.TrimSpace(lo))
		h, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if ok && err1 == nil && err2 == nil && l <= port && port <= h {
			return a
		}
	}
	if c.OtherPortsAttributes != nil {
		return *c.OtherPortsAttributes
	}
	return PortAttributes{}
}
