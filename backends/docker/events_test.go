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
	}
	tests := []struct {
		name  string
		steps []step
		want  []backends.EventKind
	}{
		{"docker stop", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "stop"}}, []backends.EventKind{backends.EventStopped}},
		{"stop logged before die", []step{{action: "kill", signal: "15"}, {action: "stop"}, {action: "die"}}, []backends.EventKind{backends.EventStopped}},
		{"stop that had to kill", []step{{action: "kill", signal: "15"}, {action: "kill", signal: "9"}, {action: "die"}, {action: "stop"}}, []backends.EventKind{backends.EventStopped}},
		{"docker kill", []step{{action: "kill", signal: "9"}, {action: "die"}}, []backends.EventKind{backends.EventKilled}},
		{"main process exits", []step{{action: "die"}}, []backends.EventKind{backends.EventKilled}},
		{"signal without stop", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "start", after: 3 * time.Second}}, []backends.EventKind{backends.EventKilled, backends.EventStarted}},
		{"docker restart", []step{{action: "kill", signal: "15"}, {action: "die"}, {action: "stop"}, {action: "start"}, {action: "restart"}}, []backends.EventKind{backends.EventStopped, backends.EventStarted}},
		{"restart of a stopped one", []step{{action: "start"}, {action: "restart"}}, []backends.EventKind{backends.EventStarted}},
		{"rm -f", []step{{action: "kill", signal: "9"}, {action: "die"}, {action: "destroy"}}, []backends.EventKind{backends.EventKilled, backends.EventRemoved}},
		{"held die then destroy", []step{{action: "kill", signal: "2"}, {action: "die"}, {action: "destroy"}}, []backends.EventKind{backends.EventKilled, backends.EventRemoved}},
		{"a kill before the start does not count", []step{{action: "kill", signal: "1"}, {action: "start"}, {action: "die"}}, []backends.EventKind{backends.EventStarted, backends.EventKilled}},
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
				m.handle(events.Message{Action: s.action, Actor: events.Actor{ID: id, Attributes: attrs}}, now)
			}
			m.flush()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
