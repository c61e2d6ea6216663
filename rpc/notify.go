package rpc

import (
	"strconv"
	"unicode/utf8"

	"github.com/sourcegraph/jsonrpc2"
)

// writeOutput sends a berth/output notification without jsonrpc2's
// marshalling, which compacts every nested value again and costs most of
// berth's CPU on chatty processes. The bytes on the wire are the same JSON.
func (s *frameStream) writeOutput(pid, stream, text string) error {
	buf := make([]byte, 0, len(text)+len(text)/16+96)
	buf = append(buf, `{"jsonrpc":"2.0","method":"berth/output","params":{"pid":`...)
	buf = appendJSONString(buf, pid)
	buf = append(buf, `,"stream":`...)
	buf = appendJSONString(buf, stream)
	buf = append(buf, `,"text":`...)
	buf = appendJSONString(buf, text)
	buf = append(buf, "}}"...)
	return s.writeRaw(buf)
}

// writeRaw writes one framed message whose body is already JSON.
func (s *frameStream) writeRaw(body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.trace {
		s.log.Debug("send", "frame", string(body))
	}
	if _, err := s.w.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"); err != nil {
		return err
	}
	if _, err := s.w.Write(body); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return jsonrpc2.ErrClosed
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped so that the
// text is also valid JavaScript.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
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
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
