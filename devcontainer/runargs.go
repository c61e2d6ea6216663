package devcontainer

import (
	"fmt"
	"strconv"
	"strings"
)

// runFlag is one docker run flag berth maps onto the engine's API.
type runFlag struct {
	long, short string
	boolean     bool
}

// runFlags is the documented subset of docker run that runArgs may use.
// Anything else is an error: berth talks to the engine's API, not to the
// docker CLI, so an unknown flag would be silently lost.
var runFlags = []runFlag{
	{long: "cap-add"}, {long: "security-opt"}, {long: "privileged", boolean: true},
	{long: "device"}, {long: "gpus"}, {long: "env", short: "e"}, {long: "env-file"},
	{long: "add-host"}, {long: "network"}, {long: "net"}, {long: "shm-size"}, {long: "ulimit"},
	{long: "label", short: "l"}, {long: "init", boolean: true}, {long: "volume", short: "v"},
	{long: "mount"}, {long: "user", short: "u"}, {long: "hostname", short: "h"},
}

// RunArgsFlags lists the runArgs flags berth understands, for docs and
// messages.
func RunArgsFlags() []string {
	var out []string
	for _, f := range runFlags {
		if f.long == "net" {
			continue
		}
		s := "--" + f.long
		if f.short != "" {
			s = "-" + f.short + "/" + s
		}
		out = append(out, s)
	}
	return out
}

func lookupFlag(name string, short bool) (runFlag, bool) {
	for _, f := range runFlags {
		if (!short && f.long == name) || (short && f.short != "" && f.short == name) {
			return f, true
		}
	}
	return runFlag{}, false
}

// runArgs reads runArgs into the config: flags with their own key add to
// it (capAdd, containerEnv, containerUser...), the rest go to Config.Run.
// It runs after every other key, so that it adds rather than being
// overwritten; where both set one value (containerUser and -u), runArgs
// wins, as it does on the devcontainer CLI's docker command line.
func (p *parser) runArgs(n *node) error {
	const field = "runArgs"
	if n.isNull() {
		return nil
	}
	if n.kind != '[' {
		return p.wrongType(n, field, "an array of strings")
	}
	for i := 0; i < len(n.elems); i++ {
		e := n.elems[i]
		f := fmt.Sprintf("%s[%d]", field, i)
		if e.kind != '"' {
			return p.wrongType(e, f, "a string")
		}
		arg := strings.TrimSpace(e.str)
		if arg == "" {
			continue
		}
		var name, val string
		var hasVal, short bool
		switch {
		case strings.HasPrefix(arg, "--"):
			name, val, hasVal = strings.Cut(arg[2:], "=")
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			short = true
			name, val = arg[1:2], arg[2:]
			hasVal = val != ""
			val = strings.TrimPrefix(val, "=")
		default:
			return p.errorf(e, f, "%q is not a flag: runArgs takes docker run flags only (the image comes from image or build)", arg)
		}
		flag, ok := lookupFlag(name, short)
		if !ok && !short && name == "userns" {
			// Podman configurations often carry it.
			return p.errorf(e, f, "docker run flag %q is not supported in runArgs: berth gives rootless Podman a keep-id user namespace itself when the remote user isn't root", arg)
		}
		if !ok {
			return p.errorf(e, f, "docker run flag %q is not supported in runArgs; berth maps only %s", arg, strings.Join(RunArgsFlags(), ", "))
		}
		valNode := e
		if flag.boolean {
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return p.errorf(e, f, "%s: %q is not true or false", arg, val)
				}
			}
			switch flag.long {
			case "privileged":
				p.c.Privileged = b
			case "init":
				p.c.Init = b
			}
			continue
		}
		if !hasVal {
			if i+1 >= len(n.elems) {
				return p.errorf(e, f, "%s needs a value", arg)
			}
			i++
			valNode = n.elems[i]
			if valNode.kind != '"' {
				return p.wrongType(valNode, fmt.Sprintf("%s[%d]", field, i), "a string")
			}
			val = valNode.str
			f = fmt.Sprintf("%s[%d]", field, i)
		}
		if err := p.runFlag(flag.long, val, valNode, f); err != nil {
			return err
		}
	}
	return nil
}

