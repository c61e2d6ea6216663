// Package pathmap translates paths and file URIs between a host workspace and
// the container it is bind-mounted into, and rewrites container paths inside
// process output back to their host form.
//
// Everything here is a pure function of the mounts and its input: nothing
// touches the filesystem, so symlinks and case-preserving renames on disk are
// not consulted.
//
// ToContainer and ToHost clean their input and match mounts longest first, at
// whole path components. RewriteToHost and Writer work on raw text instead: a
// container path there is a mount's container path that starts at the start
// of the text or after a delimiter (whitespace, control bytes, quotes including
// typographic ones, brackets, = , : ; | * ? or an ANSI colour sequence) and is
// followed by '/', a delimiter or the end. Only that prefix is replaced and the
// rest is not cleaned; on a Windows host the rest of the path, up to the next
// delimiter, gets backslashes. A file URI is "file://" and a mount's container
// path compared after percent-decoding; it gets the host URI prefix and keeps
// its tail verbatim.
package pathmap

import (
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Flavor is the path syntax of the host side of the mounts.
type Flavor int

const (
	// Posix is a Linux or macOS host: slash-separated, case-sensitive paths.
	Posix Flavor = iota
	// Windows is a Windows host: drive letters, backslashes, case-insensitive.
	Windows
)

// HostFlavor returns the Flavor of the machine this program runs on.
func HostFlavor() Flavor {
	if runtime.GOOS == "windows" {
		return Windows
	}
	return Posix
}

// String returns "posix" or "windows".
func (f Flavor) String() string {
	switch f {
	case Posix:
		return "posix"
	case Windows:
		return "windows"
	}
	return fmt.Sprintf("Flavor(%d)", int(f))
}

// Mount is one bind mount: a host directory and where it appears in the
// container.
type Mount struct {
	Host      string `json:"host"`      // absolute host path (in the host flavour)
	Container string `json:"container"` // absolute container path (always POSIX)
}

// Mapper translates between host and container paths for a fixed set of
// mounts. It is immutable and safe for concurrent use.
type Mapper struct {
	flavor  Flavor
	mounts  []mount
	byHost  []*mount // most host components first; ties keep the caller's order
	byCont  []*mount // longest container path first
	maxCont int      // longest container path in bytes; bounds the Writer's hold-back
}

type mount struct {
	norm  Mount
	drive byte     // Windows drive letter as written in the mount
	host  []string // host components below the root (or drive root)
	cont  []string // container components below /
	cpre  string   // container path without trailing slash: "" for /

	// Replacements for the text rewriter. "join" forms have no trailing
	// separator so the container tail (which starts with '/') can follow.
	hJoin, hExact string
	uJoin, uExact string
}

// New validates mounts and returns a Mapper for a host of the given flavour.
// Both sides of every mount must be absolute, and no two mounts may share a
// container path (the container could only show one of them).
func New(host Flavor, mounts []Mount) (*Mapper, error) {
	if host != Posix && host != Windows {
		return nil, fmt.Errorf("pathmap: unknown host flavor %d", int(host))
	}
	m := &Mapper{flavor: host, mounts: make([]mount, len(mounts))}
	seen := make(map[string]int, len(mounts))
	for i, in := range mounts {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("pathmap: mount %d (host %q, container %q): %s",
				i, in.Host, in.Container, fmt.Sprintf(format, args...))
		}
		drive, hc, ok := parseHostPath(host, in.Host)
		if !ok {
			if host == Windows {
				return nil, bad("host path is not an absolute Windows path like C:\\dir")
			}
			return nil, bad("host path is not absolute")
		}
		if !strings.HasPrefix(in.Container, "/") {
			return nil, bad("container path is not absolute")
		}
		cc := splitPosix(in.Container)
		cpath := joinPosix(cc, nil)
		if j, dup := seen[cpath]; dup {
			return nil, bad("container path %s is already used by mount %d", cpath, j)
		}
		seen[cpath] = i

		mt := &m.mounts[i]
		mt.drive, mt.host, mt.cont = drive, hc, cc
		mt.hExact = m.hostPath(drive, hc, nil)
		mt.uExact = m.hostURI(drive, hc, nil)
		mt.norm = Mount{Host: mt.hExact, Container: cpath}
		mt.cpre = strings.TrimSuffix(cpath, "/")
		mt.hJoin, mt.uJoin = mt.hExact, mt.uExact
		if len(hc) == 0 { // a root ends in a separator that the tail brings again
			mt.hJoin = mt.hExact[:len(mt.hExact)-1]
			mt.uJoin = mt.uExact[:len(mt.uExact)-1]
		}
		m.maxCont = max(m.maxCont, len(mt.cpre))
		m.byHost = append(m.byHost, mt)
		m.byCont = append(m.byCont, mt)
	}
	sort.SliceStable(m.byHost, func(a, b int) bool { return len(m.byHost[a].host) > len(m.byHost[b].host) })
	sort.SliceStable(m.byCont, func(a, b int) bool { return len(m.byCont[a].cpre) > len(m.byCont[b].cpre) })
	return m, nil
}

