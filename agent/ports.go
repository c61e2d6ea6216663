package agent

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ListenPort is a TCP socket listening in the instance, as the agent's
// port watch reports it.
type ListenPort struct {
	Port int    `json:"port"`
	Addr string `json:"addr"`           // the bind address: "0.0.0.0", "::", "127.0.0.1", ...
	PID  int    `json:"pid,omitempty"`  // its owner in the instance; 0: none found
	PGID int    `json:"pgid,omitempty"` // the owner's process group
	Name string `json:"name,omitempty"` // the owner's comm
}

// portsMsg is a port watch's frame: every listener, each time the set
// changes.
type portsMsg struct {
	Ports []ListenPort `json:"ports"`
}

// maxPorts bounds the listeners berth takes from one report.
const maxPorts = 4096

// tcpListen is the state of a listening socket in /proc/net/tcp{,6}.
const tcpListen = "0A"

// netEntry is one listening socket of /proc/net/tcp{,6}.
type netEntry struct {
	addr  netip.Addr
	port  int
	inode uint64
}

// parseNetTCP reads a /proc/net/tcp or /proc/net/tcp6 table and returns
// its listening sockets. Addresses are the kernel's 32-bit words in host
// (little-endian on every platform berth has agents for) order.
func parseNetTCP(r io.Reader) ([]netEntry, error) {
	var out []netEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	first := true
	for sc.Scan() {
		if first { // the header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != tcpListen {
			continue
		}
		addr, port, err := parseHexAddr(f[1])
		if err != nil {
			return nil, err
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("inode %q: %w", f[9], err)
		}
		out = append(out, netEntry{addr: addr, port: port, inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddr reads "0100007F:1F90" (IPv4) or a 32-digit IPv6 address
// and port.
func parseHexAddr(s string) (netip.Addr, int, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("address %q: %w", s, err)
	}
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("address %q: not 4 or 16 hex bytes", s)
	}
	// Each 32-bit word is in the kernel's byte order: little-endian.
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	addr, _ := netip.AddrFromSlice(b)
	if addr.Is4In6() && !addr.IsUnspecified() {
		addr = addr.Unmap()
	}
	return addr, int(port), nil
}

// checkPorts vets a port report of the agent's before berth uses it.
func checkPorts(m *portsMsg) error {
	if len(m.Ports) > maxPorts {
		return fmt.Errorf("%w: %d ports", errBadFrame, len(m.Ports))
	}
	for i := range m.Ports {
		p := &m.Ports[i]
		if p.Port <= 0 || p.Port > 65535 || p.PID < 0 || p.PID > maxPID || p.PGID < 0 || p.PGID > maxPID {
			return fmt.Errorf("%w: port %d, pid %d", errBadFrame, p.Port, p.PID)
		}
		if _, err := netip.ParseAddr(p.Addr); err != nil {
			return fmt.Errorf("%w: address %q", errBadFrame, agentText(p.Addr))
		}
		p.Name = agentText(p.Name)
		if len(p.Name) > 64 {
			p.Name = p.Name[:64]
		}
	}
	return nil
}

// BrowseDir holds the agents' $BROWSER sockets.
const BrowseDir = Dir + "/browse"

// BrowserPath is what berth sets BROWSER to in the instance.
const BrowserPath = Dir + "/browser"

// browseTimeout bounds one request at the socket: reading it, and berth's
// answer.
const browseTimeout = 15 * time.Second

// maxURL bounds a URL that the $BROWSER helper asks to open.
const maxURL = 8 << 10

// CheckBrowseURL is the one check of a URL that the $BROWSER helper asks
// berth to open: absolute http or https, of bounded size, no controls.
func CheckBrowseURL(s string) error {
	if len(s) > maxURL {
		return fmt.Errorf("URL of %d bytes exceeds %d", len(s), maxURL)
	}
	if agentText(s) != s || strings.ContainsAny(s, " \t") {
		return fmt.Errorf("URL %q has control characters or spaces", agentText(s))
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("only http and https URLs are opened, not %q", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q has no host", s)
	}
	return nil
}

// hostIsLocal reports whether host names the instance itself.
func hostIsLocal(host string) bool {
	switch strings.ToLower(host) {
	case "localhost", "localhost.", "0.0.0.0", "::", "::1":
		return true
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.IsLoopback()
	}
	return strings.HasSuffix(strings.ToLower(host), ".localhost")
}

// LocalPort returns the port a localhost URL (host[:port]) reaches in the
// instance, with its scheme's default, or false for any other host.
func LocalPort(scheme, hostport string) (string, int, bool) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), ""
	}
	if !hostIsLocal(host) {
		return "", 0, false
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, false
	}
	return host, n, true
}

// HostURL returns the URL that reaches, from the host, what raw reaches in
// the instance: a localhost URL gets the host port that hostPort gives for
// its port, on the host's loopback; any other URL is returned as it is.
func HostURL(raw string, hostPort func(port int) (int, error)) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	host, port, local := LocalPort(u.Scheme, u.Host)
	if !local {
		return raw, nil
	}
	hp, err := hostPort(port)
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		host = "127.0.0.1" // forwards listen on IPv4
	} else {
		host = "localhost" // localhost, 0.0.0.0, ::, name.localhost
	}
	u.Host = net.JoinHostPort(host, strconv.Itoa(hp))
	return u.String(), nil
}
