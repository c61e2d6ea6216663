package pathmap

import (
	"bytes"
	"io"
	"strings"
)

// delim holds the bytes that cannot be part of a path in text: they start and
// end one. '=' is here for --flag=/path; Windows forbids <>:"|?* in names.
var delim = func() (t [256]bool) {
	for c := 0; c <= ' '; c++ {
		t[c] = true
	}
	t[0x7f] = true
	for _, c := range "\"'`()[]{}<>=,:;|*?" {
		t[c] = true
	}
	return t
}()

// histLen is how far back the scanner looks to decide whether a path starts a
// boundary: enough for an ANSI colour sequence such as "\x1b[1;38;5;208m".
const histLen = 32

// scanner is the rewriting state machine shared by RewriteToHost and Writer, so
// both give the same answer however the input is split.
type scanner struct {
	m      *Mapper
	hist   [histLen]byte // input bytes just before the next one to scan; NULs before the start
	inPath bool          // Windows: inside the tail of a rewritten path
}

// at returns src[i], reaching back into the history for negative i.
func (s *scanner) at(src []byte, i int) byte {
	if i >= 0 {
		return src[i]
	}
	if i < -histLen {
		return 0
	}
	return s.hist[histLen+i]
}

// boundaryBefore reports whether a path may start at src[k].
func (s *scanner) boundaryBefore(src []byte, k int) bool {
	b := s.at(src, k-1)
	if delim[b] {
		return true
	}
	if b >= 0x80 {
	quote:
		for _, q := range quotes {
			for d := 1; d <= len(q); d++ {
				if s.at(src, k-d) != q[len(q)-d] {
					continue quote
				}
			}
			return true
		}
		return false
	}
	// After an ANSI CSI sequence (ESC [ params final), as in coloured output.
	if b < 0x40 || b > 0x7e {
		return false
	}
	for d := 2; d < histLen; d++ {
		switch c := s.at(src, k-d); {
		case c == '[':
			return s.at(src, k-d-1) == 0x1b
		case c < 0x20 || c > 0x3f:
			return false
		}
	}
	return false
}

// remember records consumed input as history for later boundary checks.
func (s *scanner) remember(b []byte) {
	if len(b) >= histLen {
		copy(s.hist[:], b[len(b)-histLen:])
		return
	}
	copy(s.hist[:], s.hist[len(b):])
	copy(s.hist[histLen-len(b):], b)
}

// scan appends the rewrite of src to dst. Unless final, it stops before a
// possible path whose outcome depends on bytes not yet seen; it returns how
// much of src it consumed, and the caller must present the rest again with
// more input after it.
func (s *scanner) scan(dst, src []byte, final bool) ([]byte, int) {
	dst, n, _ := s.scanLazy(dst, src, final, false)
	return dst, n
}

// scanLazy is scan that, when lazy is set and nothing in src[:n] needs
// rewriting, appends nothing and returns same: the rewrite is src[:n]
// itself, and the caller may pass it on without a copy.
func (s *scanner) scanLazy(dst, src []byte, final, lazy bool) (out []byte, consumed int, same bool) {
	changed := s.inPath
	m := s.m
	n := len(src)
	i := 0 // src[:i] is already in dst
	pos := 0
	stop := n
loop:
	for {
		if s.inPath {
			e := pos
			for e < n && !delim[src[e]] {
				e++
			}
			dst = appendBackslashed(dst, src[i:e])
			i, pos = e, e
			changed = true
			if e == n {
				break
			}
			s.inPath = false
		}
		j := bytes.IndexByte(src[pos:], '/')
		if j < 0 {
			break
		}
		j += pos
		pos = j + 1
		if f := j - 5; f >= i && string(src[f:j]) == "file:" && s.boundaryBefore(src, f) {
			mt, l, exact := m.matchURI(src[f:], final)
			if l < 0 {
				stop = f
				break loop
			}
			if mt != nil {
				dst = append(dst, src[i:f]...)
				changed = true
				if exact {
					dst = append(dst, mt.uExact...)
				} else {
					dst = append(dst, mt.uJoin...)
				}
				i, pos = f+l, f+l
				continue
			}
		}
		if !s.boundaryBefore(src, j) {
			continue
		}
		mt, l, exact := m.matchPath(src[j:], final)
		if l < 0 {
			stop = j
			break
		}
		if mt == nil {
			continue
		}
		dst = append(dst, src[i:j]...)
		changed = true
		if exact {
			dst = append(dst, mt.hExact...)
		} else {
			dst = append(dst, mt.hJoin...)
		}
		i, pos = j+l, max(j+l, j+1) // a root mount matches nothing but the '/'
		s.inPath = m.flavor == Windows
	}
	if stop == n && !final && !s.inPath {
		// A trailing "file:" prefix may become a URI.
		for k := max(i, n-5); k < n; k++ {
			if strings.HasPrefix("file:", string(src[k:])) && s.boundaryBefore(src, k) {
				stop = k
				break
			}
		}
	}
	s.remember(src[:stop])
	if lazy && !changed {
		return dst, stop, true
	}
	return append(dst, src[i:stop]...), stop, false
}

