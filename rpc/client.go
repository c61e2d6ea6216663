package rpc

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"

	"github.com/sourcegraph/jsonrpc2"
)

// NotificationFunc receives the server's notifications, in arrival order,
// on the connection's reader goroutine: it must not block for long.
type NotificationFunc func(method string, params json.RawMessage)

// Client is a berth protocol client: the CLI drives an in-process server
// with it, and tests drive the real binary.
type Client struct {
	conn *jsonrpc2.Conn
}

// RequestFunc answers one of the server's requests (berth sends
// window/showMessageRequest to ask for workspace trust). It runs on the
// connection's reader goroutine.
type RequestFunc func(ctx context.Context, method string, params json.RawMessage) (any, error)

// NewClient starts a client on rwc. notify may be nil. The client answers
// the server's requests with an error: it declares no capabilities.
func NewClient(ctx context.Context, rwc io.ReadWriteCloser, log *slog.Logger, notify NotificationFunc) *Client {
	return NewClientAnswering(ctx, rwc, log, notify, nil)
}

// NewClientAnswering is NewClient with answer answering the server's
// requests; nil answers them with an error.
func NewClientAnswering(ctx context.Context, rwc io.ReadWriteCloser, log *slog.Logger, notify NotificationFunc, answer RequestFunc) *Client {
	h := clientHandler{notify: notify, answer: answer}
	stream := newFrameStream(rwc, log, false)
	return &Client{conn: jsonrpc2.NewConn(ctx, stream, h, jsonrpc2.SetLogger(slogAdapter{log}))}
}

// Call sends a request and decodes its result into result (which may be nil).
// A server error comes back as *jsonrpc2.Error.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	return c.conn.Call(ctx, method, params, result)
}

// Notify sends a notification.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	return c.conn.Notify(ctx, method, params)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Done is closed when the connection is gone.
func (c *Client) Done() <-chan struct{} { return c.conn.DisconnectNotify() }

type clientHandler struct {
	notify NotificationFunc
	answer RequestFunc
}

func (h clientHandler) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if !req.Notif {
		if h.answer == nil {
			_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: CodeMethodNotFound, Message: "client handles no requests"})
			return
		}
		var raw json.RawMessage
		if req.Params != nil {
			raw = *req.Params
		}
		res, err := h.answer(ctx, req.Method, raw)
		if err != nil {
			_ = conn.ReplyWithError(ctx, req.ID, toError(err))
			return
		}
		_ = conn.Reply(ctx, req.ID, res)
		return
	}
	if h.notify != nil {
		var raw json.RawMessage
		if req.Params != nil {
			raw = *req.Params
		}
		h.notify(req.Method, raw)
	}
}
