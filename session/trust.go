package session

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/trust"
)

// ErrUntrusted means a workspace's configuration needs the user's trust
// (it runs commands or reaches host paths) and doesn't have it.
var ErrUntrusted = errors.New("workspace not trusted")

// howToTrust ends every untrusted error: the ways to give trust.
const howToTrust = "to trust it, answer \"Trust\" when berth asks, pass --trust to the berth CLI, or send initializationOptions.trust: true from an editor"

// TrustRequest is what a ConfirmFunc asks the user about.
type TrustRequest struct {
	Workspace  string
	ConfigFile string // "" when the configuration has no file
	Findings   []trust.Finding
}

// ConfirmFunc asks the user whether to trust a workspace's configuration.
// It returns true only for an explicit yes; it may block until ctx ends.
type ConfirmFunc func(ctx context.Context, req TrustRequest) (bool, error)

// TrustPolicy is how a client's workspaces get trust.
type TrustPolicy struct {
	// Store keeps decisions across processes; nil keeps none.
	Store *trust.Store
	// Trusted: the client vouches for its workspaces (berth --trust,
	// initializationOptions.trust). Berth records that in Store.
	Trusted bool
	// Confirm asks the user; nil when the client can't be asked.
	Confirm ConfirmFunc
	// Why says why Confirm is nil, for the error.
	Why string
}

// SetTrust sets how the client's workspaces get trust. A client without
// a policy trusts nothing that needs trust.
func (c *Client) SetTrust(p TrustPolicy) {
	c.mu.Lock()
	c.trust = p
	c.mu.Unlock()
}

func (c *Client) trustPolicy() TrustPolicy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trust
}

// authorize lets cfg, the configuration of the workspace ws, act when it
// needs no trust or has it: recorded, vouched for by the client, or given
// by the user when asked. Otherwise it returns an error wrapping
// ErrUntrusted, or ErrRefusedPath when a bind-mount source is one that
// berth refuses for untrusted workspaces. It is EnsureOptions.Authorize
// for the client's calls.
func (c *Client) authorize(ctx context.Context, ws string, cfg *devcontainer.Config) error {
	findings := trust.Classify(ws, cfg, resolved)
	if len(findings) == 0 {
		return nil
	}
	pol := c.trustPolicy()
	var storeErr error
	if pol.Store != nil {
		ok, err := pol.Store.Trusted(ws, cfg.Hash)
		if ok {
			return nil
		}
		storeErr = err
	}
	if pol.Trusted {
		c.record(pol, ws, cfg.Hash, "the client trusts it")
		return nil
	}
	if storeErr != nil {
		return fmt.Errorf("%w: %s: %v", ErrUntrusted, ws, storeErr)
	}
	key := ws + "\x00" + cfg.Hash
	why := ""
	switch {
	case c.declinedBefore(key):
		why = "trust was declined earlier on this connection; reconnect to be asked again"
	case pol.Confirm == nil:
		why = pol.Why
		if why == "" {
			why = "this client can't be asked"
		}
	default:
		c.log.Info("asking the user to trust the workspace's configuration", "workspace", ws, "findings", trust.Summary(findings))
		ok, err := pol.Confirm(ctx, TrustRequest{Workspace: ws, ConfigFile: cfg.File, Findings: findings})
		if ctx.Err() != nil {
			return ctx.Err() // the request ended: no decision
		}
		if ok {
			c.record(pol, ws, cfg.Hash, "the user trusts it")
			return nil
		}
		why = "the user declined to trust it"
		if err != nil {
			why = fmt.Sprintf("asking the user failed (%v), which counts as declining", err)
		}
		c.decline(key)
	}
	return untrusted(ws, cfg, findings, why)
}

// untrusted is the error for a configuration that stays untrusted: the
// refused mount sources first, when there are any.
func untrusted(ws string, cfg *devcontainer.Config, findings []trust.Finding, why string) error {
	file := cfg.File
	if file == "" {
		file = "the configuration"
	} else if rel, err := filepath.Rel(ws, file); err == nil && filepath.IsLocal(rel) {
		file = rel
	}
	for _, f := range findings {
		if f.Kind != trust.KindMount {
			continue
		}
		if err := CheckHostPath(f.Field+" source", f.Path); err != nil {
			return fmt.Errorf("%w; berth refuses it for the untrusted workspace %s (%s); %s", err, ws, why, howToTrust)
		}
	}
	return fmt.Errorf("%w: %s of %s %s; %s; %s", ErrUntrusted, file, ws, trust.Summary(findings), why, howToTrust)
}

// record keeps a trust decision; failing to only means asking again.
func (c *Client) record(pol TrustPolicy, ws, hash, why string) {
	if pol.Store == nil {
		return
	}
	if err := pol.Store.Trust(ws, hash); err != nil {
		c.log.Warn("could not record the trust decision; berth will ask again", "workspace", ws, "err", err)
		return
	}
	c.log.Info("workspace configuration trusted", "workspace", ws, "why", why, "store", pol.Store.Path())
}

func (c *Client) declinedBefore(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.declined[key]
}

func (c *Client) decline(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.declined == nil {
		c.declined = map[string]bool{}
	}
	c.declined[key] = true
}
