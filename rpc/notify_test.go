package rpc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"strings"
	"testing"
)

// checkEscape checks that appendJSONString, on s as a string and as bytes,
// is JSON that decodes to what encoding/json's encoding of s decodes to.
func checkEscape(t *testing.T, s string) {
	t.Helper()
	var std string
	b, _ := json.Marshal(s)
	if err := json.Unmarshal(b, &std); err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]byte{appendJSONString(nil, []byte(s)), appendJSONString([]byte("x"), []byte(s))[1:]} {
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, got, err)
		}
		if back != std {
			t.Fatalf("%q: round trip %q, encoding/json gives %q", s, back, std)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	tests := []string{
		"", "plain", "quote \" and backslash \\", "line\nfeed\r\ttab", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 🚀", "bad \xff utf-8 \xc3", "sep \u2028 \u2029", "<html>&amp;",
		strings.Repeat("a/b:12: x\n", 1000),
		"exactly8", "sixteen bytes ok", "/workspaces/proj/src/main.go:42:7: a line of build output, 64 bytes\n",
	}
	for _, s := range tests {
		checkEscape(t, s)
	}
}

// TestAppendJSONStringEveryLane puts each byte that needs care at every
// position of a run of plain bytes, so that each lane of the 8-byte fast
// path, and the tail after the last whole word, sees it.
func TestAppendJSONStringEveryLane(t *testing.T) {
	special := []string{"\x00", "\x1f", " ", "!", "\"", "#", "[", "\\", "]", "\x7f", "\x80", "\xff", "é", "\u2028", "\u2029", "😀", "\xe2\x80", "\xf0\x9f\x98"}
	plain := "abcdefghijklmnopqrstuvwx"
	for _, c := range special {
		for i := 0; i <= len(plain); i++ {
			checkEscape(t, plain[:i]+c+plain[i:])
		}
	}
	// Every byte value alone, and in the middle of a word.
	for b := range 256 {
		checkEscape(t, string([]byte{byte(b)}))
		checkEscape(t, "abc"+string([]byte{byte(b)})+"defghijk")
	}
}

// TestCare8 checks that care8's lowest mark is the first byte that needs
// care, for every byte value in every lane after plain bytes, followed by
// every byte value.
func TestCare8(t *testing.T) {
	needs := func(b int) bool { return b < 0x20 || b >= 0x80 || b == '"' || b == '\\' }
	for b := range 256 {
		for lane := range 8 {
			for after := range 256 {
				w := []byte("aaaaaaaa")
				w[lane] = byte(b)
				for k := lane + 1; k < 8; k++ {
					w[k] = byte(after)
				}
				want := 8
				if needs(b) {
					want = lane
				} else if lane < 7 && needs(after) {
					want = lane + 1
				}
				got := 8
				if m := care8(binary.LittleEndian.Uint64(w)); m != 0 {
					got = bits.TrailingZeros64(m) / 8
				}
				if got != want {
					t.Fatalf("%q: first byte needing care at %d, want %d", w, got, want)
				}
			}
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello\n\"x\"\xff\u2028")
	f.Add("/workspaces/proj/src/main.go:42:7: a line of build output, 64 bytes\n")
	f.Fuzz(checkEscape)
}

// TestWriteOutputFrame checks the frame writeOutput sends, over several
// notifications that reuse its buffer, whatever their sizes.
func TestWriteOutputFrame(t *testing.T) {
	var out bytes.Buffer
	s := &frameStream{w: bufio.NewWriterSize(&out, 64), log: slog.New(slog.DiscardHandler)}
	texts := []string{"hello\n", strings.Repeat("\x01\"", 40<<10), "", "small é \xff", strings.Repeat("x", 100<<10)}
	for i, text := range texts {
		if err := s.writeOutput(fmt.Sprint("p", i), "stdout", []byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&out)
	for i, text := range texts {
		var n int
		if _, err := fmt.Fscanf(r, "Content-Length: %d\r\n\r\n", &n); err != nil {
			t.Fatalf("frame %d: header: %v", i, err)
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			t.Fatal(err)
		}
		var msg struct {
			JSONRPC string       `json:"jsonrpc"`
			Method  string       `json:"method"`
			Params  OutputParams `json:"params"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("frame %d: %v: %.80s", i, err, body)
		}
		want := OutputParams{PID: fmt.Sprint("p", i), Stream: "stdout", Text: strings.ToValidUTF8(text, "\ufffd")}
		if msg.JSONRPC != "2.0" || msg.Method != "berth/output" || msg.Params != want {
			t.Errorf("frame %d: got %s %s %+.40v, want %+.40v", i, msg.JSONRPC, msg.Method, msg.Params, want)
		}
	}
	if r.Buffered() != 0 {
		t.Errorf("%d bytes after the frames", r.Buffered())
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	for _, in := range []struct{ name, line string }{
		{"build-output", "/workspaces/proj/src/main.go:42:7: a line of build output, 64 bytes\n"},
		{"non-ascii", "héllo wörld ✓ 🚀 — ünïcödé text, mostly letters, some runes\n"},
	} {
		text := []byte(strings.Repeat(in.line, (64<<10)/len(in.line)))
		buf := make([]byte, 0, 2*len(text))
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				buf = appendJSONString(buf[:0], text)
			}
		})
	}
}
