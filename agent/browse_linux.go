package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// The $BROWSER bridge. berth sets BROWSER to BrowserPath, a link to the
// agent's binary, which run as "browser URL" asks the agent to have berth
// open URL on the host. The helper reaches the agent on a unix socket in
// BrowseDir, one per agent, that any user of the instance may connect to:
// it carries one request, which can do nothing but ask to open an http(s)
// URL, and the agent passes it to the newest berth connection that
// watches with Browse. Unlike the door, it holds no key and reaches
// nothing else; berth checks the URL again and decides.

// maxBrowsing bounds the requests in flight at one agent's socket.
const maxBrowsing = 4

// browserSet is the connections that take $BROWSER requests, oldest first.
type browserSet struct {
	mu    sync.Mutex // guards conns
	conns []*conn
}

func (b *browserSet) add(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conns = append(b.conns, c)
}

func (b *browserSet) remove(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.conns) - 1; i >= 0; i-- {
		if b.conns[i] == c {
			b.conns = append(b.conns[:i], b.conns[i+1:]...)
			return
		}
	}
}

func (b *browserSet) newest() *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.conns) == 0 {
		return nil
	}
	return b.conns[len(b.conns)-1]
}

// errNoBrowser means no berth connection takes $BROWSER requests.
var errNoBrowser = errors.New("no berth session takes $BROWSER requests")

// browse passes url to the newest berth connection that takes it.
func (s *Server) browse(ctx context.Context, url string) error {
	c := s.browsers.newest()
	if c == nil {
		return errNoBrowser
	}
	st, err := c.sess.OpenStream()
	if err != nil {
		return errNoBrowser
	}
	defer st.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	if err := writeJSON(st, frameRequest, request{Op: opBrowse, URL: url}); err != nil {
		return errNoBrowser
	}
	var rep reply
	if err := readJSONMax(st, frameReply, &rep, maxJSON); err != nil {
		return fmt.Errorf("berth did not answer: %w", err)
	}
	if rep.Error != "" {
		return errors.New(agentText(rep.Error))
	}
	return nil
}

// openBrowse makes the agent's $BROWSER socket in dir and the link at
// link, and serves the socket until the returned stop is called.
func (s *Server) openBrowse(dir, link string) (stop func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if self, err := os.Executable(); err == nil {
		tmp := link + ".tmp" + strconv.Itoa(os.Getpid())
		_ = os.Remove(tmp)
		if err := os.Symlink(self, tmp); err == nil {
			if err := os.Rename(tmp, link); err != nil {
				os.Remove(tmp)
			}
		}
	}
	path := filepath.Join(dir, strconv.Itoa(os.Getpid())+".sock")
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	// Any user of the instance may ask: the request is all it can make.
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxBrowsing)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				nc.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				s.serveBrowse(nc)
			}()
		}
	}()
	return func() {
		ln.Close()
		wg.Wait()
	}, nil
}

// serveBrowse answers one request of the $BROWSER helper.
func (s *Server) serveBrowse(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(browseTimeout))
	var req request
	if err := readJSONMax(nc, frameRequest, &req, maxURL+256); err != nil {
		return
	}
	err := errors.New("only browse requests are taken here")
	if req.Op == opBrowse {
		if err = CheckBrowseURL(req.URL); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), browseTimeout)
			err = s.browse(ctx, req.URL)
			cancel()
		}
	}
	rep := reply{}
	if err != nil {
		rep.Error = err.Error()
	}
	s.log.Debug("browse", "url", req.URL, "err", err)
	_ = writeJSON(nc, frameReply, rep)
}

// Browser is the $BROWSER helper: it asks an agent of the instance to have
// berth open url on the host, trying each agent's socket in dir, newest
// first, until one takes it.
func Browser(dir, url string) error {
	if err := CheckBrowseURL(url); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("no berth agent in this container: %w", err)
	}
	type sock struct {
		path string
		mod  time.Time
	}
	var socks []sock
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().Type() == os.ModeSocket {
			socks = append(socks, sock{filepath.Join(dir, e.Name()), fi.ModTime()})
		}
	}
	for i := 1; i < len(socks); i++ {
		for j := i; j > 0 && socks[j].mod.After(socks[j-1].mod); j-- {
			socks[j], socks[j-1] = socks[j-1], socks[j]
		}
	}
	last := errNoBrowser
	for _, sk := range socks {
		nc, err := net.DialTimeout("unix", sk.path, time.Second)
		if err != nil {
			continue
		}
		_ = nc.SetDeadline(time.Now().Add(browseTimeout + 5*time.Second))
		var rep reply
		err = writeJSON(nc, frameRequest, request{Op: opBrowse, URL: url})
		if err == nil {
			err = readJSONMax(nc, frameReply, &rep, maxJSON)
		}
		nc.Close()
		if err != nil {
			continue
		}
		if rep.Error == "" {
			return nil
		}
		last = errors.New(agentText(rep.Error))
		if rep.Error != errNoBrowser.Error() {
			return last
		}
	}
	return last
}