func appendBackslashed(dst, b []byte) []byte {
	for {
		j := bytes.IndexByte(b, '/')
		if j < 0 {
			return append(dst, b...)
		}
		dst = append(append(dst, b[:j]...), '\\')
		b = b[j+1:]
	}
}

// matchPath matches the longest mount container path at the start of s (which
// starts with '/'). It returns the mount (nil for none), the matched length,
// whether the match is the whole mount path rather than a path below it, and a
// length of -1 when the answer needs more bytes than s holds.
func (m *Mapper) matchPath(s []byte, final bool) (*mount, int, bool) {
	for _, mt := range m.byCont {
		p := mt.cpre
		if len(s) <= len(p) {
			if string(s) != p[:len(s)] {
				continue
			}
			if !final {
				return nil, -1, false
			}
			if len(s) == len(p) {
				return mt, len(p), true
			}
			continue
		}
		if string(s[:len(p)]) != p {
			continue
		}
		if s[len(p)] == '/' {
			return mt, len(p), false
		}
		if p == "" {
			continue
		}
		switch endsPath(s[len(p):], final) {
		case endYes:
			return mt, len(p), true
		case endMore:
			return nil, -1, false
		}
	}
	return nil, 0, false
}

// ending is endsPath's answer.
type ending int

const (
	endNo   ending = iota
	endYes         // s starts with a delimiter or quote
	endMore        // s is a proper prefix of a quote
)

// quotes are typographic quotes, which delimit paths like ASCII quotes do.
var quotes = []string{"‘", "’", "“", "”", "«", "»"}

// endsPath reports whether non-empty s starts with a delimiter or a quote.
func endsPath(s []byte, final bool) ending {
	if delim[s[0]] {
		return endYes
	}
	if s[0] < 0x80 {
		return endNo
	}
	for _, q := range quotes {
		if len(s) >= len(q) && string(s[:len(q)]) == q {
			return endYes
		}
		if !final && len(s) < len(q) && q[:len(s)] == string(s) {
			return endMore
		}
	}
	return endNo
}

// matchURI is matchPath for s starting with "file:", comparing the path after
// "file://" percent-decoded. A query or fragment also ends the mount path.
func (m *Mapper) matchURI(s []byte, final bool) (*mount, int, bool) {
	const scheme = "file://"
	if len(s) < len(scheme) {
		if !final && string(s) == scheme[:len(s)] {
			return nil, -1, false
		}
		return nil, 0, false
	}
	if string(s[:len(scheme)]) != scheme {
		return nil, 0, false
	}
	body := s[len(scheme):]
next:
	for _, mt := range m.byCont {
		p := mt.cpre
		j := 0
		for k := 0; k < len(p); k++ {
			c, w := decodeAt(body, j, final)
			if w < 0 {
				return nil, -1, false
			}
			if w == 0 || c != p[k] {
				continue next
			}
			j += w
		}
		c, w := decodeAt(body, j, final)
		switch {
		case w < 0:
			return nil, -1, false
		case w == 0:
			if p != "" {
				return mt, len(scheme) + j, true
			}
		case c == '/':
			return mt, len(scheme) + j, false
		case w == 1 && p != "":
			if c == '?' || c == '#' {
				return mt, len(scheme) + j, true
			}
			switch endsPath(body[j:], final) {
			case endYes:
				return mt, len(scheme) + j, true
			case endMore:
				return nil, -1, false
			}
		}
	}
	return nil, 0, false
}

