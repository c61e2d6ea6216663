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
	"runtime"
	rtdebug "runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/berthdev/berth/secrets"
)

// MaxFrame is the largest message body berth reads. Bigger frames are
// skipped and answered with an error; the connection stays up.
const MaxFrame = 32 << 20

// maxHeaderLine bounds one header line, so garbage without newlines can't
// grow memory.
const maxHeaderLine = 4096

// readBuffer is the size of a connection's read and write buffers.
const readBuffer = 64 << 10

// headerPrefix is what the reader resynchronises on, in any case.
const headerPrefix = "content-length:"

// releaseAbove is the body size from which a frame's memory is handed back
// to the OS once it has been handled; see releaseLater.
const releaseAbove = 4 << 20

// frameStream is a jsonrpc2.ObjectStream with LSP base-protocol framing that
// survives bad input. jsonrpc2's own codec closes the connection on any
// malformed frame; an editor that sent one bad message should get an error
// for it and keep its session. So frameStream reads whole frames itself,
// answers the malformed ones directly, and hands jsonrpc2 only valid
// messages. Writes use jsonrpc2.VSCodeObjectCodec.
type frameStream struct {
	fr    frameReader
	big   bool        // the last frame was over releaseAbove
	done  atomic.Bool // Close was called
	c     io.Closer
	log   *slog.Logger
	trace bool
	// token is what the client must show before anything is served (see
	// admit); nil once it has, or when none is needed. Only the reader
	// touches it.
	token []byte

	// params is the last request's params when they were too big to pass
	// through jsonrpc2, which copies them several times over; Handle takes
	// them back. The reader runs Handle before it reads again.
	params json.RawMessage

	wmu  sync.Mutex // guards w and obuf, and serialises frames
	w    *bufio.Writer
	obuf []byte // writeOutput's frame buffer, kept for the next notification
}

