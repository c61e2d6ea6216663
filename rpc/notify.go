package rpc

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"
)

// outputKeep is the largest frame buffer writeOutput keeps for the next
// notification; one grown past it, by a long escaped text, is dropped.
const outputKeep = 256 << 10

// hdrRoom is room for the longest Content-Length header, left at the
// start of the frame buffer so that header and body go out in one write.
const hdrRoom = len("Content-Length: 4294967295\r\n\r\n")

// writeOutput sends a berth/output notification without jsonrpc2's
// marshalling, which compacts every nested value again and costs most of
// berth's CPU on chatty processes. The bytes on the wire are the same JSON.
// text is escaped straight into one frame buffer, reused from one
// notification to the next, and written with its header in one write:
// no allocation, and one copy of the text in berth's last step.
func (s *frameStream) writeOutput(pid, stream string, text []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	buf := s.obuf[:0]
	if need := hdrRoom + len(text) + len(text)/8 + 128 + len(pid); cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	buf = buf[:hdrRoom]
	buf = append(buf, `{"jsonrpc":"2.0","method":"berth/output","params":{"pid":`...)
	buf = appendJSONString(buf, []byte(pid)) // short: converted on the stack
	buf = append(buf, `,"stream":`...)
	buf = appendJSONString(buf, []byte(stream))
	buf = append(buf, `,"text":`...)
	buf = appendJSONString(buf, text)
	buf = append(buf, "}}"...)
	if cap(buf) <= outputKeep {
		s.obuf = buf
	}
	body := buf[hdrRoom:]
	var hdr [hdrRoom]byte
	h := append(strconv.AppendInt(append(hdr[:0], "Content-Length: "...), int64(len(body)), 10), "\r\n\r\n"...)
	frame := buf[hdrRoom-len(h):]
	copy(frame, h)
	if s.trace {
		s.log.Debug("send", "frame", string(body))
	}
	// With nothing buffered, bufio hands a frame larger than its buffer
	// straight to the writer.
	if _, err := s.w.Write(frame); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return jsonrpc2.ErrClosed
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// Word masks for appendJSONString's fast path.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain8 reports whether none of the 8 bytes in v (one per byte lane)
// needs care in a JSON string: no control byte, '"', '\\', or byte >=
// 0x80. Each test is the classic "has a byte less than n" or "has a zero
// byte" word trick; they may report a clean word as needing care, never
// the other way round, so the byte loop decides the rare doubtful word.
func plain8(v uint64) bool {
	q := v ^ ('"' * ones)
	b := v ^ ('\\' * ones)
	return ((v-0x20*ones)&^v|(q-ones)&^q|(b-ones)&^b|v)&highs == 0
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped so that the
// text is also valid JavaScript. Runs of plain ASCII are skipped 8 bytes
// at a time and copied once.
func appendJSONString(buf, s []byte) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plain8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		// This word needs care: go through it a character at a time.
		for end := min(i+8, len(s)); i < end; {
			if b := s[i]; b < utf8.RuneSelf {
				if b >= 0x20 && b != '"' && b != '\\' {
					i++
					continue
				}
				buf = append(buf, s[start:i]...)
				switch b {
				case '"', '\\':
					buf = append(buf, '\\', b)
				case '\n':
					buf = append(buf, '\\', 'n')
				case '\r':
					buf = append(buf, '\\', 'r')
				case '\t':
					buf = append(buf, '\\', 't')
				default:
					buf = append(buf, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
				}
				i++
				start = i
				continue
			}
			r, size := utf8.DecodeRune(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				buf = append(buf, s[start:i]...)
				buf = append(buf, `\ufffd`...)
				start = i + size
			case r == '\u2028' || r == '\u2029':
				buf = append(buf, s[start:i]...)
				buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
				start = i + size
			}
			i += size
		}
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
