package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/yamux"
)

// portScan is how often a port watch reads the TCP tables: a few times a
// second at most, and reading them is cheap (two small files). Only new
// sockets cost a walk of /proc/*/fd.
const portScan = 500 * time.Millisecond

// ownerTries is how many scans a listener with no owner found is looked
// up again before it is taken as ownerless (a socket berth opened from the
// host in the instance's network namespace).
const ownerTries = 3

// owner is who holds a listening socket.
type owner struct {
	pid, pgid int
	name      string
	agent     bool // an agent of berth's: never reported
	tries     int  // lookups that found no owner
}

// portScanner finds the instance's listening TCP sockets and their owners.
type portScanner struct {
	proc   string            // /proc
	owners map[uint64]*owner // by socket inode
}

func newPortScanner(proc string) *portScanner {
	return &portScanner{proc: proc, owners: map[uint64]*owner{}}
}

// scan returns the listeners to report, sorted by port and address.
func (p *portScanner) scan() []ListenPort {
	var entries []netEntry
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(p.proc, "self", name))
		if err != nil {
			continue // no IPv6
		}
		es, err := parseNetTCP(f)
		f.Close()
		if err == nil {
			entries = append(entries, es...)
		}
	}
	seen := map[uint64]bool{}
	var unknown []uint64
	for _, e := range entries {
		seen[e.inode] = true
		if o := p.owners[e.inode]; o == nil || (o.pid == 0 && o.tries < ownerTries) {
			unknown = append(unknown, e.inode)
		}
	}
	for ino := range p.owners {
		if !seen[ino] {
			delete(p.owners, ino)
		}
	}
	if len(unknown) > 0 {
		p.lookup(unknown)
	}
	out := make([]ListenPort, 0, len(entries))
	for _, e := range entries {
		o := p.owners[e.inode]
		if o == nil || o.agent {
			continue
		}
		out = append(out, ListenPort{Port: e.port, Addr: e.addr.String(), PID: o.pid, PGID: o.pgid, Name: o.name})
	}
	slices.SortFunc(out, func(a, b ListenPort) int {
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	return slices.Compact(out)
}

// lookup walks /proc/*/fd for the owners of inodes.
func (p *portScanner) lookup(inodes []uint64) {
	want := map[uint64]bool{}
	for _, ino := range inodes {
		want[ino] = true
	}
	found := map[uint64]*owner{}
	pids, _ := os.ReadDir(p.proc)
	for _, d := range pids {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || len(found) == len(want) {
			continue
		}
		dir := filepath.Join(p.proc, d.Name())
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		var o *owner
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil || !want[ino] || found[ino] != nil {
				continue
			}
			if o == nil {
				o = p.describe(pid, dir)
			}
			found[ino] = o
		}
	}
	for _, ino := range inodes {
		if o := found[ino]; o != nil {
			p.owners[ino] = o
			continue
		}
		o := p.owners[ino]
		if o == nil {
			o = &owner{}
			p.owners[ino] = o
		}
		o.tries++
	}
}

// describe reads a process's group, name, and whether it is an agent.
func (p *portScanner) describe(pid int, dir string) *owner {
	o := &owner{pid: pid}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		o.name = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
		// pid (comm) state ppid pgrp ...: comm may hold anything, so
		// count from the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) >= 3 {
				o.pgid, _ = strconv.Atoi(f[2])
			}
		}
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		o.agent = strings.HasPrefix(exe, Dir+"/")
	}
	if pid == os.Getpid() {
		o.agent = true
	}
	return o
}

// watch serves a port watch: a report of every listener now, then one
// each time the set changes, until berth closes the stream. With Browse,
// the connection also takes the $BROWSER helper's requests.
func (c *conn) watch(st *yamux.Stream, req request) {
	if err := writeJSON(st, frameReply, reply{}); err != nil {
		return
	}
	if req.Browse {
		c.s.browsers.add(c)
		defer c.s.browsers.remove(c)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		_, _ = st.Read(make([]byte, 1)) // berth sends nothing: this is the end
	}()
	if req.NoPorts {
		<-ended
		return
	}
	sc := newPortScanner("/proc")
	t := time.NewTicker(portScan)
	defer t.Stop()
	var last []ListenPort
	for first := true; ; first = false {
		ports := sc.scan()
		if first || !slices.Equal(ports, last) {
			if err := writeJSON(st, framePorts, portsMsg{Ports: ports}); err != nil {
				_ = st.SetReadDeadline(time.Now())
				<-ended
				return
			}
			last = ports
		}
		select {
		case <-ended:
			return
		case <-t.C:
		}
	}
}
