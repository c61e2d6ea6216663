package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
)

// FuzzFrameReader feeds arbitrary bytes to the frame reader. It must not
// panic, must fail only with an I/O error, must answer with well-formed
// error responses, and must deliver a valid frame that follows garbage.
func FuzzFrameReader(f *testing.F) {
	for _, seed := range []string{
		"",
		frame(req1),
		`garbage{"x":1}` + frame(req1),
		"Content-Type: application/json\r\n\r\n" + req2,
		"Content-Length: 5\r\n\r\n" + req2,
		"Content-Length: abc\r\n\r\n",
		"Content-Length: -1\r\n\r\n",
		"Content-Length: 99999999999999999999\r\n\r\n",
		"Content-Length: 4Content-Length: 46\r\n\r\n",
		"content-length:2\n\n{}",
		"\r\n\r\n\n",
		"X-Long: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 2\r\n\r\n{}",
		frame(`{"jsonrpc":"2.0","id":null,"method":"m"}`),
		frame(`[{"jsonrpc":"2.0","id":1,"method":"m"}]`),
		frame(`{"jsonrpc":"2.0","id":-1,"method":"m"}`),
		frame(`{"jsonrpc":"2.0","id":1,"method":"m","params":3}`),
		frame(`{"jsonrpc":"2.0","method":"m","params":3}`),
		frame(`{"jsonrpc":"2.0","id":1,"result":null}`),
		frame(`{"jsonrpc":"2.0","id":18446744073709551615,"method":"m"}`),
		"Content-Len",
		"CONTENT-LENGTH: 0\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, size := range []int{16, 64 << 10} {
			readAll(t, data, size)
		}
		if !plainGarbage(data) {
			return
		}
		for _, size := range []int{16, 64 << 10} {
			msgs := readAll(t, append(bytes.Clone(data), frame(req1)...), size)
			if len(msgs) == 0 || msgs[len(msgs)-1] != req1 {
				t.Fatalf("buffer %d: after %q, got %q, want the valid frame last", size, data, msgs)
			}
		}
	})
}

// plainGarbage reports whether data can't reach into the frame after it:
// it names no Content-Length and has no header line too long, whose
// frame's body would be skipped.
func plainGarbage(data []byte) bool {
	if bytes.Contains(bytes.ToLower(data), []byte("content-length")) {
		return false
	}
	lines := bytes.Split(data, []byte("\n"))
	for _, l := range lines[:len(lines)-1] {
		if len(l)+1 > maxHeaderLine {
			return false
		}
	}
	return true
}

