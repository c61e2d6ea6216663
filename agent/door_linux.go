package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NoDump makes the calling process non-dumpable: other processes, root
// without CAP_SYS_PTRACE included, can then neither ptrace it nor read its
// memory, environment or file descriptors through /proc. The agent holds
// its instance's key and berth's stream, so it calls this first thing. The
// processes it starts are dumpable again: execve resets the flag.
func NoDump() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// initPidNS is the inode of the host's pid namespace, fixed by the kernel.
const initPidNS = "pid:[4026531836]"

// inInitPidNS reports whether the agent shares the host's pid namespace
// (an instance made with --pid=host), where berth's pid is no sign that a
// peer is outside the instance.
func inInitPidNS() bool {
	link, err := os.Readlink("/proc/self/ns/pid")
	return err == nil && link == initPidNS
}

// admitPeer is the door's first check, before a byte is sent: the kernel's
// word on who connected. In its own pid namespace the agent sees berth's
// pid as 0, and any process of the instance's with its pid; so a process
// of the instance cannot knock even with the key, as it would have to if it
// relayed berth's handshake. In the host's pid namespace only the run
// directory's owner, berth's user, may knock.
func admitPeer(initNS bool, owner int) func(unix.Ucred) error {
	return func(c unix.Ucred) error {
		if !initNS && c.Pid != 0 {
			return fmt.Errorf("pid %d is in the instance", c.Pid)
		}
		if initNS && int(c.Uid) != owner {
			return fmt.Errorf("uid %d does not own the run directory", c.Uid)
		}
		return nil
	}
}

// maxKnocks bounds the handshakes in progress at the door.
const maxKnocks = 16

// door is the agent's side of the door (see door.go): a unix socket whose
// connections reach Accept only once they proved the key.
//
// Goroutines: run accepts, and starts one handshake per connection, at most
// maxKnocks at once. Close stops them all and waits.
type door struct {
	ln    *net.UnixListener
	path  string
	ino   uint64 // the socket's inode: the door is ours while path names it
	key   []byte
	admit func(unix.Ucred) error
	log   *slog.Logger
	conns chan net.Conn // connections that passed
	done  chan struct{} // closed by Close
	once  sync.Once
	wg    sync.WaitGroup

	mu      sync.Mutex // guards knocks
	knocks  map[net.Conn]bool
	pending chan struct{} // a slot per handshake in progress
}

// doorConfig is where the agent's door goes, and how it tells berth from
// the instance's processes.
type doorConfig struct {
	runDir  string // the door's directory: RunDir in an instance
	privDir string // made root's alone before the door opens; "" leaves it
	initNS  bool   // the agent shares the host's pid namespace

	browseDir, browserLink string // the $BROWSER socket's directory and helper; "": none
}

// openDoor makes the socket name in cfg.runDir, 0600 and owned by the run
// directory's owner (berth's user as the instance sees it), and starts
// admitting connections that prove key. Other sockets there are the doors
// of agents this one replaces: it unlinks them, so that they take no one
// new.
func openDoor(cfg doorConfig, name string, key []byte, log *slog.Logger) (*door, error) {
	if cfg.privDir != "" {
		// The engine made it 0755 as the mount's parent.
		if err := rootOnly(cfg.privDir); err != nil {
			return nil, err
		}
	}
	fi, err := os.Lstat(cfg.runDir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return nil, fmt.Errorf("%s is not a directory", cfg.runDir)
	}
	owner := int(st.Uid)
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(cfg.runDir, 0o700); err != nil {
			return nil, err
		}
	}
	ln, err := listenPrivate(cfg.runDir, name, owner)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.runDir, name)
	var sst unix.Stat_t
	if err := unix.Lstat(path, &sst); err != nil {
		ln.Close()
		return nil, err
	}
	replaceOthers(cfg.runDir, name, log)
	d := &door{
		ln: ln, path: path, ino: sst.Ino, key: append([]byte(nil), key...),
		admit: admitPeer(cfg.initNS, owner), log: log,
		conns: make(chan net.Conn), done: make(chan struct{}),
		knocks: map[net.Conn]bool{}, pending: make(chan struct{}, maxKnocks),
	}
	d.wg.Add(1)
	go d.run()
	return d, nil
}

// replaceOthers unlinks the sockets in dir other than name: older agents'
// doors, and leftovers of agents that died with their instance.
func replaceOthers(dir, name string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == name || e.Type()&os.ModeSocket == 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
			log.Debug("door: unlinked another agent's socket", "socket", e.Name())
		}
	}
}

// current reports whether the door's path still names its socket.
func (d *door) current() bool {
	var st unix.Stat_t
	return unix.Lstat(d.path, &st) == nil && st.Ino == d.ino
}

// rootOnly makes dir root's and 0700, refusing anything but a directory.
func rootOnly(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if err := os.Lchown(dir, 0, 0); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// listenPrivate listens on dir/name, a socket that is 0600 from its first
// moment and given to owner before it takes its name.
func listenPrivate(dir, name string, owner int) (*net.UnixListener, error) {
	tmpName := make([]byte, 8)
	if _, err := rand.Read(tmpName); err != nil {
		return nil, err
	}
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(tmpName))
	final := filepath.Join(dir, name)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), tmp)
	defer f.Close() // FileListener dups it
	// The file bind makes takes the socket's mode (less the umask).
	if err := unix.Fchmod(fd, 0o600); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: tmp}); err != nil {
		return nil, &os.PathError{Op: "bind", Path: tmp, Err: err}
	}
	fail := func(err error) (*net.UnixListener, error) {
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Lchown(tmp, owner, -1); err != nil {
		return fail(err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		return fail(err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, final); err != nil {
		ln.Close()
		return fail(err)
	}
	return ln.(*net.UnixListener), nil
}

func (d *door) run() {
	defer d.wg.Done()
	for {
		c, err := d.ln.AcceptUnix()
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say
			continue
		}
		if err := d.check(c); err != nil {
			d.log.Debug("door: refused", "err", err)
			c.Close()
			continue
		}
		select {
		case d.pending <- struct{}{}:
		default:
			d.log.Debug("door: refused: too many handshakes at once")
			c.Close()
			continue
		}
		if !d.track(c) {
			<-d.pending
			return
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer func() { <-d.pending }()
			d.knock(c)
		}()
	}
}

// check asks the kernel who connected.
func (d *door) check(c *net.UnixConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	return d.admit(*cred)
}

// knock runs the handshake and hands the connection to Accept.
func (d *door) knock(c net.Conn) {
	err := doorServer(c, d.key)
	d.untrack(c)
	if err != nil {
		d.log.Debug("door: refused", "err", err)
		c.Close()
		return
	}
	select {
	case d.conns <- c:
	case <-d.done:
		c.Close()
	}
}

func (d *door) track(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		c.Close()
		return false
	default:
	}
	d.knocks[c] = true
	return true
}

func (d *door) untrack(c net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.knocks, c)
}

// Accept returns the next connection that proved the key.
func (d *door) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.done:
		return nil, net.ErrClosed
	}
}

// Close stops admitting, removes the socket if the path still names it,
// and waits for the handshakes in progress, which it cuts short.
func (d *door) Close() error {
	d.once.Do(func() {
		d.mu.Lock()
		close(d.done)
		for c := range d.knocks {
			c.Close()
		}
		d.mu.Unlock()
		if d.current() {
			_ = os.Remove(d.path)
		}
		d.ln.Close()
	})
	d.wg.Wait()
	return nil
}
