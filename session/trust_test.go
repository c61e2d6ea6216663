package session

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/trust"
)

// asker is a ConfirmFunc that answers as told and counts the questions.
type asker struct {
	mu     sync.Mutex
	answer bool
	err    error
	asked  []TrustRequest
}

func (a *asker) confirm(ctx context.Context, req TrustRequest) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked = append(a.asked, req)
	return a.answer, a.err
}

func (a *asker) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.asked)
}

// untrustedClient is a client of e's manager with the given policy, in
// place of the trusting one e.client makes.
func (e *memEnv) untrustedClient(p TrustPolicy) *Client {
	c, _ := e.client(nil, true)
	c.SetTrust(p)
	return c
}

func (e *memEnv) hasInstance() bool {
	_, err := e.mem.Find(testCtx(e.t), e.ws)
	return !errors.Is(err, backends.ErrNotFound)
}

const hookConfig = `"postCreateCommand": "echo ran >> /tmp/hook.log"`

func TestTrustNeeded(t *testing.T) {
	tests := []struct {
		name     string
		policy   func(*asker) TrustPolicy
		answer   bool
		askErr   error
		wantErr  error
		wantText string
		asks     int
	}{
		{name: "no policy", policy: func(*asker) TrustPolicy { return TrustPolicy{} }, wantErr: ErrUntrusted, wantText: "can't be asked"},
		{name: "can't ask", policy: func(*asker) TrustPolicy { return TrustPolicy{Why: "no showMessage here"} }, wantErr: ErrUntrusted, wantText: "no showMessage here"},
		{name: "declined", policy: func(a *asker) TrustPolicy { return TrustPolicy{Confirm: a.confirm} }, wantErr: ErrUntrusted, wantText: "declined", asks: 1},
		{name: "asking failed", policy: func(a *asker) TrustPolicy { return TrustPolicy{Confirm: a.confirm} }, askErr: errors.New("client said no such method"), wantErr: ErrUntrusted, wantText: "no such method", asks: 1},
		{name: "trusted when asked", policy: func(a *asker) TrustPolicy { return TrustPolicy{Confirm: a.confirm} }, answer: true, asks: 1},
		{name: "the client vouches", policy: func(a *asker) TrustPolicy { return TrustPolicy{Trusted: true, Confirm: a.confirm} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Files: dcFiles(hookConfig)})
			a := &asker{answer: tt.answer, err: tt.askErr}
			c := e.untrustedClient(tt.policy(a))
			_, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Up: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				for _, w := range []string{tt.wantText, e.ws, "postCreateCommand", "--trust", "initializationOptions.trust"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if e.hasInstance() {
					t.Error("an untrusted configuration made a container")
				}
			} else if got := e.file("/tmp/hook.log"); got != "ran\n" {
				t.Errorf("hook log %q, want the hook run once", got)
			}
			if a.count() != tt.asks {
				t.Errorf("asked %d times, want %d", a.count(), tt.asks)
			}
			if tt.asks > 0 {
				req := a.asked[0]
				if req.Workspace != e.ws || filepath.Base(req.ConfigFile) != "devcontainer.json" || len(req.Findings) != 1 || req.Findings[0].Field != "postCreateCommand" {
					t.Errorf("asked %+v", req)
				}
			}
		})
	}
}

// A decision is kept in the store: the next client, or berth process,
// asks nothing for the same configuration, and asks again for a changed
// one. A decline isn't kept, but isn't asked twice on one connection.
func TestTrustRecorded(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(hookConfig)})
	store := trust.NewStore(filepath.Join(t.TempDir(), "trust.json"))

	no := &asker{}
	c := e.untrustedClient(TrustPolicy{Store: store, Confirm: no.confirm})
	for range 2 {
		if _, err := c.Run(testCtx(t), ExecOptions{Workspace: e.ws, Argv: []string{"true"}}, 0); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("Run: %v, want ErrUntrusted", err)
		}
	}
	if no.count() != 1 {
		t.Errorf("a declining user was asked %d times on one connection, want once", no.count())
	}

	yes := &asker{answer: true}
	c = e.untrustedClient(TrustPolicy{Store: store, Confirm: yes.confirm})
	if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
		t.Fatal(err)
	}
	later := &asker{}
	other := e.untrustedClient(TrustPolicy{Store: store, Confirm: later.confirm})
	if _, err := other.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
		t.Fatalf("another client's Up of a trusted configuration: %v", err)
	}
	if yes.count() != 1 || later.count() != 0 {
		t.Errorf("asked %d and %d times, want once in all", yes.count(), later.count())
	}

	// A changed configuration asks again.
	writeHostFile(t, filepath.Join(e.ws, ".devcontainer", "devcontainer.json"), dcFiles(`"postCreateCommand": "echo changed"`)[".devcontainer/devcontainer.json"])
	if _, err := other.Up(testCtx(t), UpOptions{Workspace: e.ws}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Up after a change: %v, want ErrUntrusted", err)
	}
	if later.count() != 1 {
		t.Errorf("a changed configuration asked %d times, want once", later.count())
	}
}

// Configurations that do nothing needing trust never ask.
func TestTrustNotNeeded(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"image":                  nil,
		"devcontainer.json":      dcFiles(`"containerEnv": {"A": "1"}, "forwardPorts": [3000]`),
		"mount in the workspace": dcFiles(`"mounts": ["type=bind,source=${localWorkspaceFolder}/data,target=/data"]`),
		"volume":                 dcFiles(`"mounts": ["type=volume,source=cache,target=/cache"]`),
	} {
		t.Run(name, func(t *testing.T) {
			e := newMemEnv(t, memEnvOptions{Files: files})
			a := &asker{}
			c := e.untrustedClient(TrustPolicy{Confirm: a.confirm})
			if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
				t.Fatal(err)
			}
			if a.count() != 0 {
				t.Errorf("asked %d times", a.count())
			}
		})
	}
}

// An untrusted workspace's bind mount of a refused host path fails with
// ErrRefusedPath; trusted, it is the user's call.
func TestTrustRefusedMount(t *testing.T) {
	e := newMemEnv(t, memEnvOptions{Files: dcFiles(`"mounts": ["type=bind,source=/,target=/host"]`)})
	c := e.untrustedClient(TrustPolicy{})
	_, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws})
	if !errors.Is(err, ErrRefusedPath) || !strings.Contains(err.Error(), "mounts[0]") || !strings.Contains(err.Error(), "filesystem root") || !strings.Contains(err.Error(), "--trust") {
		t.Fatalf("Up: %v, want ErrRefusedPath naming mounts[0], the root and --trust", err)
	}
	if e.hasInstance() {
		t.Error("a container was made")
	}
	c = e.untrustedClient(TrustPolicy{Trusted: true})
	if _, err := c.Up(testCtx(t), UpOptions{Workspace: e.ws}); err != nil {
		t.Fatalf("trusted: %v", err)
	}
}
