package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// frame frames body as a client would.
func frame(body string) string {
	return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

// testRW is a connection whose input is fixed and whose output is kept.
type testRW struct {
	in  io.Reader
	out bytes.Buffer
}

func (rw *testRW) Read(p []byte) (int, error)  { return rw.in.Read(p) }
func (rw *testRW) Write(p []byte) (int, error) { return rw.out.Write(p) }
func (*testRW) Close() error                   { return nil }

// transcript reads input through a frameStream until it fails and returns
// what happened, in order: "msg <body>" for a message handed to jsonrpc2,
// "err <code> <id>" for an error answered on the wire, and the final read
// error.
func transcript(t *testing.T, input string, bufSize int) []string {
	t.Helper()
	return transcriptOf(t, strings.NewReader(input), bufSize)
}

func transcriptOf(t *testing.T, input io.Reader, bufSize int) []string {
	t.Helper()
	rw := &testRW{in: input}
	s := newFrameStream(rw, slog.New(slog.DiscardHandler), false)
	if bufSize > 0 {
		s.fr.r = bufio.NewReaderSize(rw.in, bufSize)
	}
	out := bufio.NewReader(&rw.out)
	answers := func() []string {
		var got []string
		for rw.out.Len() > 0 || out.Buffered() > 0 {
			body, err := (&frameReader{r: out}).readFrame()
			if err != nil {
				t.Fatalf("berth wrote a bad frame: %v", err)
			}
			var r struct {
				ID    json.RawMessage
				Error struct{ Code int64 }
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("berth wrote %q: %v", body, err)
			}
			got = append(got, fmt.Sprintf("err %d %s", r.Error.Code, r.ID))
		}
		return got
	}
	var got []string
	for len(got) < 1000 {
		var v json.RawMessage
		err := s.ReadObject(&v)
		got = append(got, answers()...)
		if err != nil {
			return append(got, err.Error())
		}
		got = append(got, "msg "+string(v))
	}
	t.Fatal("no end to the input")
	return nil
}

const (
	req1  = `{"jsonrpc":"2.0","id":1,"method":"berth/list"}`
	req2  = `{"jsonrpc":"2.0","id":"two","method":"berth/status","params":{}}`
	notif = `{"jsonrpc":"2.0","method":"initialized","params":{}}`
)

func TestFrameReaderResync(t *testing.T) {
	long := strings.Repeat("x", 70_000) // longer than the read buffer
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"one frame", frame(req1),
			[]string{"msg " + req1, "EOF"}},
		{"two frames", frame(req1) + frame(req2),
			[]string{"msg " + req1, "msg " + req2, "EOF"}},
		{"garbage glued to a header", `garbage{"x":1}` + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"garbage lines, then a frame", "garbage\r\nmore garbage\r\n\r\n{}\r\n" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"no Content-Length, body without newline", "Content-Type: application/json\r\n\r\n" + req2 + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"no Content-Length, then several frames", "Content-Type: x\r\n\r\n" + req2 + frame(req1) + frame(req2),
			[]string{"err -32700 null", "msg " + req1, "msg " + req2, "EOF"}},
		{"a body without headers", req2 + "\r\n" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"header in lower case", "content-length: 46\r\n\r\n" + req1,
			[]string{"msg " + req1, "EOF"}},
		{"garbage glued to a header in upper case", "junk:CONTENT-LENGTH: 46\r\n\r\n" + req1,
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"garbage glued to a header in mixed case", "}}cOnTeNt-LeNgTh: 46\n\n" + req1,
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"a broken header glued to a good one", "Content-Length: 4Content-Length: 46\r\n\r\n" + req1,
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"a frame shorter than its body", "Content-Length: 5\r\n\r\n" + req2 + frame(req1),
			[]string{"err -32700 null", "err -32700 null", "msg " + req1, "EOF"}},
		{"invalid Content-Length", "Content-Length: abc\r\n\r\n" + req2 + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"negative Content-Length", "Content-Length: -3\r\n\r\nabc" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"malformed header line", "Content-Length: 46\r\nnot a header\r\n\r\n" + req1 + frame(req2),
			[]string{"err -32700 null", "msg " + req2, "EOF"}},
		{"each bad frame answered once", "a\r\n" + frame(req1) + "b" + frame(req2) + "Content-Type: x\r\n\r\n" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "err -32700 null", "msg " + req2, "err -32700 null", "msg " + req1, "EOF"}},
		{"garbage longer than the buffer", long + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"garbage longer than the buffer while resynchronising", "X: y\r\n\r\n" + long + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"garbage lines longer than a header line", strings.Repeat(long+"\n", 3) + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"header line too long: its body is skipped", "X-Long: " + long + "\r\nContent-Length: 2\r\n\r\n{}" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},

		// Kept behaviours.
		{"stray blank lines", "\r\n\n\r\n" + frame(req1) + "\r\n\r\n" + frame(req2) + "\n",
			[]string{"msg " + req1, "msg " + req2, "EOF"}},
		{"Content-Type accepted", "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 46\r\n\r\n" + req1,
			[]string{"msg " + req1, "EOF"}},
		{"headers in any order, LF only, spaces", "content-length:46 \ncontent-type: x\n\n" + req1,
			[]string{"msg " + req1, "EOF"}},
		{"spaces before a header", "  Content-Length: 46\r\n\r\n" + req1,
			[]string{"msg " + req1, "EOF"}},
		{"last Content-Length wins", "Content-Length: 3\r\nContent-Length: 46\r\n\r\n" + req1,
			[]string{"msg " + req1, "EOF"}},
		{"empty body", "Content-Length: 0\r\n\r\n" + frame(req1),
			[]string{"err -32700 null", "msg " + req1, "EOF"}},
		{"notification", frame(notif),
			[]string{"msg " + notif, "EOF"}},

		// The end of the input.
		{"empty input", "", []string{"EOF"}},
		{"blank lines only", "\r\n\r\n", []string{"EOF"}},
		{"EOF in the headers", "Content-Length: 46\r\n", []string{"unexpected EOF"}},
		{"EOF in the body", "Content-Length: 46\r\n\r\n{", []string{"unexpected EOF"}},
		{"EOF right after the headers", "Content-Length: 46\r\n\r\n", []string{"unexpected EOF"}},
		{"garbage at the end", frame(req1) + "garbage", []string{"msg " + req1, "unexpected EOF"}},
		{"garbage at the end while resynchronising", frame(req1) + "Content-Type: x\r\n\r\ngarbage",
			[]string{"msg " + req1, "err -32700 null", "EOF"}},
	}
	for _, tt := range tests {
		// A 16-byte buffer splits every header across reads.
		for _, size := range []int{0, 16} {
			t.Run(fmt.Sprintf("%s/buffer %d", tt.name, size), func(t *testing.T) {
				got := transcript(t, tt.input, size)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
			})
		}
	}
}

