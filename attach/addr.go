package attach

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// CheckTCP validates --tcp's HOST:PORT. Without insecure, HOST must be a
// loopback address: 127.0.0.0/8, ::1 or "localhost". Any other host, and
// an empty one (every interface), would let other machines, and processes
// in containers through the bridge's gateway, drive berth.
func CheckTCP(addr string, insecure bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--tcp %q: want HOST:PORT, e.g. 127.0.0.1:7420: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--tcp %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if insecure || IsLoopback(host) {
		return nil
	}
	return fmt.Errorf("--tcp %s: %w: whoever reaches it could act as root on this host through berth; "+
		"use 127.0.0.1, [::1] or localhost (or --listen unix:PATH), or pass --tcp-insecure-listen to listen there anyway (the token is still required)",
		addr, ErrNotLoopback)
}

// IsLoopback reports whether host names a loopback address: "localhost",
// an address in 127.0.0.0/8, or ::1.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Target is where `berth connect` dials.
type Target struct {
	Network string // "unix" or "tcp"
	Address string // the socket path, or HOST:PORT
	Port    int    // TCP's port
}

// ParseTarget parses `berth connect`'s ADDR: unix:PATH, tcp:HOST:PORT or
// HOST:PORT.
func ParseTarget(addr string) (Target, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if p == "" {
			return Target{}, fmt.Errorf("%q: want unix:PATH", addr)
		}
		return Target{Network: "unix", Address: p}, nil
	}
	a := strings.TrimPrefix(strings.TrimPrefix(addr, "tcp:"), "//")
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return Target{}, fmt.Errorf("%q: want unix:PATH, tcp:HOST:PORT or HOST:PORT: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Target{}, fmt.Errorf("%q: port %q is not a number from 1 to 65535", addr, port)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return Target{Network: "tcp", Address: net.JoinHostPort(host, port), Port: int(n)}, nil
}

// ParseListen parses --listen's value, unix:PATH, into the path.
func ParseListen(v string) (string, error) {
	p, ok := strings.CutPrefix(v, "unix:")
	if !ok || p == "" {
		return "", fmt.Errorf("--listen %q: want unix:PATH (for TCP, use --tcp)", v)
	}
	return p, nil
}
