package session

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/backends"
)

// Every client that used a workspace hears of its instance's changes made
// behind berth's back, with the reason.
func TestInstanceChanged(t *testing.T) {
	tests := []struct {
		name string
		do   func(e *memEnv) error
		want []string // state/reason, in order
	}{
		{
			name: "stopped outside berth",
			do:   func(e *memEnv) error { return e.mem.StopExternally(e.ws) },
			want: []string{"stopped/" + ReasonStoppedOutside},
		},
		{
			name: "killed",
			do:   func(e *memEnv) error { return e.mem.KillExternally(e.ws) },
			want: []string{"stopped/" + ReasonKilled},
		},
		{
			name: "removed",
			do:   func(e *memEnv) error { return e.mem.RemoveExternally(e.ws) },
			want: []string{"stopped/" + ReasonKilled, instanceStateRemoved + "/" + ReasonRemoved},
		},
		{
			name: "restarted outside berth",
			do: func(e *memEnv) error {
				if err := e.mem.StopExternally(e.ws); err != nil {
					return err
				}
				e.startExternally()
				return nil
			},
			want: []string{"stopped/" + ReasonStoppedOutside, "running/" + ReasonStartedOutside},
		},
		{
			name: "daemon lost and back",
			do: func(e *memEnv) error {
				e.mem.SetDown(true)
				e.mem.SetDown(false)
				return nil
			},
			want: []string{"running/" + ReasonDaemonLost, "running/" + ReasonDaemonBack},
		},
		{
			name: "frozen and thawed",
			do: func(e *memEnv) error {
				e.mem.Freeze()
				e.mem.Thaw()
				return nil
			},
			want: []string{"running/" + ReasonDaemonLost, "running/" + ReasonDaemonBack},
		},
		{
			// Events while the engine is lost are missed; coming back, berth
			// reads the state afresh.
			name: "removed while the daemon was down",
			do: func(e *memEnv) error {
				e.mem.SetDown(true)
				if err := e.mem.RemoveExternally(e.ws); err != nil {
					return err
				}
				e.mem.SetDown(false)
				return nil
			},
			want: []string{"running/" + ReasonDaemonLost, instanceStateRemoved + "/" + ReasonDaemonBack},
		},
		{
			name: "stopped while the daemon was down",
			do: func(e *memEnv) error {
				e.mem.SetDown(true)
				if err := e.mem.StopExternally(e.ws); err != nil {
					return err
				}
				e.mem.SetDown(false)
				return nil
			},
			want: []string{"running/" + ReasonDaemonLost, "stopped/" + ReasonDaemonBack},
		},
		{
			name: "daemon shutting down",
			do: func(e *memEnv) error {
				e.mem.AnnounceShutdown()
				e.mem.SetDown(true)
				e.mem.SetDown(false)
				return nil
			},
			want: []string{"running/" + ReasonDaemonShutdown, "running/" + ReasonDaemonLost, "running/" + ReasonDaemonBack},
		},
		{
			name: "stopped by berth",
			do:   func(e *memEnv) error { return e.m.Workspace(e.ws).Down(testCtx(e.t), false) },
			want: []string{"stopped/" + ReasonStoppedByBerth},
		},
		{
			name: "removed by berth",
			do:   func(e *memEnv) error { return e.m.Workspace(e.ws).Down(testCtx(e.t), true) },
			want: []string{"stopped/" + ReasonStoppedByBerth, instanceStateRemoved + "/" + ReasonRemoved},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Clock: true})
			c, sink := e.client(nil, false)
			bystander, heard := e.client(nil, false)
			e.run(c, "true")
			bystander.Workspace(e.ws)
			e.waitWatchers()
			if err := tt.do(e); err != nil {
				t.Fatal(err)
			}
			got := sink.waitInstance(t, tt.want...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("instanceChanged (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, heard.waitInstance(t, tt.want...)); diff != "" {
				t.Errorf("a second client heard (-want +got):\n%s", diff)
			}

			// Whatever happened, the next call brings the instance back.
			if res := e.run(c, "echo", "back"); res.Stdout != "back\n" {
				t.Errorf("after the change: %q", res.Stdout)
			}
			if got := e.state(); got != "running" {
				t.Errorf("state %s after the next call", got)
			}
		})
	}
}

// A client that closed, or never used the workspace, hears nothing; nor
// does anyone about an instance berth doesn't know.
func TestInstanceChangedOnlyToItsClients(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	gone, goneSink := e.client(nil, false)
	_, elsewhere := e.client(nil, false)
	e.run(c, "true")
	e.run(gone, "true")
	gone.Close(testCtx(t))

	// An instance of a workspace this berth never used.
	if _, _, err := e.mem.Ensure(testCtx(t), backends.Spec{Workspace: "/elsewhere", Name: "elsewhere", Image: testImage}); err != nil {
		t.Fatal(err)
	}
	e.waitWatchers()
	if err := e.mem.KillExternally("/elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := e.mem.KillExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"stopped/" + ReasonKilled}, sink.waitInstance(t, "stopped/"+ReasonKilled)); diff != "" {
		t.Errorf("instanceChanged (-want +got):\n%s", diff)
	}
	time.Sleep(50 * time.Millisecond)
	if got := goneSink.instanceChanges(); len(got) != 0 {
		t.Errorf("a closed client heard %q", got)
	}
	if got := elsewhere.instanceChanges(); len(got) != 0 {
		t.Errorf("a client that never used the workspace heard %q", got)
	}
}

// An engine that was lost before berth knew any state reports "stopped".
func TestDaemonLostBeforeAnyState(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	c.Workspace(e.ws)
	e.waitWatchers()
	e.mem.SetDown(true)
	sink.waitInstance(t, "stopped/"+ReasonDaemonLost)
	e.mem.SetDown(false)
	sink.waitInstance(t, "stopped/"+ReasonDaemonLost, instanceStateRemoved+"/"+ReasonDaemonBack)
}

// berth's own stop is told from one made outside by a time window; a
// container killed soon after berth stopped and started it again was not
// stopped by berth.
func TestKilledSoonAfterBerthsOwnStop(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{})
	c, sink := e.client(nil, false)
	e.run(c, "true")
	e.waitWatchers()
	if err := e.m.Workspace(e.ws).Down(testCtx(t), false); err != nil {
		t.Fatal(err)
	}
	sink.waitInstance(t, "stopped/"+ReasonStoppedByBerth)
	e.run(c, "true") // berth starts it again
	if err := e.mem.KillExternally(e.ws); err != nil {
		t.Fatal(err)
	}
	want := []string{"stopped/" + ReasonStoppedByBerth, "stopped/" + ReasonKilled}
	if diff := cmp.Diff(want, sink.waitInstance(t, want...)); diff != "" {
		t.Errorf("instanceChanged (-want +got):\n%s", diff)
	}
}
