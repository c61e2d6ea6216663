package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/sourcegraph/jsonrpc2"
)

// MaxFrame is the largest message body berth reads. Bigger frames are
// skipped and answered with an error; the connection stays up.
const MaxFrame = 32 << 20

// maxHeaderLine bounds one header line, so garbage without newlines can't
// grow memory.
const maxHeaderLine = 4096

// frameStream is a jsonrpc2.ObjectStream with LSP base-protocol framing that
// survives bad input. jsonrpc2's own codec closes the connection on any
// malformed frame; an editor that sent one bad message should get an error
// for it and keep its session. So frameStream reads whole frames itself,
// answers the malformed ones directly, and hands jsonrpc2 only valid
// messages. Writes use jsonrpc2.VSCodeObjectCodec.
type frameStream struct {
	r     *bufio.Reader
	c     io.Closer
	log   *slog.Logger
	trace bool

	wmu sync.Mutex // guards w and serialises frames
	w   *bufio.Writer
}

func newFrameStream(rwc io.ReadWriteCloser, log *slog.Logger, trace bool) *frameStream {
	return &frameStream{
		r:     bufio.NewReaderSize(rwc, 64<<10),
		w:     bufio.NewWriterSize(rwc, 64<<10),
		c:     rwc,
		log:   log,
		trace: trace,
	}
}

// WriteObject implements jsonrpc2.ObjectStream.
func (s *frameStream) WriteObject(obj any) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.trace {
		if b, err := json.Marshal(obj); err == nil {
			s.log.Debug("send", "frame", string(b))
		}
	}
	if err := (jsonrpc2.VSCodeObjectCodec{}).WriteObject(s.w, obj); err != nil {
		return err
	}
	return s.w.Flush()
}

// Close implements jsonrpc2.ObjectStream.
func (s *frameStream) Close() error { return s.c.Close() }

// frameError is a recoverable problem with one frame.
type frameError struct {
	code int64
	msg  string
	id   json.RawMessage // the request's id when it could be read
}

func (e *frameError) Error() string { return e.msg }

// ReadObject implements jsonrpc2.ObjectStream. It returns only I/O errors;
// bad frames are answered here and skipped.
func (s *frameStream) ReadObject(v any) error {
	for {
		body, err := s.readFrame()
		var fe *frameError
		if errors.As(err, &fe) {
			s.log.Warn("bad frame", "err", fe.msg)
			if werr := s.writeError(fe); werr != nil {
				return werr
			}
			continue
		}
		if err != nil {
			return err
		}
		if s.trace {
			s.log.Debug("recv", "frame", string(body))
		}
		if fe := validate(body); fe != nil {
			s.log.Warn("bad message", "err", fe.msg)
			if fe.id == nil && fe.code == jsonrpc2.CodeInvalidParams {
				continue // a notification gets no answer
			}
			if werr := s.writeError(fe); werr != nil {
				return werr
			}
			continue
		}
		// v is reused by jsonrpc2 across reads; a failed decode must not
		// leave the previous message in it.
		reflect.ValueOf(v).Elem().SetZero()
		if err := json.Unmarshal(body, v); err != nil {
			if werr := s.writeError(&frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: " + err.Error(), id: idOf(body)}); werr != nil {
				return werr
			}
			continue
		}
		return nil
	}
}

// readFrame reads one frame's headers and body.
func (s *frameStream) readFrame() ([]byte, error) {
	length := -1
	var bad string
	sawHeader := false
	for {
		line, tooLong, err := s.readLine()
		if err != nil {
			if err == io.EOF && sawHeader {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if tooLong {
			sawHeader = true
			bad = fmt.Sprintf("header line longer than %d bytes", maxHeaderLine)
			continue
		}
		if line == "" {
			if !sawHeader {
				continue // tolerate stray blank lines between frames
			}
			break
		}
		sawHeader = true
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			bad = fmt.Sprintf("malformed header line %q", truncate(line, 80))
			continue
		}
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 {
				bad = fmt.Sprintf("invalid Content-Length %q", strings.TrimSpace(value))
				continue
			}
			length = n
		}
	}
	if length < 0 {
		if bad == "" {
			bad = "frame has no Content-Length header"
		}
		return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + bad}
	}
	if bad != "" || length > MaxFrame {
		// Skip the body so the next frame starts where it should.
		if _, err := io.CopyN(io.Discard, s.r, int64(length)); err != nil {
			return nil, err
		}
		if bad != "" {
			return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + bad}
		}
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: fmt.Sprintf("invalid request: frame of %d bytes exceeds the %d-byte limit", length, MaxFrame)}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(s.r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// readLine reads one header line; a line over maxHeaderLine is consumed
// and reported as tooLong rather than kept.
func (s *frameStream) readLine() (line string, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		if len(buf)+len(chunk) <= maxHeaderLine {
			buf = append(buf, chunk...)
		} else {
			tooLong = true
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", false, err
		}
		if tooLong {
			return "", true, nil
		}
		return strings.TrimRight(string(buf), "\r\n"), false, nil
	}
}

func (s *frameStream) writeError(fe *frameError) error {
	id := fe.id
	if id == nil {
		id = json.RawMessage("null")
	}
	return s.WriteObject(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   jsonrpc2.Error  `json:"error"`
	}{"2.0", id, jsonrpc2.Error{Code: fe.code, Message: fe.msg}})
}

// validate checks that body is a single JSON-RPC 2.0 request, notification
// or response that jsonrpc2 can take.
func validate(body []byte) *frameError {
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) {
		return &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: body is not valid JSON"}
	}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: batches are not supported; send one message per frame"}
	}
	var m struct {
		JSONRPC *string         `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  *string         `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: a message must be a JSON object"}
	}
	id := m.ID
	if id != nil && !validID(id) {
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: id must be a string or an integer from 0 to 2^64-1"}
	}
	switch {
	case m.JSONRPC == nil || *m.JSONRPC != "2.0":
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: "jsonrpc" must be "2.0"`, id: id}
	case m.Method != nil && (m.Result != nil || m.Error != nil):
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: a message has either method or result/error", id: id}
	case m.Method == nil && m.Result == nil && m.Error == nil:
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: missing "method"`, id: id}
	case m.Method != nil && *m.Method == "":
		return &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: empty "method"`, id: id}
	case m.Params != nil && !isObjectOrArray(m.Params):
		return &frameError{code: jsonrpc2.CodeInvalidParams, msg: `invalid params: "params" must be an object or an array`, id: id}
	}
	return nil
}

// validID accepts what jsonrpc2 can echo back exactly: a string or an
// integer from 0 to 2^64-1.
func validID(id json.RawMessage) bool {
	var n uint64
	if json.Unmarshal(id, &n) == nil {
		return true
	}
	var s string
	return json.Unmarshal(id, &s) == nil
}

func isObjectOrArray(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[' || string(t) == "null")
}

func idOf(body []byte) json.RawMessage {
	var m struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &m) == nil && m.ID != nil && validID(m.ID) {
		return m.ID
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
