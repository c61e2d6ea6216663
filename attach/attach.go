// Package attach serves berth's protocol to editors over TCP and unix
// sockets, safely. A TCP listener takes loopback addresses only (unless
// told otherwise) and admits a client only after it shows a token that
// berth keeps in a file only the user can read. A unix socket is created
// with mode 0600 and admits only peers of berth's own user, or root.
// Either way, connections are capped and must initialize in time. The
// package also holds `berth connect`, the stdio bridge for editors that
// cannot dial a socket.
package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/unixsock"
)

// Defaults for Options.
const (
	DefaultMaxConns    = 32
	DefaultInitTimeout = 10 * time.Second
)

// ErrNotLoopback is a --tcp address that other machines (or containers)
// could reach, given without --tcp-insecure-listen.
var ErrNotLoopback = errors.New("not a loopback address")

// ErrBadToken is a token berth won't use: empty, short or exposed.
var ErrBadToken = errors.New("unusable token")

// ErrSocketPath is a --listen path berth won't take over.
var ErrSocketPath = errors.New("unusable socket path")

// Options configure Listen.
type Options struct {
	// TCP is --tcp's HOST:PORT; Unix is --listen's socket path. Exactly
	// one is set.
	TCP  string
	Unix string
	// Insecure lets TCP be an address that isn't loopback
	// (--tcp-insecure-listen). The token is required all the same.
	Insecure bool
	// TokenFile (--tcp-token-file), else Token ($BERTH_TOKEN), supplies the
	// TCP token. With neither, berth makes one and writes it to
	// TokenPath(port), removed again by Close.
	TokenFile string
	Token     string
	// MaxConns caps concurrent connections; 0 means DefaultMaxConns.
	MaxConns int
	// InitTimeout bounds the time to a valid initialize; 0 means
	// DefaultInitTimeout.
	InitTimeout time.Duration
	Log         *slog.Logger
	// Notice gets the lines for the person who started berth: where it
	// listens and where its token is.
	Notice io.Writer
}

// Server serves one connection; *rpc.Server is one.
type Server interface {
	ServeConnWith(ctx context.Context, rwc io.ReadWriteCloser, opts rpc.ConnOptions) error
}

// Listener is a bound TCP or unix listener with its admission rules.
type Listener struct {
	ln          net.Listener
	log         *slog.Logger
	maxConns    int
	initTimeout time.Duration
	token       string // TCP's; empty for a unix socket
	tokenFile   string // a token file berth wrote, removed by Close
	sockPath    string // the socket berth made
	removeSock  func() // removes it, by Close
	closeOnce   sync.Once
}

// Listen checks o and binds its address.
func Listen(o Options) (*Listener, error) {
	if (o.TCP == "") == (o.Unix == "") {
		return nil, errors.New("attach: exactly one of a TCP address and a unix socket path is needed")
	}
	l := &Listener{log: o.Log, maxConns: o.MaxConns, initTimeout: o.InitTimeout}
	if l.maxConns <= 0 {
		l.maxConns = DefaultMaxConns
	}
	if l.initTimeout <= 0 {
		l.initTimeout = DefaultInitTimeout
	}
	if o.Unix != "" {
		ln, remove, err := unixsock.Listen(o.Unix)
		if err != nil {
			return nil, fmt.Errorf("--listen unix:%s: %w: %w", o.Unix, ErrSocketPath, err)
		}
		l.ln, l.removeSock, l.sockPath = ln, remove, o.Unix
		fmt.Fprintf(o.Notice, "berth: listening on unix:%s\n", o.Unix)
		return l, nil
	}
	if err := CheckTCP(o.TCP, o.Insecure); err != nil {
		return nil, err
	}
	// Read a supplied token before listening, so a bad one fails first.
	token, err := suppliedToken(o.TokenFile, o.Token)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.TCP)
	if err != nil {
		return nil, fmt.Errorf("--tcp: %w", err)
	}
	l.ln = ln
	addr := ln.Addr().(*net.TCPAddr)
	if !o.Insecure && !addr.IP.IsLoopback() {
		// "localhost" resolved to something else.
		ln.Close()
		return nil, fmt.Errorf("--tcp %s: bound %s, %w", o.TCP, addr, ErrNotLoopback)
	}
	if token == "" {
		if token, err = NewToken(); err != nil {
			ln.Close()
			return nil, err
		}
		path, err := TokenPath(addr.Port)
		if err == nil {
			err = writeTokenFile(path, token)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("--tcp: writing the token file: %w", err)
		}
		l.tokenFile = path
	}
	l.token = token
	if l.tokenFile != "" {
		fmt.Fprintf(o.Notice, "berth: token in %s (clients send it as initializationOptions.token; berth connect reads it)\n", l.tokenFile)
	}
	// Last: scripts wait for this line.
	fmt.Fprintf(o.Notice, "berth: listening on %s\n", addr)
	if o.Insecure && !addr.IP.IsLoopback() {
		l.log.Warn("listening beyond loopback: anyone who can reach this address and has the token can run commands as berth's user", "addr", addr.String())
	}
	return l, nil
}

// Addr is the address clients dial.
func (l *Listener) Addr() net.Addr {
	if l.sockPath != "" {
		return &net.UnixAddr{Name: l.sockPath, Net: "unix"} // not the name it was bound under
	}
	return l.ln.Addr()
}

// TokenFile is the token file berth wrote, or "" when the token was
// supplied or the listener is a unix socket.
func (l *Listener) TokenFile() string { return l.tokenFile }

// Serve accepts connections and serves each with srv until ctx ends or the
// listener is closed; it returns once every connection has ended.
//
// Goroutines: one per connection served and one per connection refused
// over the cap, all waited for before Serve returns.
func (l *Listener) Serve(ctx context.Context, srv Server) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { l.ln.Close() })
	defer stop()
	slots := make(chan struct{}, l.maxConns)
	backoff := 5 * time.Millisecond
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors, say: wait, don't spin or quit.
			l.log.Warn("accept failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		remote := remoteName(nc)
		refuse := func(err error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = rpc.Refuse(nc, err)
				nc.Close()
			}()
		}
		if l.token == "" {
			if err := checkPeer(nc); err != nil {
				l.log.Warn("refused a connection", "remote", remote, "err", err)
				refuse(err)
				continue
			}
		}
		select {
		case slots <- struct{}{}:
		default:
			l.log.Warn("refused a connection: too many open", "remote", remote, "max", l.maxConns)
			refuse(fmt.Errorf("%w: berth serves at most %d at once (--max-connections)", rpc.ErrTooManyConnections, l.maxConns))
			continue
		}
		l.log.Info("client connected", "remote", remote)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer nc.Close()
			err := srv.ServeConnWith(ctx, nc, rpc.ConnOptions{Token: l.token, InitTimeout: l.initTimeout})
			l.log.Info("client ended", "remote", remote, "err", err)
		}()
	}
}

func remoteName(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return "unix"
}

// Close stops listening and removes the token file or socket berth made.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.ln.Close()
		if l.tokenFile != "" {
			removeTokenFile(l.tokenFile, l.token)
		}
		if l.removeSock != nil {
			l.removeSock()
		}
	})
	return err
}