// Mounts returns the mounts in the order given to New, normalised: cleaned,
// without trailing separators, and with backslashes on a Windows host.
func (m *Mapper) Mounts() []Mount {
	out := make([]Mount, len(m.mounts))
	for i := range m.mounts {
		out[i] = m.mounts[i].norm
	}
	return out
}

// ToContainer maps a host path or a host file URI to the container. It answers
// in the form it was given: a path for a path, a file URI for a file URI (with
// any query or fragment kept verbatim). ok is false when no mount covers p, when
// p is not absolute or not a file URI, or when the container cannot see p
// because a more specific container mount hides it.
func (m *Mapper) ToContainer(p string) (string, bool) {
	isURI := hasFileScheme(p)
	hp, suffix := p, ""
	if isURI {
		var ok bool
		if hp, suffix, ok = parseFileURI(p); !ok {
			return "", false
		}
		if m.flavor == Windows {
			// VS Code writes file:///c%3A/dir; the decoded path is /c:/dir.
			if len(hp) < 3 || !isLetter(hp[1]) || hp[2] != ':' || len(hp) > 3 && hp[3] != '/' && hp[3] != '\\' {
				return "", false
			}
			hp = hp[1:]
			if len(hp) == 2 {
				hp += "/"
			}
		}
	}
	drive, comps, ok := parseHostPath(m.flavor, hp)
	if !ok {
		return "", false
	}
	for _, mt := range m.byHost {
		rest, ok := m.underHost(mt, drive, comps)
		if !ok {
			continue
		}
		// Another mount may sit over this spot in the container; then this
		// mount cannot show p there and a less specific one might.
		cc := append(append(make([]string, 0, len(mt.cont)+len(rest)), mt.cont...), rest...)
		if back, brest := m.contMount(cc); back != mt && !m.sameHost(back, brest, drive, comps) {
			continue
		}
		cp := joinPosix(mt.cont, rest)
		if isURI {
			return "file://" + string(appendEscaped(nil, cp)) + suffix, true
		}
		return cp, true
	}
	return "", false
}

// ToHost maps a container path or container file URI to the host, answering in
// the form it was given. Host paths use the host flavour's separators; host
// URIs use VS Code's form (file:///c%3A/dir on Windows). ok is false when no
// mount covers p or p is not absolute or not a file URI.
func (m *Mapper) ToHost(p string) (string, bool) {
	isURI := hasFileScheme(p)
	cp, suffix := p, ""
	if isURI {
		var ok bool
		if cp, suffix, ok = parseFileURI(p); !ok {
			return "", false
		}
	}
	if !strings.HasPrefix(cp, "/") {
		return "", false
	}
	mt, rest := m.contMount(splitPosix(cp))
	if mt == nil {
		return "", false
	}
	if isURI {
		return m.hostURI(mt.drive, mt.host, rest) + suffix, true
	}
	return m.hostPath(mt.drive, mt.host, rest), true
}

// contMount finds the most specific mount covering container components cc.
func (m *Mapper) contMount(cc []string) (*mount, []string) {
	for _, mt := range m.byCont {
		if len(cc) >= len(mt.cont) && equalComps(cc[:len(mt.cont)], mt.cont, false) {
			return mt, cc[len(mt.cont):]
		}
	}
	return nil, nil
}

// underHost reports whether the host path (drive, comps) lies under mt and
// returns the components below it.
func (m *Mapper) underHost(mt *mount, drive byte, comps []string) ([]string, bool) {
	if len(comps) < len(mt.host) {
		return nil, false
	}
	fold := m.flavor == Windows
	if fold && lowerASCII(drive) != lowerASCII(mt.drive) {
		return nil, false
	}
	if !equalComps(comps[:len(mt.host)], mt.host, fold) {
		return nil, false
	}
	return comps[len(mt.host):], true
}

// sameHost reports whether mount mt with the components rest below it names
// the host path (drive, comps).
func (m *Mapper) sameHost(mt *mount, rest []string, drive byte, comps []string) bool {
	if mt == nil || len(mt.host)+len(rest) != len(comps) {
		return false
	}
	r, ok := m.underHost(mt, drive, comps)
	return ok && equalComps(r, rest, m.flavor == Windows)
}