func newFrameStream(rwc io.ReadWriteCloser, log *slog.Logger, trace bool) *frameStream {
	return &frameStream{
		fr:    frameReader{r: bufio.NewReaderSize(rwc, readBuffer)},
		w:     bufio.NewWriterSize(rwc, readBuffer),
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
func (s *frameStream) Close() error {
	s.done.Store(true)
	return s.c.Close()
}

// frameError is a recoverable problem with one frame.
type frameError struct {
	code int64
	msg  string
	id   json.RawMessage // the request's id when it could be read
}

func (e *frameError) Error() string { return e.msg }

func parseError(format string, args ...any) *frameError {
	return &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + fmt.Sprintf(format, args...)}
}

// ReadObject implements jsonrpc2.ObjectStream. It returns only I/O errors;
// bad frames are answered here and skipped.
func (s *frameStream) ReadObject(v any) error {
	if s.done.Load() {
		// The read buffer may still hold frames; after exit they must
		// not run.
		return io.ErrClosedPipe
	}
	if s.big {
		// Handled: inline, or started in its own goroutine.
		s.big = false
		releaseLater()
	}
	for {
		body, err := s.fr.readFrame()
		var fe *frameError
		if errors.As(err, &fe) {
			s.log.Warn("bad frame", "err", fe.msg)
			if s.token != nil {
				return s.refuse(nil, "send initialize with initializationOptions.token first")
			}
			if werr := s.writeError(fe); werr != nil {
				return werr
			}
			continue
		}
		if err != nil {
			return err
		}
		s.big = s.big || len(body) > releaseAbove
		if s.trace {
			// The secrets an initialize carries are not yet known to the
			// masker, nor is a token ever logged.
			s.log.Debug("recv", "frame", secrets.RedactJSON(redact(body)))
		}
		params, fe := check(body)
		if fe != nil {
			s.log.Warn("bad message", "err", fe.msg)
			if s.token != nil {
				return s.refuse(fe.id, "send initialize with initializationOptions.token first")
			}
			if fe.id == nil && fe.code == jsonrpc2.CodeInvalidParams {
				continue // a notification gets no answer
			}
			if werr := s.writeError(fe); werr != nil {
				return werr
			}
			continue
		}
		if s.token != nil {
			if err := s.admit(body); err != nil {
				return err
			}
		}
		s.params = nil
		if len(params) > stashAbove {
			if rest, ok := withoutParams(body, params); ok {
				body, s.params = rest, params
			}
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

// stashAbove is the params size from which ReadObject keeps params out of
// jsonrpc2: it decodes them into interface{} values and encodes them again,
// so a 30 MB request would cost about ten times that.
const stashAbove = 64 << 10

// withoutParams returns body with params, which must be a subslice of it,
// replaced by {}.
func withoutParams(body, params []byte) ([]byte, bool) {
	off := cap(body) - cap(params)
	if off < 0 || off+len(params) > len(body) || len(params) == 0 || &body[off] != &params[0] {
		return nil, false // not a subslice: leave the message alone
	}
	rest := make([]byte, 0, len(body)-len(params)+2)
	rest = append(rest, body[:off]...)
	rest = append(rest, "{}"...)
	return append(rest, body[off+len(params):]...), true
}

// takeParams returns, once, the params ReadObject kept back for the message
// it returned last, or nil.
func (s *frameStream) takeParams() json.RawMessage {
	p := s.params
	s.params = nil
	return p
}

// release debounces releaseLater.
var release struct {
	mu    sync.Mutex
	timer *time.Timer  // runs the release; nil until the first large frame
	count atomic.Int64 // releases done, for tests
}

// releaseDelay gives a large frame's handler time to finish with it.
const releaseDelay = time.Second

// releaseLater returns freed memory to the OS a little after a large frame
// has been handled; each large frame postpones it. Nothing keeps the frame
// alive, but encoding/json pools its encode buffers (and jsonrpc2 encodes
// params again while decoding a request), so one GC moves a frame-sized
// buffer to the pool's victim cache and only the next frees it; and Go's
// scavenger returns freed heap to the OS only slowly. A sidecar that idles
// for hours would stay tens of MB bigger after one large message.
func releaseLater() {
	release.mu.Lock()
	defer release.mu.Unlock()
	if release.timer != nil {
		release.timer.Reset(releaseDelay)
		return
	}
	release.timer = time.AfterFunc(releaseDelay, func() {
		runtime.GC()
		rtdebug.FreeOSMemory()
		release.count.Add(1)
	})
}

// FrameReader reads LSP base-protocol frames as berth's own connections
// do: a malformed frame is an error that IsFrameError recognises, after
// which reading goes on with the next frame. berth lsp relays frames with
// it without decoding them into jsonrpc2 messages.
type FrameReader struct{ fr frameReader }

// NewFrameReader reads frames from r; bodies over limit bytes (MaxFrame
// when 0) are skipped with a frame error.
func NewFrameReader(r io.Reader, limit int) *FrameReader {
	return &FrameReader{fr: frameReader{r: bufio.NewReaderSize(r, readBuffer), limit: limit}}
}

// ReadFrame returns the next frame's body, which the caller owns.
func (r *FrameReader) ReadFrame() ([]byte, error) { return r.fr.readFrame() }

// IsFrameError says err is about one bad frame, not the stream.
func IsFrameError(err error) bool {
	var fe *frameError
	return errors.As(err, &fe)
}

// WriteFrame writes body as one frame, in one Write when it is small.
func WriteFrame(w io.Writer, body []byte) error {
	hdr := "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if len(body) <= readBuffer {
		buf := make([]byte, 0, len(hdr)+len(body))
		_, err := w.Write(append(append(buf, hdr...), body...))
		return err
	}
	if _, err := io.WriteString(w, hdr); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// frameReader reads LSP base-protocol frames. After a bad frame whose end
// it can't know, it resynchronises on the next "Content-Length:" anywhere
// in the input, so that one bad frame never spoils the ones after it.
// Memory stays bounded by r's buffer, maxHeaderLine and MaxFrame.
type frameReader struct {
	r      *bufio.Reader
	resync bool  // skip to the next Content-Length header before reading a frame
	skip   int64 // bytes to discard first: the body of a frame already answered
	limit  int   // the largest body read; 0 means MaxFrame
}

// readFrame reads one frame's headers and body. Its errors are I/O errors
// or a *frameError for a bad frame, after which the next call reads on.
func (fr *frameReader) readFrame() ([]byte, error) {
	if fr.skip > 0 {
		n, err := io.CopyN(io.Discard, fr.r, fr.skip)
		fr.skip -= n
		if err != nil {
			return nil, unexpected(err)
		}
	}
	if fr.resync {
		if err := fr.skipToHeader(); err != nil {
			return nil, err
		}
		fr.resync = false
	}
	length := -1
	var bad string
	sawHeader := false
	for {
		line, long, cut, err := fr.headerLine()
		if err != nil {
			switch {
			case !sawHeader && isBlank(line):
				if err == io.ErrUnexpectedEOF {
					err = io.EOF
				}
			case err == io.EOF:
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if cut {
			if isBlank(line) {
				continue // spaces before a header
			}
			// The next frame starts at the Content-Length header.
			return nil, parseError("expected a Content-Length header, got %q", truncate(string(line), 80))
		}
		text := bytes.TrimRight(line, "\r\n")
		name, value, isHeader := cutHeader(text)
		switch {
		case long && (sawHeader || isHeader):
			// Part of a frame: its body, if it has a length, is skipped.
			sawHeader = true
			bad = fmt.Sprintf("header line longer than %d bytes", maxHeaderLine)
			continue
		case long:
			fr.resync = true
			return nil, parseError("expected a Content-Length header, got %d bytes of something else", maxHeaderLine)
		case isBlank(text) && !sawHeader:
			continue // tolerate stray blank lines between frames
		case isBlank(text):
		case !isHeader:
			fr.resync = true
			return nil, parseError("malformed header line %q", truncate(string(text), 80))
		case strings.EqualFold(name, "Content-Length"):
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 {
				fr.resync = true
				return nil, parseError("invalid Content-Length %q", truncate(value, 80))
			}
			sawHeader, length = true, n
			continue
		default:
			sawHeader = true // other headers, such as Content-Type, are ignored
			continue
		}
		break // the blank line that ends the headers
	}
	if length < 0 {
		fr.resync = true
		if bad == "" {
			bad = "frame has no Content-Length header"
		}
		return nil, parseError("%s", bad)
	}
	limit := fr.limit
	if limit == 0 {
		limit = MaxFrame
	}
	if bad != "" || length > limit {
		// Answered now; the body is skipped before the next frame.
		fr.skip = int64(length)
		if bad != "" {
			return nil, parseError("%s", bad)
		}
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: fmt.Sprintf("invalid request: frame of %d bytes exceeds the %d-byte limit", length, limit)}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		return nil, unexpected(err)
	}
	return body, nil
}

// headerLine reads one header line, its '\n' included, keeping its first
// maxHeaderLine bytes; long reports a longer line. It stops short, with cut
// set, at a "Content-Length:" that doesn't start the line: what came before
// it is then garbage, and the input is left at the header.
func (fr *frameReader) headerLine() (line []byte, long, cut bool, err error) {
	n := 0 // bytes of the line read so far
	take := func(b []byte) {
		if room := maxHeaderLine - len(line); room > 0 {
			line = append(line, b[:min(len(b), room)]...)
		}
		n += len(b)
		long = long || n > maxHeaderLine
		_, _ = fr.r.Discard(len(b))
	}
	for {
		buf, _ := fr.r.Peek(fr.r.Buffered())
		from := 0
		if n == 0 {
			from = 1
		}
		end := bytes.IndexByte(buf, '\n')
		if end < 0 {
			end = len(buf)
		}
		if i := indexHeader(buf[:end], from); i >= 0 {
			take(buf[:i])
			return line, long, true, nil
		}
		if end < len(buf) {
			take(buf[:end+1])
			return line, long, false, nil
		}
		// No end of line yet: keep what may be the start of a header.
		if k := len(buf) - (len(headerPrefix) - 1); k > 0 {
			take(buf[:k])
		}
		if err := fr.fill(); err != nil {
			rest, _ := fr.r.Peek(fr.r.Buffered())
			take(rest)
			if n > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return line, long, false, err
		}
	}
}

// skipToHeader discards input up to the next "Content-Length:" in any case,
// holding no more than the read buffer.
func (fr *frameReader) skipToHeader() error {
	for {
		buf, _ := fr.r.Peek(fr.r.Buffered())
		if i := indexHeader(buf, 0); i >= 0 {
			_, _ = fr.r.Discard(i)
			return nil
		}
		if k := len(buf) - (len(headerPrefix) - 1); k > 0 {
			_, _ = fr.r.Discard(k)
		}
		if err := fr.fill(); err != nil {
			return err
		}
	}
}

// fill reads more input into the buffer, which callers keep nearly empty;
// it fails only when no more input can come.
func (fr *frameReader) fill() error {
	_, err := fr.r.Peek(fr.r.Buffered() + 1)
	return err
}

// indexHeader returns the index of the first headerPrefix, in any case, in b
// at or after from, or -1.
func indexHeader(b []byte, from int) int {
	for i := from; i+len(headerPrefix) <= len(b); i++ {
		if b[i]|0x20 != 'c' {
			continue
		}
		j := 1
		for ; j < len(headerPrefix); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != headerPrefix[j] {
				break
			}
		}
		if j == len(headerPrefix) {
			return i
		}
	}
	return -1
}

// cutHeader splits a "Name: value" line; the name must be an HTTP token.
func cutHeader(line []byte) (name, value string, ok bool) {
	n, v, ok := bytes.Cut(line, []byte(":"))
	n = bytes.TrimSpace(n)
	if !ok || len(n) == 0 {
		return "", "", false
	}
	for _, c := range n {
		if !isTokenChar(c) {
			return "", "", false
		}
	}
	return string(n), string(bytes.TrimSpace(v)), true
}

func isTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isBlank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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
	_, fe := check(body)
	return fe
}

// span is a JSON value left where it is: its UnmarshalJSON keeps the slice
// of the input that json.Unmarshal hands it, without a copy.
type span []byte

func (s *span) UnmarshalJSON(b []byte) error {
	*s = b
	return nil
}

// check is validate that also returns the message's params as a subslice
// of body, or nil.
func check(body []byte) (json.RawMessage, *frameError) {
	trimmed := bytes.TrimSpace(body)
	if !json.Valid(trimmed) {
		return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: body is not valid JSON"}
	}
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: batches are not supported; send one message per frame"}
	}
	var m struct {
		JSONRPC *string         `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  *string         `json:"method"`
		Result  json.RawMessage `json:"result"`
		Error   json.RawMessage `json:"error"`
		Params  span            `json:"params"`
	}
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: a message must be a JSON object"}
	}
	id := m.ID
	switch {
	case id == nil:
	case isNull(id) && m.Method != nil:
		// jsonrpc2 would take it for a notification and never answer.
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: id must not be null; a notification has no id member"}
	case isNull(id):
		id = nil // a response to a message the client could not read
	case !validID(id):
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: id must be a string or an integer from 0 to 2^64-1"}
	}
	switch {
	case m.JSONRPC == nil || *m.JSONRPC != "2.0":
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: "jsonrpc" must be "2.0"`, id: id}
	case m.Method != nil && (m.Result != nil || m.Error != nil):
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: "invalid request: a message has either method or result/error", id: id}
	case m.Method == nil && m.Result == nil && m.Error == nil:
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: missing "method"`, id: id}
	case m.Method != nil && *m.Method == "":
		return nil, &frameError{code: jsonrpc2.CodeInvalidRequest, msg: `invalid request: empty "method"`, id: id}
	case m.Params != nil && !isObjectOrArray(json.RawMessage(m.Params)):
		return nil, &frameError{code: jsonrpc2.CodeInvalidParams, msg: `invalid params: "params" must be an object or an array`, id: id}
	}
	return json.RawMessage(m.Params), nil
}

// validID accepts what jsonrpc2 can echo back exactly: a string or an
// integer from 0 to 2^64-1. Not null, which decodes into anything.
func validID(id json.RawMessage) bool {
	if isNull(id) {
		return false
	}
	var n uint64
	if json.Unmarshal(id, &n) == nil {
		return true
	}
	var s string
	return json.Unmarshal(id, &s) == nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

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
