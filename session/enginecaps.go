package session

import "github.com/berthdev/berth/backends"

// Engine says where a manager's engine is and what follows from whether it
// is remote. Remote is decided by the endpoint alone (tcp, ssh and https
// are remote even on 127.0.0.1), and takes away all three capabilities.
type Engine struct {
	Endpoint string // "" when the backend can't name it
	Remote   bool
	// BindMounts: host folders are bind-mounted; without them the
	// workspace is synced (sync mode).
	BindMounts bool
	// FastPath: the agent is reached through its door, a unix socket in
	// a shared host folder; without it everything rides the exec stream.
	FastPath bool
	// NetNS: tunnels can open sockets in the instance's network
	// namespace from the host; without it they ride the agent's stream.
	NetNS bool
}

// Engine describes the manager's engine.
func (m *Manager) Engine() Engine {
	e := Engine{}
	if ep, ok := m.backend.(backends.Endpointer); ok {
		e.Endpoint = ep.Endpoint()
	}
	if l, ok := m.backend.(backends.Localer); ok {
		e.Remote = !l.Local()
	}
	if e.Remote {
		return e
	}
	e.BindMounts = true
	e.FastPath = !m.noFast && len(m.agents) > 0
	// As netnsPath decides: joining a namespace takes root.
	_, nser := m.backend.(backends.NetNSer)
	e.NetNS = nser && !m.noFast && netnsUsable()
	return e
}
