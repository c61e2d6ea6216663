package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/rpc"
	"github.com/sourcegraph/jsonrpc2"
)

// envOpener names the variable that overrides the host's URL opener.
const envOpener = "BERTH_OPENER"

// openerTimeout bounds the opener: xdg-open and open return at once.
const openerTimeout = 10 * time.Second

// opener is the host command that opens a URL: $BERTH_OPENER (a program
// and its arguments, split on spaces), else open on macOS and xdg-open
// elsewhere.
func opener() []string {
	if v := strings.Fields(os.Getenv(envOpener)); len(v) > 0 {
		return v
	}
	if runtime.GOOS == "darwin" {
		return []string{"open"}
	}
	return []string{"xdg-open"}
}

// answer answers the in-process server's requests: window/showDocument,
// the container's $BROWSER, opens the URL with the host's opener. The URL
// reaches the host already (berth forwarded a localhost port); only
// http(s) is opened.
func (cli *cliClient) answer(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	if method != "window/showDocument" {
		return nil, &jsonrpc2.Error{Code: rpc.CodeMethodNotFound, Message: "the berth command answers no " + method}
	}
	var p rpc.ShowDocumentParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if err := agent.CheckBrowseURL(p.URI); err != nil {
		return rpc.ShowDocumentResult{}, nil
	}
	if u, err := url.Parse(p.URI); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return rpc.ShowDocumentResult{}, nil
	}
	if err := openURL(ctx, cli.stderr, p.URI); err != nil {
		return rpc.ShowDocumentResult{}, nil
	}
	return rpc.ShowDocumentResult{Success: true}, nil
}

// openURL opens url with the host's opener, whose output goes to stderr:
// stdout is the command's result.
func openURL(ctx context.Context, stderr io.Writer, url string) error {
	argv := append(opener(), url)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintf(stderr, "berth: cannot open %s: %v (set %s to a program that opens URLs)\n", url, err, envOpener)
	}
	return err
}

// browserBridge answers the $BROWSER requests of the processes that the
// direct path runs, as the full path's server and CLI client do together:
// a localhost URL's port is forwarded for as long as the command runs,
// the URL rewritten to it, and the host's opener run.
//
// Goroutines: the port watch that carries the requests, and per forward
// an accept loop and a joiner per connection; stop ends and waits for all.
type browserBridge struct {
	ac     *agent.Client
	stderr io.Writer
	log    *slog.Logger
	ctx    context.Context // ends at stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex // guards the following
	fwds  map[int]net.Listener
	conns map[net.Conn]bool
}

// startBrowserBridge starts answering $BROWSER requests through ac, or
// returns nil when its agent predates them.
func startBrowserBridge(ac *agent.Client, stderr io.Writer, log *slog.Logger) *browserBridge {
	if ac.Proto() < agent.ProtoPorts {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &browserBridge{ac: ac, stderr: stderr, log: log, ctx: ctx, cancel: cancel, fwds: map[int]net.Listener{}, conns: map[net.Conn]bool{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := ac.WatchPorts(ctx, nil, b.browse)
		if ctx.Err() == nil {
			log.Debug("$BROWSER bridge ended", "err", err)
		}
	}()
	return b
}

func (b *browserBridge) browse(ctx context.Context, raw string) error {
	u, err := agent.HostURL(raw, b.forward)
	if err != nil {
		return err
	}
	if err := openURL(ctx, b.stderr, u); err != nil {
		return fmt.Errorf("the host's opener failed: %w", err)
	}
	return nil
}

// forward returns the host port of a forward to the container's port,
// opening one on the same port when it is free, else on any.
func (b *browserBridge) forward(port int) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ln := b.fwds[port]; ln != nil {
		return ln.Addr().(*net.TCPAddr).Port, nil
	}
	if b.ctx.Err() != nil {
		return 0, b.ctx.Err()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return 0, err
		}
	}
	b.fwds[port] = ln
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			hc, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				cc, err := b.ac.Dial(b.ctx, addr)
				if err != nil {
					hc.Close()
					return
				}
				if !b.track(hc, cc) {
					return
				}
				agent.Join(hc, cc)
				b.mu.Lock()
				delete(b.conns, hc)
				delete(b.conns, cc)
				b.mu.Unlock()
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// track records a forwarded connection's ends, or closes them after stop.
func (b *browserBridge) track(a, c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx.Err() != nil {
		a.Close()
		c.Close()
		return false
	}
	b.conns[a], b.conns[c] = true, true
	return true
}

// stop ends the bridge: its watch, forwards and their connections.
func (b *browserBridge) stop() {
	if b == nil {
		return
	}
	b.cancel()
	b.mu.Lock()
	for _, ln := range b.fwds {
		ln.Close()
	}
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
