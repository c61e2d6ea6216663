package rest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
)

// handshakeTimeout bounds a websocket's opening handshake.
const handshakeTimeout = 5 * time.Second

type wsDialer struct {
	netDial    func(ctx context.Context, network, addr string) (net.Conn, error)
	netDialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	tls        *tls.Config // for the TLS gorilla does itself, through a proxy
	proxy      func(*http.Request) (*url.URL, error)
}

// Websocket opens the websocket at path (which starts with /1.0). ctx
// bounds the handshake only; closing the connection ends it.
func (c *Client) Websocket(ctx context.Context, path string, query url.Values) (*websocket.Conn, error) {
	scheme := "ws"
	if c.Remote() {
		scheme = "wss"
	}
	d := websocket.Dialer{
		NetDialContext:    c.ws.netDial,
		NetDialTLSContext: c.ws.netDialTLS,
		TLSClientConfig:   c.ws.tls,
		Proxy:             c.ws.proxy,
		HandshakeTimeout:  handshakeTimeout,
	}
	h := http.Header{}
	if c.userAgent != "" {
		h.Set("User-Agent", c.userAgent)
	}
	conn, resp, err := d.DialContext(ctx, c.url(scheme, path, query), h)
	if err != nil {
		if resp != nil {
			// The daemon refused the upgrade: its envelope says why.
			defer resp.Body.Close()
			if _, derr := decode(resp); derr != nil {
				return nil, derr
			}
		}
		return nil, err
	}
	return conn, nil
}

// OperationWebsocket opens one of an operation's websockets by its secret.
func (c *Client) OperationWebsocket(ctx context.Context, opID, secret string) (*websocket.Conn, error) {
	return c.Websocket(ctx, "/1.0/operations/"+url.PathEscape(opID)+"/websocket", url.Values{"secret": {secret}})
}

// Events opens the events websocket for the given types (lifecycle,
// logging, operation; all when none is given).
func (c *Client) Events(ctx context.Context, types ...string) (*websocket.Conn, error) {
	q := url.Values{}
	if len(types) > 0 {
		t := types[0]
		for _, s := range types[1:] {
			t += "," + s
		}
		q.Set("type", t)
	}
	return c.Websocket(ctx, "/1.0/events", q)
}

// SFTP opens an SFTP session to an instance's filesystem: the HTTP
// connection, upgraded. It works on stopped instances too. ctx bounds the
// upgrade only; closing the connection ends the session.
func (c *Client) SFTP(ctx context.Context, name string) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	req, err := http.NewRequest(http.MethodGet, c.url("", instancePath(name, "sftp"), nil), nil)
	if err != nil {
		stop()
		_ = conn.Close()
		return nil, err
	}
	req.Header.Set("Upgrade", "sftp")
	req.Header.Set("Connection", "Upgrade")
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	br := bufio.NewReader(conn)
	resp, err := func() (*http.Response, error) {
		if err := req.Write(conn); err != nil {
			return nil, err
		}
		return http.ReadResponse(br, req)
	}()
	if !stop() || err == nil && ctx.Err() != nil {
		err = errors.Join(ctx.Err(), err)
	}
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		_, err = decode(resp)
		if err == nil {
			err = &StatusError{Code: resp.StatusCode, Msg: "sftp: " + resp.Status}
		}
	}
	if err == nil && resp.Header.Get("Upgrade") != "sftp" {
		err = fmt.Errorf("sftp: the daemon upgraded to %q", resp.Header.Get("Upgrade"))
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return &bufferedConn{Conn: conn, r: br}, nil
}

// bufferedConn reads what the response's reader may already hold first.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