// decodeAt reads one possibly percent-encoded byte at b[j] and returns it with
// its encoded width: 0 at the end of final input, -1 when more input is needed
// to tell.
func decodeAt(b []byte, j int, final bool) (byte, int) {
	if j >= len(b) {
		if final {
			return 0, 0
		}
		return 0, -1
	}
	if b[j] != '%' {
		return b[j], 1
	}
	for k := j + 1; k <= j+2; k++ {
		if k >= len(b) {
			if final {
				return '%', 1
			}
			return 0, -1
		}
		if !isHex(b[k]) {
			return '%', 1
		}
	}
	return unhex(b[j+1])<<4 | unhex(b[j+2]), 3
}

// lookahead is the most bytes a possible path needs before it is decided.
func (m *Mapper) lookahead() int { return len("file://") + 3*m.maxCont + 3 }

// RewriteToHost replaces every container path and container file URI in text
// with its host form; everything else is left byte for byte. Paths are
// recognised by their mount prefix as the package documentation describes,
// and are not cleaned, so "/workspaces/proj/../x" becomes "/home/u/proj/../x".
func (m *Mapper) RewriteToHost(text string) string {
	// Most text has no container path: hand it back without copying.
	found := strings.Contains(text, "file://")
	for _, mt := range m.byCont {
		found = found || strings.Contains(text, mt.cpre) && strings.Contains(text, "/")
	}
	if !found {
		return text
	}
	s := scanner{m: m}
	out, _ := s.scan(make([]byte, 0, len(text)+len(text)/8), []byte(text), true)
	return string(out)
}

// Writer rewrites container paths to host paths in a byte stream. Create one
// with Mapper.NewWriter; it is not safe for concurrent use.
type Writer struct {
	w    io.Writer
	sc   scanner
	held []byte // undecided input: a possible path start waiting for more bytes
	out  []byte // output staged for one write to w
	win  int    // input bytes scanned per write to w
	step int    // input bytes added to held at a time
	err  error
}

// NewWriter returns a Writer that passes everything written to it on to w with
// container paths rewritten to host paths, exactly as RewriteToHost would do on
// the whole stream however it is split into writes. It holds back only a tail
// that could still become a path; call Flush or Close at the end.
func (m *Mapper) NewWriter(w io.Writer) *Writer {
	la := m.lookahead()
	return &Writer{w: w, sc: scanner{m: m}, win: max(64<<10, 4*la), step: max(64, 2*la)}
}

// Write rewrites p onto the underlying writer. It returns len(p) unless the
// underlying writer fails; after a failure every call returns that error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	// Decide the held-back tail using a few new bytes at a time, so a large p
	// is not copied.
	for len(w.held) > 0 && len(p) > 0 {
		k := min(len(p), w.step)
		w.held = append(w.held, p[:k]...)
		p = p[k:]
		var c int
		w.out, c = w.sc.scan(w.out, w.held, false)
		w.held = w.held[:copy(w.held, w.held[c:])]
	}
	for len(p) > 0 {
		win := p[:min(len(p), w.win)]
		// Nothing staged: a window with nothing to rewrite goes on as it
		// is, without a copy.
		out, c, same := w.sc.scanLazy(w.out, win, false, len(w.out) == 0)
		w.out = out
		if same {
			if err := w.pass(win[:c]); err != nil {
				return 0, err
			}
		}
		if c < len(win) && len(win) == len(p) {
			w.held = append(w.held, win[c:]...)
			c = len(win)
		}
		// c < len(win) otherwise: a path cut by the window; it starts the next.
		p = p[c:]
		if err := w.drain(); err != nil {
			return 0, err
		}
	}
	if err := w.drain(); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush writes out the held-back tail, deciding it as if the stream ended
// there.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if len(w.held) > 0 {
		w.out, _ = w.sc.scan(w.out, w.held, true)
		w.held = w.held[:0]
	}
	return w.drain()
}

// Close is Flush; it does not close the underlying writer.
func (w *Writer) Close() error { return w.Flush() }

func (w *Writer) drain() error {
	err := w.pass(w.out)
	w.out = w.out[:0]
	return err
}

// pass writes b to the underlying writer.
func (w *Writer) pass(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := w.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	w.err = err
	return err
}
