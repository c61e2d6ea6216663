package docker

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

func TestEventMapper(t *testing.T) {
	const (
		id = "c1"
		ws = "/home/u/proj"
	)
	type step struct {
		action events.Action
		signal string
		after  time.Duration // since the previous step
		exit   string        // the die's exit code
	}
	tests := []struct {
		name   string
		steps  []step
		want   []backends.EventKind
		podman bool
	}{
		{"docker stop", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "stop"}}, []backends.EventKind{backends.EventStopped}, false},
		{"stop logged before die", []step{{action: "kill", signal: "15"}, {action: "stop"}, {action: "die"}}, []backends.EventKind{backends.EventStopped}, false},
		{"stop that had to kill", []step{{action: "kill", signal: "15"}, {action: "kill", signal: "9"}, {action: "die"}, {action: "stop"}}, []backends.EventKind{backends.EventStopped}, false},
		{"docker kill", []step{{action: "kill", signal: "9"}, {action: "die"}}, []backends.EventKind{backends.EventKilled}, false},
		{"main process exits", []step{{action: "die"}}, []backends.EventKind{backends.EventKilled}, false},
		{"signal without stop", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "start", after: 3 * time.Second}}, []backends.EventKind{backends.EventKilled, backends.EventStarted}, false},
		{"docker restart", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "stop"}, {action: "start"}, {action: "restart"}}, []backends.EventKind{backends.EventStopped, backends.EventStarted}, false},
		{"restart of a stopped one", []step{{action: "start"}, {action: "restart"}}, []backends.EventKind{backends.EventStarted}, false},
		{"rm -f", []step{{action: "kill", signal: "9"}, {action: "die"}, {action: "destroy"}}, []backends.EventKind{backends.EventKilled, backends.EventRemoved}, false},
		{"held die then destroy", []step{{action: "kill", signal: "2"}, {action: "die"}, {action: "destroy"}}, []backends.EventKind{backends.EventKilled, backends.EventRemoved}, false},
		{"a kill before the start does not count", []step{{action: "kill", signal: "1"}, {action: "start"}, {action: "die"}}, []backends.EventKind{backends.EventStarted, backends.EventKilled}, false},
		{"docker: a clean exit is no stop", []step{{action: "die", exit: "0"}}, []backends.EventKind{backends.EventKilled}, false},
		{"podman stop: only its die", []step{{action: "start"}, {action: "die", exit: "0"}, {action: "remove"}}, []backends.EventKind{backends.EventStarted, backends.EventStopped, backends.EventRemoved}, true},
		{"podman: the main process fails", []step{{action: "die", exit: "1"}}, []backends.EventKind{backends.EventKilled}, true},
		{"podman kill", []step{{action: "kill", signal: "9"}, {action: "die", exit: "137"}}, []backends.EventKind{backends.EventKilled}, true},
		{"health", []step{{action: "start"}, {action: "health_status: running"}, {action: "health_status: unhealthy"}, {action: "health_status: healthy"}, {action: "restart"}}, []backends.EventKind{backends.EventStarted, backends.EventHealth, backends.EventHealth}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []backends.EventKind
			m := newEventMapper(func(ev backends.Event) {
				if ev.ID != id || ev.Name != "berth-x" || ev.Workspace != ws {
					t.Errorf("event %+v", ev)
				}
				got = append(got, ev.Kind)
			})
			m.podman = tt.podman
			now := time.Unix(1000, 0)
			for _, s := range tt.steps {
				now = now.Add(s.after)
				if due, ok := m.nextDue(); ok && !due.After(now) {
					m.expire(now)
				}
				attrs := map[string]string{"name": "berth-x", backends.LabelWorkspace: ws}
				if s.signal != "" {
					attrs["signal"] = s.signal
				}
				if s.exit != "" {
					attrs["exitCode"] = s.exit
				}
				m.handle(events.Message{Action: s.action, Actor: events.Actor{ID: id, Attributes: attrs}}, now)
			}
			m.flush()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
