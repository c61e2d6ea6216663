package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type frame struct {
	Typ     byte
	Payload []byte
}

func TestFrameRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), maxFrame/16)
	tests := []struct {
		name   string
		frames []frame
	}{
		{"empty payload", []frame{{frameEOF, nil}}},
		{"one byte", []frame{{frameStdin, []byte("x")}}},
		{"json", []frame{{frameRequest, []byte(`{"op":"hello"}`)}}},
		{"exactly maxFrame", []frame{{frameStdout, big}}},
		{"several, sizes up and down", []frame{
			{frameStdout, []byte("short")},
			{frameStderr, big},
			{frameEOF, nil},
			{frameStdout, []byte("after a big one")},
			{frameExit, []byte(`{"code":0}`)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wire bytes.Buffer
			wantLen := 0
			for _, f := range tt.frames {
				if err := writeFrame(&wire, f.Typ, f.Payload); err != nil {
					t.Fatalf("writeFrame(%q, %d bytes): %v", f.Typ, len(f.Payload), err)
				}
				wantLen += 5 + len(f.Payload)
			}
			if wire.Len() != wantLen {
				t.Errorf("wire has %d bytes, want %d (5-byte header per frame)", wire.Len(), wantLen)
			}
			// Reuse the buffer as the client's read loop does.
			var got []frame
			var buf []byte
			for {
				typ, p, err := readFrame(&wire, buf)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("readFrame: %v", err)
				}
				got = append(got, frame{typ, append([]byte(nil), p...)})
				buf = p[:0]
			}
			// bytes.Equal: go-cmp's byte-wise diff of a MiB is slow.
			if diff := cmp.Diff(tt.frames, got, cmp.Comparer(bytes.Equal)); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFrameHeaderBytes(t *testing.T) {
	var wire bytes.Buffer
	if err := writeFrame(&wire, frameStdout, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	want := []byte{'o', 0, 0, 0, 2, 'h', 'i'}
	if diff := cmp.Diff(want, wire.Bytes()); diff != "" {
		t.Errorf("wire bytes (-want +got):\n%s", diff)
	}
}

// TestWriteFramedSameBytes checks that a frame written in its buffer's
// head room is the frame writeFrame writes.
func TestWriteFramedSameBytes(t *testing.T) {
	for _, payload := range [][]byte{nil, []byte("hi"), bytes.Repeat([]byte("x"), 300<<10)} {
		var want, got bytes.Buffer
		if err := writeFrame(&want, frameStderr, payload); err != nil {
			t.Fatal(err)
		}
		b := append(make([]byte, frameHead), payload...)
		if err := writeFramed(&got, frameStderr, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%d-byte payload: writeFramed wrote %.20q, writeFrame %.20q", len(payload), got.Bytes(), want.Bytes())
		}
	}
	if err := writeFramed(io.Discard, frameStdout, make([]byte, frameHead+maxFrame+1)); err == nil {
		t.Error("writeFramed took a frame over maxFrame")
	}
}

func TestWriteFrameRejectsOversize(t *testing.T) {
	var wire bytes.Buffer
	err := writeFrame(&wire, frameStdout, make([]byte, maxFrame+1))
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("writeFrame(maxFrame+1) = %v, want an \"exceeds\" error", err)
	}
	if wire.Len() != 0 {
		t.Errorf("writeFrame wrote %d bytes of a rejected frame, want 0", wire.Len())
	}
}

func TestReadFrameErrors(t *testing.T) {
	hdr := func(typ byte, n uint32) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], n)
		return b
	}
	tests := []struct {
		name    string
		wire    []byte
		wantIs  error  // errors.Is target, or nil
		wantMsg string // substring, when wantIs is nil
	}{
		{"clean EOF before a frame", nil, io.EOF, ""},
		{"partial header", []byte{'o', 0, 0}, io.ErrUnexpectedEOF, ""},
		{"short body", append(hdr('o', 5), "ab"...), io.ErrUnexpectedEOF, ""},
		{"header only, body missing", hdr('o', 1), io.ErrUnexpectedEOF, ""},
		{"oversize length", hdr('o', maxFrame+1), nil, "exceeds"},
		{"huge length", hdr('o', 0xffffffff), nil, "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readFrame(bytes.NewReader(tt.wire), nil)
			switch {
			case err == nil:
				t.Fatalf("readFrame = nil error, want one")
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("readFrame error = %v, want %v", err, tt.wantIs)
			case tt.wantIs == nil && !strings.Contains(err.Error(), tt.wantMsg):
				t.Errorf("readFrame error = %v, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestJSONFrames(t *testing.T) {
	var wire bytes.Buffer
	want := request{Op: opExec, Argv: []string{"sh", "-c", "true"}, Env: []string{"A=1"}, Cwd: "/w", User: "1000:1000", Stdin: true, TTY: true, Cols: 80, Rows: 24}
	if err := writeJSON(&wire, frameRequest, want); err != nil {
		t.Fatal(err)
	}
	var got request
	if err := readJSON(bytes.NewReader(wire.Bytes()), frameRequest, &got); err != nil {
		t.Fatalf("readJSON: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request round trip (-want +got):\n%s", diff)
	}
	var rep reply
	err := readJSON(bytes.NewReader(wire.Bytes()), frameReply, &rep)
	if err == nil || !strings.Contains(err.Error(), "want 'a'") {
		t.Errorf("readJSON of a request frame as a reply = %v, want a frame-type error", err)
	}
}

// recorder keeps every Write it gets as a separate slice.
type recorder struct {
	writes [][]byte
	fail   error // returned from every Write when set
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, append([]byte(nil), p...))
	return len(p), nil
}

// yamuxHeader builds a yamux frame header: version 0, type, flags, stream
// id and length, big-endian.
func yamuxHeader(typ byte, flags uint16, stream, length uint32) []byte {
	h := make([]byte, yamuxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], stream)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestHeaderJoiner(t *testing.T) {
	const (
		typeWindowUpdate = 1
		typePing         = 2
		typeGoAway       = 3
		flagSYN          = 1
		flagFIN          = 4
	)
	data3 := yamuxHeader(yamuxTypeData, 0, 1, 3)
	data5 := yamuxHeader(yamuxTypeData, 0, 3, 5)
	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte
	}{
		{
			name:   "data header joined with its body",
			writes: [][]byte{data3, []byte("abc")},
			want:   [][]byte{cat(data3, []byte("abc"))},
		},
		{
			name:   "two data frames, two writes",
			writes: [][]byte{data3, []byte("abc"), data5, []byte("hello")},
			want:   [][]byte{cat(data3, []byte("abc")), cat(data5, []byte("hello"))},
		},
		{
			name:   "window update passes through",
			writes: [][]byte{yamuxHeader(typeWindowUpdate, flagSYN, 1, 256<<10)},
			want:   [][]byte{yamuxHeader(typeWindowUpdate, flagSYN, 1, 256<<10)},
		},
		{
			name:   "ping passes through",
			writes: [][]byte{yamuxHeader(typePing, flagSYN, 0, 42)},
			want:   [][]byte{yamuxHeader(typePing, flagSYN, 0, 42)},
		},
		{
			name:   "go away passes through",
			writes: [][]byte{yamuxHeader(typeGoAway, 0, 0, 0)},
			want:   [][]byte{yamuxHeader(typeGoAway, 0, 0, 0)},
		},
		{
			name:   "empty data frame (FIN) has no body to wait for",
			writes: [][]byte{yamuxHeader(yamuxTypeData, flagFIN, 1, 0), yamuxHeader(typePing, 0, 0, 1)},
			want:   [][]byte{yamuxHeader(yamuxTypeData, flagFIN, 1, 0), yamuxHeader(typePing, 0, 0, 1)},
		},
		{
			name:   "a write that is not a header passes through",
			writes: [][]byte{[]byte("hello"), cat(data3, []byte("abc"))},
			want:   [][]byte{[]byte("hello"), cat(data3, []byte("abc"))},
		},
		{
			name:   "control frame between data frames",
			writes: [][]byte{data3, []byte("abc"), yamuxHeader(typeWindowUpdate, 0, 1, 10), data5, []byte("hello")},
			want:   [][]byte{cat(data3, []byte("abc")), yamuxHeader(typeWindowUpdate, 0, 1, 10), cat(data5, []byte("hello"))},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			j := &headerJoiner{w: rec}
			for i, p := range tt.writes {
				n, err := j.Write(p)
				if err != nil || n != len(p) {
					t.Fatalf("write %d: Write(%d bytes) = %d, %v; want %d, nil", i, len(p), n, err, len(p))
				}
			}
			if diff := cmp.Diff(tt.want, rec.writes); diff != "" {
				t.Errorf("writes reaching the transport (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeaderJoinerError(t *testing.T) {
	boom := errors.New("boom")
	rec := &recorder{}
	j := &headerJoiner{w: rec}
	hdr := yamuxHeader(yamuxTypeData, 0, 1, 3)
	if n, err := j.Write(hdr); n != len(hdr) || err != nil {
		t.Fatalf("Write(header) = %d, %v; want %d, nil", n, err, len(hdr))
	}
	rec.fail = boom
	if n, err := j.Write([]byte("abc")); n != 0 || !errors.Is(err, boom) {
		t.Errorf("Write(body) on a failing transport = %d, %v; want 0, %v", n, err, boom)
	}
	// The failed frame is not held over into the next one.
	rec.fail = nil
	if _, err := j.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Write([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{cat(hdr, []byte("xyz"))}
	if diff := cmp.Diff(want, rec.writes); diff != "" {
		t.Errorf("writes after a failure (-want +got):\n%s", diff)
	}
}

// On a socket the header and its body go out gathered, in order, and the
// body's buffer is left as it was.
func TestHeaderJoinerSocket(t *testing.T) {
	a, b := tcpPair(t)
	j := &headerJoiner{w: a}
	hdr := yamuxHeader(yamuxTypeData, 0, 1, 5)
	body := []byte("hello")
	go func() {
		_, _ = j.Write(hdr)
		_, _ = j.Write(body)
	}()
	got := make([]byte, len(hdr)+len(body))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if want := cat(hdr, body); !bytes.Equal(got, want) {
		t.Errorf("on the wire: %q, want %q", got, want)
	}
	if string(body) != "hello" {
		t.Errorf("body changed to %q", body)
	}
}