// runFlag applies one flag's value; n and field place errors.
func (p *parser) runFlag(name, val string, n *node, field string) error {
	c := p.c
	bad := func(format string, args ...any) error {
		return p.errorf(n, field, "--%s %s", name, fmt.Sprintf(format, args...))
	}
	switch name {
	case "cap-add":
		c.CapAdd = append(c.CapAdd, val)
	case "security-opt":
		c.SecurityOpt = append(c.SecurityOpt, val)
	case "device":
		if val == "" {
			return bad("needs a device path")
		}
		c.Run.Devices = append(c.Run.Devices, val)
	case "gpus":
		c.Run.GPUs = val
	case "env":
		k, v, ok := strings.Cut(val, "=")
		if k == "" {
			return bad("%q: want NAME=VALUE or NAME", val)
		}
		if !ok {
			// docker takes the variable from the calling environment,
			// and sets nothing when it is unset there.
			if p.env == nil {
				return nil
			}
			if v, ok = p.env(k); !ok {
				return nil
			}
		}
		if c.ContainerEnv == nil {
			c.ContainerEnv = map[string]string{}
		}
		c.ContainerEnv[k] = v
	case "env-file":
		if val == "" {
			return bad("needs a file")
		}
		c.Run.EnvFiles = append(c.Run.EnvFiles, hostPath(p.ws, val))
	case "add-host":
		h, ip, ok := strings.Cut(val, ":")
		if !ok {
			h, ip, ok = strings.Cut(val, "=")
		}
		if !ok || h == "" || ip == "" {
			return bad("%q: want HOST:IP", val)
		}
		c.Run.ExtraHosts = append(c.Run.ExtraHosts, h+":"+ip)
	case "network", "net":
		c.Run.Network = val
	case "shm-size":
		b, err := ParseSize(val)
		if err != nil {
			return bad("%v", err)
		}
		c.Run.ShmSize = b
	case "ulimit":
		u, err := parseUlimit(val)
		if err != nil {
			return bad("%v", err)
		}
		c.Run.Ulimits = append(c.Run.Ulimits, u)
	case "label":
		k, v, _ := strings.Cut(val, "=")
		if k == "" {
			return bad("%q: want KEY=VALUE", val)
		}
		if c.Run.Labels == nil {
			c.Run.Labels = map[string]string{}
		}
		c.Run.Labels[k] = v
	case "volume":
		m, err := p.volume(val)
		if err != nil {
			return bad("%v", err)
		}
		c.Run.Mounts = append(c.Run.Mounts, m)
	case "mount":
		m, err := p.mount(&node{off: n.off, kind: '"', str: val}, field)
		if err != nil {
			return err
		}
		c.Run.Mounts = append(c.Run.Mounts, m)
	case "user":
		c.ContainerUser = val
	case "hostname":
		c.Run.Hostname = val
	}
	return nil
}

// volume reads docker's -v: [SRC:]DST[:OPTS]. A source that is a path
// (absolute, or starting with . or ~) is a bind mount, resolved against
// the workspace; otherwise it names a volume.
func (p *parser) volume(val string) (Mount, error) {
	parts := strings.Split(val, ":")
	var m Mount
	switch len(parts) {
	case 1:
		m = Mount{Type: "volume", Target: parts[0]}
	case 2, 3:
		m = Mount{Source: parts[0], Target: parts[1]}
		if len(parts) == 3 {
			for opt := range strings.SplitSeq(parts[2], ",") {
				switch opt {
				case "ro", "readonly":
					m.ReadOnly = true
				case "rw", "z", "Z", "cached", "delegated", "consistent", "":
				default:
					return m, fmt.Errorf("%q: option %q is not supported (ro, rw, z, Z)", val, opt)
				}
			}
		}
	default:
		return m, fmt.Errorf("%q: want [SOURCE:]TARGET[:OPTIONS]", val)
	}
	if m.Type == "" {
		src := m.Source
		switch {
		case src == "":
			return m, fmt.Errorf("%q: empty source", val)
		case strings.HasPrefix(src, "/"), strings.HasPrefix(src, "."):
			m.Type, m.Source = "bind", hostPath(p.ws, src)
		case strings.HasPrefix(src, "~"):
			return m, fmt.Errorf("%q: ~ is not expanded; use ${localEnv:HOME}", val)
		default:
			m.Type = "volume"
		}
	}
	if !strings.HasPrefix(m.Target, "/") {
		return m, fmt.Errorf("%q: target %q is not an absolute container path", val, m.Target)
	}
	return m, nil
}

// parseUlimit reads NAME=SOFT[:HARD]; -1 is unlimited.
func parseUlimit(val string) (Ulimit, error) {
	name, lim, ok := strings.Cut(val, "=")
	if !ok || name == "" {
		return Ulimit{}, fmt.Errorf("%q: want NAME=SOFT[:HARD]", val)
	}
	softS, hardS, two := strings.Cut(lim, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return Ulimit{}, fmt.Errorf("%q: soft limit %q is not a number", val, softS)
	}
	hard := soft
	if two {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return Ulimit{}, fmt.Errorf("%q: hard limit %q is not a number", val, hardS)
		}
	}
	return Ulimit{Name: name, Soft: soft, Hard: hard}, nil
}
