package rest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/gorilla/websocket"
)

// ExecStreams connects a non-interactive exec's websockets.
type ExecStreams struct {
	Stdin  io.Reader // nil: the command's stdin is empty
	Stdout io.Writer // nil: discarded
	Stderr io.Writer // nil: discarded
	// Control, when set, gets the control websocket before Exec returns.
	// Signals go there as ExecControl messages. incusd closes it when the
	// command ends.
	Control func(*websocket.Conn)
	// DataDone, when set, is closed once stdout and stderr ended, all
	// written.
	DataDone chan bool
}

// Exec starts a command in an instance. With req.WaitForWS it connects the
// command's stdin, stdout, stderr and control websockets to s; incusd
// starts the command once they are all open. ctx bounds the request and the
// handshakes, not the streams.
//
// Goroutines: one copies s.Stdin to the command until Stdin ends (the
// caller must end it, by EOF or by closing it, once done); one copies each
// of stdout and stderr until incusd ends it; one reads the control and
// stdin websockets for incusd's pings; one closes each websocket as its
// stream ends and then closes s.DataDone. All of them end when the
// operation's websockets close, but the stdin copier, which ends with
// s.Stdin.
func (c *Client) Exec(ctx context.Context, name string, req ExecPost, s *ExecStreams) (*Operation, error) {
	op, err := c.operation(ctx, http.MethodPost, instancePath(name, "exec"), req, "")
	if err != nil {
		return nil, err
	}
	if !req.WaitForWS {
		return op, nil
	}
	if req.Interactive {
		return nil, fmt.Errorf("exec: interactive sessions: not supported")
	}
	if s == nil {
		s = &ExecStreams{}
	}
	fds := map[string]string{}
	if m, ok := op.Metadata["fds"].(map[string]any); ok {
		for k, v := range m {
			if v, ok := v.(string); ok {
				fds[k] = v
			}
		}
	}
	// Open them all first, so that a failure leaves nothing running.
	var conns [3]*websocket.Conn // stdin, stdout, stderr
	var ctl *websocket.Conn
	closeAll := func() {
		for _, c := range append(conns[:], ctl) {
			if c != nil {
				_ = c.Close()
			}
		}
	}
	if secret := fds["control"]; secret != "" {
		if ctl, err = c.OperationWebsocket(ctx, op.ID, secret); err != nil {
			return nil, fmt.Errorf("exec: control websocket: %w", err)
		}
	}
	for i := range conns {
		secret := fds[fmt.Sprint(i)]
		if secret == "" {
			continue
		}
		if conns[i], err = c.OperationWebsocket(ctx, op.ID, secret); err != nil {
			closeAll()
			return nil, fmt.Errorf("exec: websocket %d: %w", i, err)
		}
	}

	if ctl != nil {
		go drainControl(ctl)
		if s.Control != nil {
			s.Control(ctl)
		}
	}
	var stdinDone <-chan struct{}
	if conns[0] != nil {
		go drainControl(conns[0])
		stdinDone = mirrorIn(conns[0], s.Stdin)
	}
	var outs []<-chan struct{}
	for i, w := range []io.Writer{s.Stdout, s.Stderr} {
		if conns[i+1] == nil {
			continue
		}
		if w == nil {
			w = io.Discard
		}
		outs = append(outs, mirrorOut(conns[i+1], w))
	}
	go func() {
		var once sync.Once
		closeStdin := func() {
			if conns[0] != nil {
				once.Do(func() { _ = conns[0].Close() })
			}
		}
		for _, done := range outs {
			for waiting := true; waiting; {
				select {
				case <-stdinDone:
					stdinDone = nil
					closeStdin()
				case <-done:
					waiting = false
				}
			}
		}
		closeStdin()
		if s.DataDone != nil {
			close(s.DataDone)
		}
	}()
	return op, nil
}

// drainControl reads conn until it fails, so that incusd's pings and its
// close are answered; it reads nothing else.
func drainControl(conn *websocket.Conn) {
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// mirrorIn copies r to conn as binary messages and then sends the empty
// text message that ends the stream. A nil r ends it at once.
func mirrorIn(conn *websocket.Conn, r io.Reader) <-chan struct{} {
	done := make(chan struct{})
	if r == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if werr := conn.WriteMessage(websocket.BinaryMessage, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = conn.WriteMessage(websocket.TextMessage, nil) // the barrier: stdin ended
				return
			}
		}
	}()
	return done
}

// mirrorOut copies conn's binary messages to w until a text message (the
// barrier), a close or an error, then closes conn.
func mirrorOut(conn *websocket.Conn, w io.Writer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer conn.Close()
		for {
			typ, r, err := conn.NextReader()
			if err != nil || typ != websocket.BinaryMessage {
				return
			}
			if _, err := io.Copy(w, r); err != nil {
				return
			}
		}
	}()
	return done
}
