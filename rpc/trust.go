package rpc

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/berthdev/berth/session"
)

// ConfirmTimeout is how long berth waits for the user to answer a trust
// question; no answer declines.
const ConfirmTimeout = 5 * time.Minute

// confirmTimeout is ConfirmTimeout; tests shorten it.
var confirmTimeout = ConfirmTimeout

// askSeq numbers trust questions, for their request ids.
var askSeq atomic.Int64

// The actions of the trust question. Only TrustAction trusts.
const (
	TrustAction   = "Trust"
	DeclineAction = "Don't trust"
)

// trustPolicy is the session's trust policy for this connection: what the
// client vouches for, and whether berth can ask its user.
func (c *conn) trustPolicy(trusted bool, caps *ClientCapabilities) session.TrustPolicy {
	p := session.TrustPolicy{Store: c.s.opts.Trust, Trusted: trusted}
	switch {
	case caps != nil && caps.Window != nil && caps.Window.ShowMessage != nil:
		p.Confirm = c.confirm
	case !c.editor:
		p.Why = "a berth command doesn't ask"
	default:
		p.Why = "this client can't be asked: it declares no capabilities.window.showMessage in initialize"
	}
	return p
}

// confirm asks the client's user with window/showMessageRequest. A null
// answer, an error, or no answer within ConfirmTimeout declines.
func (c *conn) confirm(ctx context.Context, req session.TrustRequest) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	id := jsonrpc2.ID{Str: fmt.Sprintf("berth-trust-%d", askSeq.Add(1)), IsString: true}
	var item *protocol.MessageActionItem
	err := c.conn().Call(ctx, "window/showMessageRequest", protocol.ShowMessageRequestParams{
		Type:    protocol.MessageTypeWarning,
		Message: trustQuestion(req),
		Actions: []protocol.MessageActionItem{{Title: TrustAction}, {Title: DeclineAction}},
	}, &item, jsonrpc2.PickID(id))
	if err != nil {
		if ctx.Err() != nil {
			// Take the question back: LSP lets a server cancel its requests.
			c.notify("$/cancelRequest", struct {
				ID jsonrpc2.ID `json:"id"`
			}{id})
			if context.Cause(ctx) == context.DeadlineExceeded {
				return false, fmt.Errorf("no answer within %v", confirmTimeout)
			}
		}
		return false, err
	}
	return item != nil && item.Title == TrustAction, nil
}

// trustQuestion is the message of the trust question: the workspace, and
// what its configuration would do.
func trustQuestion(req session.TrustRequest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "berth: the container configuration of %s", req.Workspace)
	if req.ConfigFile != "" {
		fmt.Fprintf(&b, " (%s)", req.ConfigFile)
	}
	b.WriteString(" runs commands or reaches host paths:")
	for _, f := range req.Findings {
		b.WriteString("\n• ")
		b.WriteString(f.String())
	}
	b.WriteString("\nTrust it? Only trust configurations you have reviewed or whose authors you trust.")
	return b.String()
}
