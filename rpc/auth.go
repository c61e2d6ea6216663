package rpc

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrUnauthorized is a client that may not drive berth: it sent no valid
// token, or it is another user's process. Its connection is closed.
var ErrUnauthorized = errors.New("unauthorized")

// ErrTooManyConnections is a connection over the server's cap.
var ErrTooManyConnections = errors.New("too many connections")

// ConnOptions configure one connection served by ServeConnWith.
type ConnOptions struct {
	// Token, when not empty, is the secret the client must send as
	// initialize's initializationOptions.token before anything else. Until
	// it has, any message, even a malformed one, is answered with
	// CodeUnauthorized and the connection is closed. Empty means the
	// connection needs none: stdio, or a peer whose uid was checked.
	Token string
	// InitTimeout, when positive, closes a connection that has not
	// completed initialize within it.
	InitTimeout time.Duration
}

// maxUnauthFrame bounds the frames read before the token: an initialize
// is small, and a stranger must not make berth hold 32 MiB.
const maxUnauthFrame = 1 << 20

// refuseWrite bounds the write of the last error frame to a client that
// may not be reading.
const refuseWrite = 2 * time.Second

// errRefused ends the reader after a refusal; jsonrpc2 then closes the
// connection.
var errRefused = fmt.Errorf("connection refused: %w", ErrUnauthorized)

// Refuse writes one error frame for err, with "id": null, to a connection
// berth will close without serving it: over the connection cap, or a peer
// of another user. Its code comes from the one mapping, toError.
func Refuse(w io.Writer, err error) error {
	setWriteDeadline(w, time.Now().Add(refuseWrite))
	fs := newFrameStream(nopCloser{w}, nil, false)
	je := toError(err)
	return fs.writeError(&frameError{code: je.Code, msg: je.Message})
}

type nopCloser struct{ io.Writer }

func (nopCloser) Read([]byte) (int, error) { return 0, io.EOF }
func (nopCloser) Close() error             { return nil }

func setWriteDeadline(w any, t time.Time) {
	if d, ok := w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(t)
	}
}

// admit checks the first message on a connection that needs a token: it
// must be an initialize request carrying it. It returns nil when the
// client may go on.
func (s *frameStream) admit(body []byte) error {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(body, &m) // validated already
	var id json.RawMessage
	if m.Method != nil && m.ID != nil {
		id = m.ID // a request: its refusal answers it
	}
	if m.Method == nil || *m.Method != "initialize" || id == nil {
		return s.refuse(id, "send initialize with initializationOptions.token first")
	}
	var p struct {
		InitializationOptions json.RawMessage `json:"initializationOptions"`
	}
	var o struct {
		Token json.RawMessage `json:"token"`
	}
	_ = json.Unmarshal(m.Params, &p)
	_ = json.Unmarshal(p.InitializationOptions, &o)
	var token string
	switch {
	case o.Token == nil:
		return s.refuse(id, "initialize has no initializationOptions.token; this berth requires the token from its token file (or BERTH_TOKEN)")
	case json.Unmarshal(o.Token, &token) != nil:
		return s.refuse(id, "initializationOptions.token must be a string")
	case subtle.ConstantTimeCompare([]byte(token), s.token) != 1:
		return s.refuse(id, "wrong initializationOptions.token")
	}
	s.token = nil
	s.fr.limit = 0
	return nil
}

// refuse answers a client that has not shown the token, and ends the
// connection.
func (s *frameStream) refuse(id json.RawMessage, why string) error {
	s.log.Warn("refused a client without a valid token", "err", why)
	setWriteDeadline(s.c, time.Now().Add(refuseWrite))
	je := toError(fmt.Errorf("%w: %s", ErrUnauthorized, why))
	_ = s.writeError(&frameError{code: je.Code, msg: je.Message, id: id})
	return errRefused
}

// redact hides secrets in a received frame before --trace logs it:
// initialize's initializationOptions.token. JSON keys match without
// regard to case, as encoding/json matches them.
func redact(body []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		if bytes.Contains(bytes.ToLower(body), []byte("token")) {
			return []byte(`<frame withheld: not a JSON object>`)
		}
		return body
	}
	changed := false
	for k, params := range m {
		if !strings.EqualFold(k, "params") {
			continue
		}
		var p map[string]json.RawMessage
		if json.Unmarshal(params, &p) != nil {
			continue
		}
		for pk, opts := range p {
			if !strings.EqualFold(pk, "initializationOptions") {
				continue
			}
			var o map[string]json.RawMessage
			if json.Unmarshal(opts, &o) != nil {
				continue
			}
			for ok := range o {
				if strings.EqualFold(ok, "token") {
					o[ok] = json.RawMessage(`"[redacted]"`)
					changed = true
				}
			}
			p[pk], _ = json.Marshal(o)
		}
		m[k], _ = json.Marshal(p)
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(m)
	if err != nil {
		return []byte(`<frame withheld>`)
	}
	return out
}
