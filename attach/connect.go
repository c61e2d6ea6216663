package attach

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berthdev/berth/rpc"
)

// ConnectOptions configure Connect.
type ConnectOptions struct {
	// Addr is unix:PATH, tcp:HOST:PORT or HOST:PORT.
	Addr string
	// TokenFile (--tcp-token-file), else Token ($BERTH_TOKEN), else the
	// default token file for the port supplies a TCP connection's token.
	TokenFile string
	Token     string
}

// dialTimeout bounds connecting to berth.
const dialTimeout = 10 * time.Second

// Connect bridges stdin and stdout to a running berth: it forwards the
// client's frames, adding the token to its initialize on TCP, and berth's
// frames back, until berth hangs up or, after stdin ends, has answered.
//
// Goroutines: one copies berth to stdout and is waited for. Another copies
// stdin to berth; when berth hangs up first it may stay blocked reading
// stdin, which only the process's exit ends.
func Connect(ctx context.Context, o ConnectOptions, stdin io.Reader, stdout io.Writer) error {
	t, err := ParseTarget(o.Addr)
	if err != nil {
		return err
	}
	var token string
	if t.Network == "tcp" {
		if token, err = ResolveToken(o.TokenFile, o.Token, t.Port); err != nil {
			return err
		}
	}
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, t.Network, t.Address)
	if err != nil {
		return fmt.Errorf("connect %s: %w", o.Addr, err)
	}
	defer nc.Close()
	if uc, ok := nc.(*net.UnixConn); ok {
		// Don't hand the editor's workspace to another user's server.
		uid, err := PeerUID(uc)
		if err != nil {
			return fmt.Errorf("connect %s: %w", o.Addr, err)
		}
		if uid != os.Geteuid() && uid != 0 {
			return fmt.Errorf("connect %s: the server runs as uid %d, neither you nor root", o.Addr, uid)
		}
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	back := make(chan error, 1)
	go func() {
		_, err := io.Copy(stdout, nc)
		back <- err
	}()
	fwd := make(chan error, 1)
	go func() { fwd <- forward(nc, bufio.NewReader(stdin), token) }()

	select {
	case err = <-back:
	case err = <-fwd:
		if err == nil {
			// stdin ended: let berth see EOF and finish answering.
			if cw, ok := nc.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		} else {
			nc.Close()
		}
		if berr := <-back; err == nil {
			err = berr
		}
	}
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// forward copies the client's input to berth, with token added to its
// first frame when that is an initialize. It returns nil at the end of
// the input.
func forward(w io.Writer, r *bufio.Reader, token string) error {
	if token != "" {
		header, body, err := readFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) && len(header) == 0 {
				return nil
			}
			return err
		}
		if out, ok := withToken(body, token); ok {
			header, body = []byte("Content-Length: "+strconv.Itoa(len(out))+"\r\n\r\n"), out
		}
		if _, err := w.Write(append(header, body...)); err != nil {
			return err
		}
	}
	_, err := io.Copy(w, r)
	return err
}

// readFrame reads one LSP frame: its header block as read, and its body.
func readFrame(r *bufio.Reader) (header, body []byte, err error) {
	length := -1
	for {
		line, err := r.ReadSlice('\n')
		header = append(header, line...)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return header, nil, errors.New("client frame header line too long")
			}
			return header, nil, err
		}
		text := strings.TrimSpace(string(line))
		if text == "" {
			if length >= 0 {
				break
			}
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 || n > rpc.MaxFrame {
				return header, nil, fmt.Errorf("client frame: bad Content-Length %q", value)
			}
			length = n
		}
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return header, nil, err
	}
	return header, body, nil
}

// withToken returns an initialize request's body with
// initializationOptions.token set, the rest as the client sent it; ok is
// false for any other message.
func withToken(body []byte, token string) ([]byte, bool) {
	var m map[string]json.RawMessage
	var method string
	if json.Unmarshal(body, &m) != nil || json.Unmarshal(m["method"], &method) != nil || method != "initialize" {
		return nil, false
	}
	params := map[string]json.RawMessage{}
	if raw := m["params"]; raw != nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if json.Unmarshal(raw, &params) != nil {
			return nil, false // an array: berth will say so
		}
	}
	opts := map[string]json.RawMessage{}
	if raw := params["initializationOptions"]; raw != nil {
		_ = json.Unmarshal(raw, &opts) // anything but an object is replaced
		if opts == nil {
			opts = map[string]json.RawMessage{}
		}
	}
	var err error
	if opts["token"], err = json.Marshal(token); err != nil {
		return nil, false
	}
	if params["initializationOptions"], err = json.Marshal(opts); err != nil {
		return nil, false
	}
	if m["params"], err = json.Marshal(params); err != nil {
		return nil, false
	}
	out, err := json.Marshal(m)
	return out, err == nil
}
