package rpc

import (
	"encoding/binary"
	"math/bits"
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

// care8 marks the bytes of v (8 byte lanes, little-endian) that need care
// in a JSON string: control bytes, '"', '\\', and bytes >= 0x80 (runes to
// check), each by the top bit of its lane. It uses the "has a byte less
// than n" and "has a zero byte" word tricks, whose borrows can mark a lane
// above a marked one wrongly but never the lowest: the lowest marked lane
// is the first byte that needs care.
func care8(v uint64) uint64 {
	q := v ^ ('"' * ones)
	b := v ^ ('\\' * ones)
	return ((v-0x20*ones)&^v | (q-ones)&^q | (b-ones)&^b | v) & highs
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped so that the
// text is also valid JavaScript. Plain ASCII is skipped 8 bytes at a time,
// straight to the next byte that needs care, and copied once.
func appendJSONString(buf, s []byte) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		end := len(s)
		if i+8 <= len(s) {
			m := care8(binary.LittleEndian.Uint64(s[i:]))
			if m == 0 {
				i += 8
				continue
			}
			end = i + 8
			i += bits.TrailingZeros64(m) / 8
		}
		// From the first byte that needs care to the end of its word (or
		// the tail, under 8 bytes), a character at a time.
		for i < end {
			b := s[i]
			if b >= utf8.RuneSelf {
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
				continue
			}
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
		}
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