// readAll reads data through a frameStream until it fails, checks what it
// wrote, and returns the messages it delivered.
func readAll(t *testing.T, data []byte, size int) []string {
	t.Helper()
	rw := &testRW{in: bytes.NewReader(data)}
	s := newFrameStream(rw, slog.New(slog.DiscardHandler), false)
	s.fr.r = bufio.NewReaderSize(rw.in, size)
	var msgs []string
	for {
		if len(msgs) > len(data) {
			t.Fatalf("%d messages from %d bytes", len(msgs), len(data))
		}
		var v json.RawMessage
		err := s.ReadObject(&v)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadObject: %v, want an I/O error", err)
			}
			break
		}
		if fe := validate(v); fe != nil {
			t.Fatalf("delivered an invalid message %q: %s", v, fe.msg)
		}
		msgs = append(msgs, string(v))
	}
	out := &frameReader{r: bufio.NewReader(&rw.out)}
	for {
		body, err := out.readFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("wrote a bad frame: %v", err)
		}
		var r struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   *jsonrpc2.Error `json:"error"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.JSONRPC != "2.0" || r.ID == nil || r.Error == nil {
			t.Fatalf("wrote %q, want an error response", body)
		}
		switch r.Error.Code {
		case CodeParseError, CodeInvalidRequest, CodeInvalidParams:
		default:
			t.Fatalf("wrote error code %d: %s", r.Error.Code, body)
		}
	}
	return msgs
}

// paramTypes holds, for each method, a new value of the type its params
// decode into; nil for methods that read none.
var paramTypes = map[string]func() any{
	"initialize":         func() any { return new(InitializeParams) },
	"shutdown":           nil,
	"berth/up":           func() any { return new(UpParams) },
	"berth/status":       func() any { return new(StatusParams) },
	"berth/limits":       func() any { return new(LimitsParams) },
	"berth/list":         nil,
	"berth/down":         func() any { return new(DownParams) },
	"berth/exec":         func() any { return new(ExecParams) },
	"berth/run":          func() any { return new(ExecParams) },
	"berth/stdin":        func() any { return new(StdinParams) },
	"berth/signal":       func() any { return new(SignalParams) },
	"berth/processes":    func() any { return new(ProcessesParams) },
	"berth/toContainer":  func() any { return new(PathsParams) },
	"berth/toHost":       func() any { return new(PathsParams) },
	"berth/resize":       func() any { return new(ResizeParams) },
	"berth/forward":      func() any { return new(ForwardParams) },
	"berth/reverse":      func() any { return new(ReverseParams) },
	"berth/closeTunnel":  func() any { return new(CloseTunnelParams) },
	"berth/tunnels":      func() any { return new(WorkspaceParams) },
	"berth/test":         func() any { return new(TestParams) },
	"berth/lint":         func() any { return new(LintParams) },
	"berth/inspect":      func() any { return new(InspectParams) },
	"berth/debug":        func() any { return new(DebugParams) },
	"berth/sync":         func() any { return new(WorkspaceParams) },
	"berth/plugins":      func() any { return new(WorkspaceParams) },
	"berth/plugin":       func() any { return new(PluginParams) },
	"berth/testDiscover": func() any { return new(TestDiscoverParams) },

	"berth/readConfiguration": func() any { return new(ReadConfigurationParams) },

	// Ports
	"berth/ports": func() any { return new(WorkspaceParams) },
}

// Every method's params are fuzzed.
func TestParamTypesCoverMethods(t *testing.T) {
	for _, m := range MethodNames() {
		if _, ok := paramTypes[m]; !ok {
			t.Errorf("FuzzParams does not know the params of %s: add them to paramTypes", m)
		}
	}
}

// FuzzParams decodes arbitrary JSON as every method's params, the way a
// request reaches them: through validate, jsonrpc2 and decode. It must not
// panic, and a decode error must be answered as invalid params.
func FuzzParams(f *testing.F) {
	for _, seed := range []string{
		`{}`, `[]`, `null`, `42`, `"s"`, `{"workspace":"/tmp"}`,
		`{"argv":["sh","-c","true"],"env":{"A":"1"},"tty":true,"cols":80,"rows":24,"timeoutMs":-1}`,
		`{"argv":[1,2]}`, `{"argv":"ls"}`, `{"pid":"p1","signal":"TERM"}`, `{"pid":"p1","signal":15}`,
		`{"pid":"p1","signal":{"x":1}}`, `{"cols":65536,"rows":-1}`, `{"containerPort":1e3}`,
		`{"paths":["/a",null,3]}`, `{"processId":null,"rootUri":"file:///x","workspaceFolders":[{"uri":1}]}`,
		`{"initializationOptions":{"backend":["docker"]}}`, `{"workDoneToken":"t","workspace":"\ud800"}`,
		`{"state":"exited","limit":-5}`, `{"adapter":"delve","port":99999,"args":{}}`,
		`{"env":{"":"x"}}`, `{"files":[{"a":1}]}`, `{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for method, newParams := range paramTypes {
			if newParams == nil {
				continue
			}
			decodeParams(t, method, raw, newParams)
			// As jsonrpc2 hands them over: re-encoded, and only if valid.
			body := `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + string(raw) + `}`
			if validate([]byte(body)) != nil {
				continue
			}
			var req jsonrpc2.Request
			if err := json.Unmarshal([]byte(body), &req); err != nil || req.Params == nil {
				continue
			}
			decodeParams(t, method, *req.Params, newParams)
		}
	})
}

func decodeParams(t *testing.T, method string, raw []byte, newParams func() any) {
	p := newParams()
	err := decode(raw, p)
	if err != nil {
		if e := toError(err); e.Code != CodeInvalidParams {
			t.Fatalf("%s: params %q: error %d %q, want %d", method, raw, e.Code, e.Message, CodeInvalidParams)
		}
		return
	}
	if sp, ok := p.(*SignalParams); ok && sp.Signal != nil {
		if _, err := parseSignalParam(sp.Signal); err != nil && toError(err).Code != CodeInvalidParams {
			t.Fatalf("%s: signal %q: %v", method, sp.Signal, err)
		}
	}
	// What run reads before any method.
	var wd struct {
		Token json.RawMessage `json:"workDoneToken"`
	}
	if len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &wd) == nil {
		validID(wd.Token)
	}
}