// hostPath formats a host path from a mount's components and the rest.
func (m *Mapper) hostPath(drive byte, a, b []string) string {
	if m.flavor == Posix {
		return joinPosix(a, b)
	}
	var sb strings.Builder
	sb.WriteByte(drive)
	sb.WriteString(`:\`)
	writeJoined(&sb, a, b, '\\')
	return sb.String()
}

// hostURI formats a host file URI the way VS Code does.
func (m *Mapper) hostURI(drive byte, a, b []string) string {
	var sb strings.Builder
	sb.WriteByte('/')
	if m.flavor == Windows {
		sb.WriteByte(lowerASCII(drive))
		sb.WriteString(":/")
	}
	writeJoined(&sb, a, b, '/')
	return "file://" + string(appendEscaped(nil, sb.String()))
}

// parseHostPath cleans an absolute host path into its drive (Windows only) and
// components. Windows accepts either separator; UNC paths are not supported.
func parseHostPath(f Flavor, p string) (drive byte, comps []string, ok bool) {
	if f == Posix {
		if !strings.HasPrefix(p, "/") {
			return 0, nil, false
		}
		return 0, splitPosix(p), true
	}
	if len(p) < 3 || !isLetter(p[0]) || p[1] != ':' || p[2] != '/' && p[2] != '\\' {
		return 0, nil, false
	}
	return p[0], splitPosix(strings.ReplaceAll(p[2:], `\`, "/")), true
}

// splitPosix cleans an absolute slash path and returns its components.
func splitPosix(p string) []string {
	p = path.Clean(p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

func joinPosix(a, b []string) string {
	var sb strings.Builder
	sb.WriteByte('/')
	writeJoined(&sb, a, b, '/')
	return sb.String()
}

func writeJoined(sb *strings.Builder, a, b []string, sep byte) {
	n := 0
	for _, part := range [2][]string{a, b} {
		for _, c := range part {
			if n > 0 {
				sb.WriteByte(sep)
			}
			sb.WriteString(c)
			n++
		}
	}
}

func equalComps(a, b []string, fold bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && (!fold || !foldEqual(a[i], b[i])) {
			return false
		}
	}
	return true
}

// foldEqual compares like Windows does, by upper-casing each rune. Unlike
// strings.EqualFold it never treats two different invalid bytes as equal.
func foldEqual(a, b string) bool {
	for a != "" && b != "" {
		if a[0] < utf8.RuneSelf && b[0] < utf8.RuneSelf {
			if lowerASCII(a[0]) != lowerASCII(b[0]) {
				return false
			}
			a, b = a[1:], b[1:]
			continue
		}
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra == utf8.RuneError && na <= 1 || rb == utf8.RuneError && nb <= 1 {
			if a[:na] != b[:nb] {
				return false
			}
		} else if ra != rb && unicode.ToUpper(ra) != unicode.ToUpper(rb) {
			return false
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b == ""
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hasFileScheme(s string) bool { return len(s) >= 5 && strings.EqualFold(s[:5], "file:") }

// parseFileURI splits a file URI into its percent-decoded path and its
// verbatim "?query#fragment" suffix. The authority must be empty or
// "localhost"; file:/path (no authority) is accepted too.
func parseFileURI(s string) (p, suffix string, ok bool) {
	if !hasFileScheme(s) {
		return "", "", false
	}
	rest := s[5:]
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest, suffix = rest[:i], rest[i:]
	}
	if strings.HasPrefix(rest, "//") {
		rest = rest[2:]
		auth := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			auth, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if auth != "" && !strings.EqualFold(auth, "localhost") {
			return "", "", false
		}
	}
	if !strings.HasPrefix(rest, "/") {
		return "", "", false
	}
	return unescape(rest), suffix, true
}

// appendEscaped percent-encodes a URI path as VS Code does: everything but
// RFC 3986 unreserved characters and '/' is encoded, with upper-case hex.
func appendEscaped(dst []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isLetter(c) || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
		}
	}
	return dst
}

// unescape percent-decodes s. Like VS Code it is lenient: a '%' not followed by
// two hex digits stays as it is.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// ParseFileURI splits a file URI into its percent-decoded path and its
// verbatim "?query#fragment" suffix, by the rules ToHost and ToContainer
// use. ok is false for anything but a local file URI with an absolute path.
func ParseFileURI(s string) (p, suffix string, ok bool) { return parseFileURI(s) }

// FileURI is the file URI of an absolute POSIX path p, percent-encoded as
// the mapper encodes its URIs.
func FileURI(p string) string { return "file://" + string(appendEscaped(nil, p)) }
