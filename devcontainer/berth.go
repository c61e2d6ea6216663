package devcontainer

import (
	"fmt"
	"strconv"
	"strings"
)

// Lifetimes of customizations.berth.lifetime.
const (
	// LifetimeWorkspace keeps the container up as long as the workspace
	// is in use: berth's behaviour without the key.
	LifetimeWorkspace = "workspace"
	// LifetimeCommand keeps no long-lived container: an exec starts it,
	// and berth stops it once its last process has exited and no editor
	// session is attached.
	LifetimeCommand = "command"
	// LifetimeService runs a service (customizations.berth.service) whose
	// health berth checks.
	LifetimeService = "service"
)

// Limits are an instance's resource limits, from customizations.berth.limits
// or initializationOptions.limits. A zero field sets no limit. They are
// left out of the config hash: berth applies a changed limit to the
// running container rather than recreating it.
type Limits struct {
	Memory int64   `json:",omitzero"` // bytes
	CPUs   float64 `json:",omitzero"` // CPUs' worth of time, such as 1.5
	Pids   int64   `json:",omitzero"` // processes
}

// IsZero reports whether l sets no limit.
func (l Limits) IsZero() bool { return l == Limits{} }

// Service is customizations.berth.service: what runs in a container of
// the service lifetime and how berth checks its health.
type Service struct {
	// Command replaces the image's command; nil keeps it. Shell is set
	// for the string form, run by /bin/sh -c.
	Command []string `json:",omitzero"`
	Shell   string   `json:",omitzero"`
	// Port is the port the service listens on in the container; 0 takes
	// the image's first EXPOSE.
	Port int `json:",omitzero"`
	// Health is the HTTP path berth checks, "/" by default.
	Health string `json:",omitzero"`
	// Scheme is http (the default) or https.
	Scheme string `json:",omitzero"`
}

// EffectiveLifetime is the lifetime berth applies: LifetimeWorkspace when
// the configuration names none.
func (c *Config) EffectiveLifetime() string {
	if c.Berth.Lifetime == "" {
		return LifetimeWorkspace
	}
	return c.Berth.Lifetime
}

// limits reads customizations.berth.limits. Unknown keys are errors, not
// warnings: a misspelt limit would leave the container unbounded.
func (p *parser) limits(n *node, field string) (*Limits, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, `an object such as {"memory": "2g", "cpus": 1.5, "pids": 512}`)
	}
	l := &Limits{}
	for _, m := range unique(n) {
		f := field + "." + m.key
		v := m.val
		if v.isNull() {
			continue
		}
		switch m.key {
		case "memory":
			var (
				b   int64
				err error
			)
			switch v.kind {
			case '"':
				b, err = ParseSize(v.str)
			case '0':
				b, err = strconv.ParseInt(v.str, 10, 64)
				if err != nil {
					err = fmt.Errorf("%s is not a whole number of bytes", v.str)
				}
			default:
				return nil, p.wrongType(v, f, `a size such as "2g"`)
			}
			if err != nil {
				return nil, p.errorf(v, f, "%v", err)
			}
			if b <= 0 {
				return nil, p.errorf(v, f, "want a size above 0, got %s", describe(v))
			}
			l.Memory = b
		case "cpus":
			c, err := strconv.ParseFloat(v.str, 64)
			if v.kind != '0' || err != nil || c <= 0 {
				return nil, p.errorf(v, f, "want a number of CPUs above 0 such as 1.5, got %s", describe(v))
			}
			l.CPUs = c
		case "pids":
			n, err := strconv.ParseInt(v.str, 10, 64)
			if v.kind != '0' || err != nil || n <= 0 {
				return nil, p.errorf(v, f, "want a whole number of processes above 0, got %s", describe(v))
			}
			l.Pids = n
		default:
			return nil, p.errorf(m.val, f, "unknown limit %q (want memory, cpus or pids)", m.key)
		}
	}
	if l.IsZero() {
		return nil, nil
	}
	return l, nil
}

// berthService reads customizations.berth.service.
func (p *parser) berthService(n *node, field string) (*Service, error) {
	if n.isNull() {
		return nil, nil
	}
	if n.kind != '{' {
		return nil, p.wrongType(n, field, `an object such as {"port": 8080, "health": "/healthz"}`)
	}
	s := &Service{}
	for _, m := range unique(n) {
		f := field + "." + m.key
		v := m.val
		var err error
		switch m.key {
		case "command":
			switch v.kind {
			case 'n':
			case '"':
				s.Shell = v.str
			case '[':
				s.Command, err = p.strList(v, f)
			default:
				err = p.wrongType(v, f, "a string or an array of strings")
			}
		case "port":
			if v.isNull() {
				continue
			}
			port, perr := strconv.Atoi(v.str)
			if v.kind != '0' || perr != nil || port < 1 || port > 65535 {
				err = p.errorf(v, f, "port %s is not a whole number from 1 to 65535", describe(v))
			}
			s.Port = port
		case "health":
			s.Health, err = p.str(v, f)
			if err == nil && s.Health != "" && !strings.HasPrefix(s.Health, "/") {
				err = p.errorf(v, f, "%q is not an HTTP path starting with /", s.Health)
			}
		case "scheme":
			s.Scheme, err = p.enum(v, f, "http", "https")
		default:
			err = p.errorf(v, f, "unknown key %q (want command, port, health or scheme)", m.key)
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Health == "" {
		s.Health = "/"
	}
	if s.Scheme == "" {
		s.Scheme = "http"
	}
	return s, nil
}