// A header split across two fills of the read buffer is still found, at
// every offset.
func TestFrameReaderHeaderAcrossBuffers(t *testing.T) {
	for pad := 64<<10 - 40; pad <= 64<<10+2; pad++ {
		for _, sep := range []string{"", "\r\n\r\n"} {
			input := "X: y" + sep + strings.Repeat("z", pad) + frame(req1)
			got := transcript(t, input, 0)
			want := []string{"err -32700 null", "msg " + req1, "EOF"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("garbage of %d bytes, sep %q: (-want +got):\n%s", pad, sep, diff)
			}
		}
	}
}

// repeat returns n bytes of b, without holding them.
func repeat(b byte, n int64) io.Reader {
	return io.LimitReader(repeatReader(b), n)
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	if len(p) > 0 {
		p[0] = byte(r)
		for i := 1; i < len(p); i *= 2 {
			copy(p[i:], p[:i])
		}
	}
	return len(p), nil
}

func TestFrameReaderOversized(t *testing.T) {
	tests := []struct {
		name string
		size int64
		want []string
	}{
		{"at the limit", MaxFrame, []string{"err -32700 null", "msg " + req1, "EOF"}}, // served, and not JSON
		{"over the limit", MaxFrame + 1, []string{"err -32600 null", "msg " + req1, "EOF"}},
		{"far over the limit", 1 << 40, []string{"err -32600 null", "unexpected EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := io.MultiReader(
				strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n", tt.size)),
				repeat('a', min(tt.size, MaxFrame+1)),
				strings.NewReader(frame(req1)),
			)
			if diff := cmp.Diff(tt.want, transcriptOf(t, input, 0)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// Scanning garbage holds no more than the read buffer and a header line.
func TestFrameReaderBoundedMemory(t *testing.T) {
	const n = 2 << 20
	tests := []struct {
		name    string
		garbage string
	}{
		{"no newline", strings.Repeat("g", n)},
		{"resynchronising", "Content-Type: x\r\n\r\n" + strings.Repeat("g", n)},
		{"short lines", strings.Repeat("garbage\n", n/8)},
		{"long header line", "X-Long: " + strings.Repeat("g", n) + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := strings.NewReader(tt.garbage + frame(req1))
			fr := &frameReader{r: bufio.NewReaderSize(rd, 64<<10)}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var body []byte
			for {
				b, err := fr.readFrame()
				var fe *frameError
				if errors.As(err, &fe) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				body = b
				break
			}
			runtime.ReadMemStats(&after)
			if string(body) != req1 {
				t.Errorf("got %q, want %q", body, req1)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
				t.Errorf("reading %d bytes of garbage allocated %d bytes", len(tt.garbage), alloc)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		body string
		code int64 // 0: valid
		id   string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"m"}`, 0, ""},
		{`{"jsonrpc":"2.0","id":"a","method":"m"}`, 0, ""},
		{`{"jsonrpc":"2.0","id":18446744073709551615,"method":"m"}`, 0, ""},
		{`{"jsonrpc":"2.0","method":"m"}`, 0, ""},
		{`{"jsonrpc":"2.0","id":null,"method":"m"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"2.0","id" : null ,"method":"exit"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"2.0","id":null,"method":"m","params":42}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"1.0","id":null,"method":"m"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"2.0","id":-1,"method":"m"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"2.0","id":2.5,"method":"m"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"2.0","id":{},"method":"m"}`, CodeInvalidRequest, ""},
		{`{"jsonrpc":"1.0","id":7,"method":"m"}`, CodeInvalidRequest, "7"},
		// A response may carry id null: the client could not read a message.
		{`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}`, 0, ""},
	}
	for _, tt := range tests {
		fe := validate([]byte(tt.body))
		var code int64
		var id string
		if fe != nil {
			code, id = fe.code, string(fe.id)
		}
		if code != tt.code || id != tt.id {
			t.Errorf("validate(%s) = code %d id %q, want %d %q", tt.body, code, id, tt.code, tt.id)
		}
	}
}

// A request with id null is answered with id null, and the connection reads on.
func TestNullIDAnswered(t *testing.T) {
	got := transcript(t, frame(`{"jsonrpc":"2.0","id":null,"method":"berth/list"}`)+frame(req1), 0)
	want := []string{"err -32600 null", "msg " + req1, "EOF"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
