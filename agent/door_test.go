//go:build linux

package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/berthdev/berth/backends"
)

// newDoorClient launches an in-process agent behind its door in a temp
// directory, which stands for both the host's run directory and RunDir.
// initNS says whether the agent judges peers as one in the host's pid
// namespace, by uid, or as one in an instance, where any pid it can see
// (this test's own) is refused.
func newDoorClient(t *testing.T, initNS bool) (*Client, string) {
	t.Helper()
	c, dir, _ := newDoorAgent(t, initNS)
	return c, dir
}

// newDoorAgent is newDoorClient that also returns the backend.
func newDoorAgent(t *testing.T, initNS bool) (*Client, string, *inProcess) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := &inProcess{version: testHash, door: doorConfig{runDir: dir, initNS: initNS}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, b, "test", &Binary{Hash: testHash}, discard, Options{FastDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		b.stopDaemons(t)
		b.waitAgents(t)
	})
	return c, dir, b
}

// attachOK attaches to the agent behind dir's door.
func attachOK(t *testing.T, dir string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Attach(ctx, dir, discard)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// doorSocket is the one socket in dir.
func doorSocket(t *testing.T, dir string) string {
	t.Helper()
	rec, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, rec.Socket)
}

func TestDoorFastPath(t *testing.T) {
	t.Parallel()
	c, dir := newDoorClient(t, true)
	if !c.FastPath() {
		t.Fatal("FastPath() = false with a door")
	}
	got, err := run(t, c, backends.ExecSpec{Argv: []string{"echo", "through the door"}}, nil)
	if err != nil || got.Stdout != "through the door\n" {
		t.Fatalf("run = %+v, %v", got, err)
	}
	sock := doorSocket(t, dir)
	for _, tt := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, os.ModeDir | 0o700},
		{sock, os.ModeSocket | 0o600},
		{RecordPath(dir), 0o600},
	} {
		fi, err := os.Lstat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode(), tt.mode)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
			t.Errorf("%s: owned by %d, want %d", tt.path, uid, os.Geteuid())
		}
	}
	// The record beside the directory, never in it.
	if filepath.Dir(RecordPath(dir)) == dir {
		t.Errorf("record %s is in the shared directory", RecordPath(dir))
	}
	// The agent outlives the connection that launched it: the next berth
	// finds it, the same one, at the door.
	c.Close()
	next := attachOK(t, dir)
	if next.door != c.door {
		t.Errorf("after the first client closed: door %s, want %s", next.door, c.door)
	}
	got, err = run(t, next, backends.ExecSpec{Argv: []string{"echo", "again"}}, nil)
	if err != nil || got.Stdout != "again\n" {
		t.Fatalf("run through the next client = %+v, %v", got, err)
	}
}

// The agent admits no process it can see in its pid namespace, even one
// that knows the key: a process in an instance that relayed berth's
// handshake. Here the agent judges as if in an instance, and the test's
// own connection has a pid: Start falls back to the exec stream.
func TestDoorRefusesVisiblePeerWithKey(t *testing.T) {
	t.Parallel()
	c, _ := newDoorClient(t, false)
	if c.FastPath() {
		t.Fatal("FastPath() = true for a peer in the agent's pid namespace")
	}
	got, err := run(t, c, backends.ExecSpec{Argv: []string{"echo", "exec stream"}}, nil)
	if err != nil || got.Stdout != "exec stream\n" {
		t.Fatalf("run = %+v, %v", got, err)
	}
}

// knock connects to sock and reads the agent's challenge.
func knock(t *testing.T, sock string) (net.Conn, []byte) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	typ, p, err := readFrame(conn, nil)
	if err != nil || typ != frameChallenge || len(p) != 1+nonceSize || p[0] != doorVersion {
		t.Fatalf("challenge: %q %x %v", typ, p, err)
	}
	return conn, p[1:]
}

// assertShut checks that conn is closed on the agent's side and that a
// yamux stream asking for a process gets nothing.
func assertShut(t *testing.T, conn net.Conn) {
	t.Helper()
	sess, err := yamux.Client(conn, muxConfig())
	if err == nil {
		if st, err := sess.OpenStream(); err == nil {
			_ = writeJSON(st, frameRequest, request{Op: opExec, Argv: []string{"touch", "/tmp/should-not-run"}})
			_ = st.SetReadDeadline(time.Now().Add(2 * time.Second))
			var rep reply
			if err := readJSON(st, frameReply, &rep); err == nil {
				t.Errorf("an unproven connection got a reply: %+v", rep)
			}
		}
		sess.Close()
	}
}

func TestDoorRefuses(t *testing.T) {
	t.Parallel()
	c, dir := newDoorClient(t, true)
	sock := doorSocket(t, dir)
	rec, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	wrongKey := bytes.Repeat([]byte{7}, keySize)
	// A proof made for another challenge: a replay.
	oldConn, oldNa := knock(t, sock)
	oldConn.Close()
	oldNc := bytes.Repeat([]byte{1}, nonceSize)
	replay := append(append([]byte(nil), oldNc...), doorProof(rec.Key, labelBerth, oldNa, oldNc)...)

	for _, tt := range []struct {
		name string
		send func(na []byte) []byte // raw bytes after the challenge
	}{
		{"wrong key", func(na []byte) []byte {
			nc := bytes.Repeat([]byte{2}, nonceSize)
			return encFrame(frameProof, append(nc, doorProof(wrongKey, labelBerth, na, nc)...))
		}},
		{"the agent's label", func(na []byte) []byte {
			nc := bytes.Repeat([]byte{2}, nonceSize)
			return encFrame(frameProof, append(nc, doorProof(rec.Key, labelAgent, na, nc)...))
		}},
		{"replayed proof", func([]byte) []byte { return encFrame(frameProof, replay) }},
		{"short proof", func(na []byte) []byte { return encFrame(frameProof, na) }},
		{"key itself", func([]byte) []byte { return encFrame(frameProof, append(append([]byte(nil), rec.Key...), rec.Key...)) }},
		{"yamux straight away", func([]byte) []byte { return []byte{0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0} }},
		{"oversized frame", func([]byte) []byte { return []byte{frameProof, 0xff, 0xff, 0xff, 0xff} }},
		{"token line", func([]byte) []byte { return []byte(strings.Repeat("a", 48) + "\n") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, na := knock(t, sock)
			if _, err := conn.Write(tt.send(na)); err != nil {
				t.Fatal(err)
			}
			typ, p, err := readFrame(conn, nil)
			if err == nil {
				t.Fatalf("the agent answered %q %x", typ, p)
			}
			assertShut(t, conn)
		})
	}
	// Berth's own connection still works, on a door that stays open.
	got, err := run(t, c, backends.ExecSpec{Argv: []string{"true"}}, nil)
	if err != nil || got.Status.Code != 0 {
		t.Fatalf("run after the knocks = %+v, %v", got, err)
	}
}

func encFrame(typ byte, p []byte) []byte {
	var b bytes.Buffer
	_ = writeFrame(&b, typ, p)
	return b.Bytes()
}

// Every connection proves the key: another berth process with the record
// gets in, and sees the same agent.
func TestDoorSecondConnection(t *testing.T) {
	t.Parallel()
	_, dir := newDoorClient(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := DialDoor(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := yamux.Client(conn, muxConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	var rep reply
	if err := writeJSON(st, frameRequest, request{Op: opHello}); err != nil {
		t.Fatal(err)
	}
	if err := readJSON(st, frameReply, &rep); err != nil || rep.Version != testHash {
		t.Fatalf("hello through a second connection = %+v, %v", rep, err)
	}
	st.Close()
}

// The daemon opens a door only for a well-formed request.
func TestDaemonRefusesBadRequests(t *testing.T) {
	t.Parallel()
	for _, req := range []request{
		{Op: opDoor, Addr: "../escape.sock", Key: bytes.Repeat([]byte{3}, keySize)},
		{Op: opDoor, Addr: "c.sock", Key: []byte("short")},
		{Op: opExec, Addr: "d.sock", Key: bytes.Repeat([]byte{3}, keySize)},
	} {
		dir := t.TempDir()
		var in, out bytes.Buffer
		_ = writeJSON(&in, frameRequest, req)
		err := daemon(context.Background(), &in, nopCloser{&out}, discard, testHash, doorConfig{runDir: dir, initNS: true})
		var rep reply
		if err == nil || readJSON(&out, frameReply, &rep) != nil || rep.Error == "" {
			t.Errorf("daemon(%s %q, %d-byte key) = %v, reply %+v; want refused", req.Op, req.Addr, len(req.Key), err, rep)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("a refused request left %v", ents)
		}
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Each connection owns its processes: they end with it, and another's end
// leaves them be.
func TestDoorConnectionsOwnTheirProcesses(t *testing.T) {
	t.Parallel()
	a, dir := newDoorClient(t, true)
	b := attachOK(t, dir)
	if a.door != b.door {
		t.Fatalf("two connections reach doors %s and %s, want one", a.door, b.door)
	}
	pa, _ := started(t, a, []string{"sh", "-c", "sleep 1000 & echo ready; wait"}, nil)
	pb, _ := started(t, b, []string{"sh", "-c", "sleep 1000 & echo ready; wait"}, nil)
	a.Close()
	waitGroupGone(t, pa.PID(), 5*time.Second)
	if live := liveInGroup(pb.PID()); len(live) == 0 {
		t.Fatal("the other connection's process died with the first connection")
	}
	got, err := run(t, b, backends.ExecSpec{Argv: []string{"echo", "b serves on"}}, nil)
	if err != nil || got.Stdout != "b serves on\n" {
		t.Fatalf("run through the other connection = %+v, %v", got, err)
	}
	b.Close()
	waitGroupGone(t, pb.PID(), 5*time.Second)
}

// frozenConn is a connection that, once frozen, neither reads nor writes:
// berth stopped in its tracks, or the machine between them hung.
type frozenConn struct {
	net.Conn
	frozen chan struct{}
	gone   chan struct{} // closed when the test is over
}

func (f *frozenConn) Read(p []byte) (int, error) {
	select {
	case <-f.frozen:
		<-f.gone
		return 0, io.EOF
	default:
	}
	return f.Conn.Read(p)
}

func (f *frozenConn) Write(p []byte) (int, error) {
	select {
	case <-f.frozen:
		return len(p), nil // dropped
	default:
	}
	return f.Conn.Write(p)
}

// A connection that goes silent is dead past the keepalive bound, and its
// processes are killed, though it never closed.
func TestDoorSilentConnection(t *testing.T) {
	t.Parallel()
	_, dir := newDoorClient(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := DialDoor(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := &frozenConn{Conn: conn, frozen: make(chan struct{}), gone: make(chan struct{})}
	cfg := muxConfig()
	cfg.EnableKeepAlive = false // this side says nothing once frozen
	sess, err := yamux.Client(f, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(f.gone)
		sess.Close()
		conn.Close()
	})
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(st, frameRequest, request{Op: opExec, Argv: []string{"sleep", "1000"}}); err != nil {
		t.Fatal(err)
	}
	var rep reply
	if err := readJSON(st, frameReply, &rep); err != nil || rep.PID == 0 {
		t.Fatalf("exec reply %+v, %v", rep, err)
	}
	start := time.Now()
	close(f.frozen)
	waitGroupGone(t, rep.PID, keepAliveInterval+2*writeTimeout+2*time.Second)
	took := time.Since(start)
	t.Logf("a silent connection's process died after %v", took)
	if took < writeTimeout {
		t.Errorf("killed after %v of silence, before the bound of %v", took, writeTimeout)
	}
}

// A newer agent's door replaces the old one's: the old agent takes no new
// connection, keeps those it has with their processes, and ends after the
// last.
func TestDoorReplaced(t *testing.T) {
	t.Parallel()
	old, dir, b := newDoorAgent(t, true)
	p, _ := started(t, old, []string{"sh", "-c", "sleep 1000 & echo ready; wait"}, nil)
	b.mu.Lock()
	oldDaemon := b.daemons[0]
	b.mu.Unlock()
	// Another launch, as a berth finding an agent of another protocol.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := launch(ctx, b, "test", &Binary{Hash: testHash}, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(dir, rec); err != nil {
		t.Fatal(err)
	}
	next := attachOK(t, dir)
	if ents, _ := os.ReadDir(dir); len(ents) != 1 || ents[0].Name() != rec.Socket {
		t.Errorf("run directory holds %v, want only the new door %s", ents, rec.Socket)
	}
	// The old connection's process lives, and the connection works.
	if live := liveInGroup(p.PID()); len(live) == 0 {
		t.Fatal("the old agent's process died when its door was replaced")
	}
	if got, err := run(t, old, backends.ExecSpec{Argv: []string{"echo", "old"}}, nil); err != nil || got.Stdout != "old\n" {
		t.Fatalf("run through the old connection = %+v, %v", got, err)
	}
	select {
	case <-oldDaemon.done:
		t.Fatal("the old agent ended while a connection used it")
	case <-time.After(retireCheck + time.Second):
	}
	old.Close()
	waitGroupGone(t, p.PID(), 5*time.Second)
	select {
	case <-oldDaemon.done:
	case <-time.After(2*retireCheck + 2*time.Second):
		t.Fatal("the replaced agent did not end after its last connection")
	}
	if got, err := run(t, next, backends.ExecSpec{Argv: []string{"echo", "new"}}, nil); err != nil || got.Stdout != "new\n" {
		t.Fatalf("run through the new door = %+v, %v", got, err)
	}
}

// An agent that speaks another protocol is not used: Attach says so, and
// Start launches one of its own beside it.
func TestDoorIncompatibleAgent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{5}, keySize)
	d, err := openDoor(doorConfig{runDir: dir, initNS: true}, "old.sock", key, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := writeRecord(dir, doorRecord{Version: doorVersion, Socket: "old.sock", Key: key}); err != nil {
		t.Fatal(err)
	}
	// The old agent answers hello with protocol 1 only.
	go func() {
		for {
			c, err := d.Accept()
			if err != nil {
				return
			}
			go func() {
				sess, err := yamux.Server(c, muxConfig())
				if err != nil {
					return
				}
				defer sess.Close()
				for {
					st, err := sess.AcceptStream()
					if err != nil {
						return
					}
					var req request
					if readJSON(st, frameRequest, &req) == nil {
						_ = writeJSON(st, frameReply, reply{Version: "old-build", Proto: 1, MinProto: 1, PID: 42})
					}
					st.Close()
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := Attach(ctx, dir, discard); !errors.Is(err, ErrIncompatible) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Attach to a protocol-1 agent = %v, want ErrIncompatible", err)
	}
	b := &inProcess{version: testHash, door: doorConfig{runDir: dir, initNS: true}}
	c, err := Start(ctx, b, "test", &Binary{Hash: testHash}, discard, Options{FastDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.stopDaemons(t)
	defer c.Close()
	if !c.FastPath() || c.PID() == 42 {
		t.Errorf("Start beside a protocol-1 agent: fast path %v, pid %d; want a new agent at the door", c.FastPath(), c.PID())
	}
	if _, err := os.Lstat(filepath.Join(dir, "old.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old agent's socket is still there: %v", err)
	}
}

func TestCompatible(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		proto, min int
		want       bool
	}{
		{protoVersion, minProto, true},
		{protoVersion + 3, minProto, true},     // newer, still serving us
		{protoVersion + 3, protoVersion, true}, // newer, serving from ours
		{protoVersion + 3, protoVersion + 1, false},
		{minProto - 1, 0, false}, // older than we speak
		{0, 0, false},            // before versions: main's exec-stream agent
	} {
		if got := compatible(tt.proto, tt.min); got != tt.want {
			t.Errorf("compatible(%d, %d) = %v, want %v", tt.proto, tt.min, got, tt.want)
		}
	}
}

func TestAdmitPeer(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		initNS bool
		cred   unix.Ucred
		ok     bool
	}{
		{"berth outside the instance", false, unix.Ucred{Pid: 0, Uid: 0}, true},
		{"berth outside, any uid", false, unix.Ucred{Pid: 0, Uid: 65534}, true},
		{"root in the instance", false, unix.Ucred{Pid: 42, Uid: 0}, false},
		{"user in the instance", false, unix.Ucred{Pid: 42, Uid: 1000}, false},
		{"host pid namespace, owner", true, unix.Ucred{Pid: 42, Uid: 1000}, true},
		{"host pid namespace, root", true, unix.Ucred{Pid: 42, Uid: 0}, false},
		{"host pid namespace, other user", true, unix.Ucred{Pid: 42, Uid: 1001}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := admitPeer(tt.initNS, 1000)(tt.cred)
			if (err == nil) != tt.ok {
				t.Errorf("admit = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{9}, keySize)
	good := doorRecord{Version: doorVersion, Socket: "a-1.sock", Key: key}
	goodJSON, _ := json.Marshal(good)
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		ok      bool
	}{
		{"written by berth", func(t *testing.T, dir string) {
			if err := writeRecord(dir, good); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"missing", func(*testing.T, string) {}, false},
		{"group-readable", func(t *testing.T, dir string) { writeRaw(t, RecordPath(dir), goodJSON, 0o640) }, false},
		{"world-readable", func(t *testing.T, dir string) { writeRaw(t, RecordPath(dir), goodJSON, 0o604) }, false},
		{"symlink", func(t *testing.T, dir string) {
			writeRaw(t, dir+".real", goodJSON, 0o600)
			if err := os.Symlink(dir+".real", RecordPath(dir)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"not JSON", func(t *testing.T, dir string) { writeRaw(t, RecordPath(dir), []byte("key"), 0o600) }, false},
		{"short key", func(t *testing.T, dir string) {
			b, _ := json.Marshal(doorRecord{Version: doorVersion, Socket: "a.sock", Key: key[:8]})
			writeRaw(t, RecordPath(dir), b, 0o600)
		}, false},
		{"path for a socket", func(t *testing.T, dir string) {
			b, _ := json.Marshal(doorRecord{Version: doorVersion, Socket: "../../var/run/docker.sock", Key: key})
			writeRaw(t, RecordPath(dir), b, 0o600)
		}, false},
		{"other version", func(t *testing.T, dir string) {
			b, _ := json.Marshal(doorRecord{Version: 2, Socket: "a.sock", Key: key})
			writeRaw(t, RecordPath(dir), b, 0o600)
		}, false},
		{"too big", func(t *testing.T, dir string) {
			writeRaw(t, RecordPath(dir), append(goodJSON, bytes.Repeat([]byte(" "), maxRecord)...), 0o600)
		}, false},
		{"another user's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the file away")
			}
			writeRaw(t, RecordPath(dir), goodJSON, 0o600)
			if err := os.Chown(RecordPath(dir), 1234, 1234); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "run")
			tt.prepare(t, dir)
			rec, err := readRecord(dir)
			if (err == nil) != tt.ok {
				t.Fatalf("readRecord = %+v, %v; want ok %v", rec, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrDoorRecord) {
				t.Errorf("error %v is not ErrDoorRecord", err)
			}
			if tt.ok {
				if !bytes.Equal(rec.Key, key) || rec.Socket != good.Socket {
					t.Errorf("read %+v, want %+v", rec, good)
				}
				fi, _ := os.Stat(RecordPath(dir))
				if fi.Mode() != 0o600 {
					t.Errorf("record mode %v, want 0600", fi.Mode())
				}
			}
		})
	}
}

func writeRaw(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// berth dials only a socket of its own user's that is no symlink: the
// instance can write in the run directory and must not send berth to a
// socket of the host's.
func TestDialInRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	host := filepath.Join(t.TempDir(), "host.sock")
	ln, err := net.Listen("unix", host)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Symlink(host, filepath.Join(dir, "link.sock")); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, filepath.Join(dir, "file.sock"), nil, 0o600)
	ctx := context.Background()
	for _, name := range []string{"link.sock", "file.sock", "missing.sock"} {
		if c, err := dialIn(ctx, dir, name); err == nil {
			c.Close()
			t.Errorf("dialIn %s succeeded", name)
		}
	}
	if err := os.Rename(host, filepath.Join(dir, "real.sock")); err != nil {
		t.Fatal(err)
	}
	c, err := dialIn(ctx, dir, "real.sock")
	if err != nil {
		t.Fatalf("dialIn of a real socket: %v", err)
	}
	c.Close()
}

func TestPrivateDir(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		ok      bool
	}{
		{"missing", func(*testing.T, string) {}, true},
		{"too open", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			_ = os.Chmod(dir, 0o777)
		}, true},
		{"symlink", func(t *testing.T, dir string) {
			if err := os.Symlink(t.TempDir(), dir); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"file", func(t *testing.T, dir string) { writeRaw(t, dir, nil, 0o600) }, false},
		{"another user's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the directory away")
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 1234, 1234); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "d")
			tt.prepare(t, dir)
			err := PrivateDir(dir)
			if (err == nil) != tt.ok {
				t.Fatalf("PrivateDir = %v, want ok %v", err, tt.ok)
			}
			if tt.ok {
				if fi, _ := os.Lstat(dir); fi.Mode() != os.ModeDir|0o700 {
					t.Errorf("mode %v, want drwx------", fi.Mode())
				}
			}
		})
	}
}

func TestHostRunDir(t *testing.T) {
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	dir, err := HostRunDir("berth-ws-0123456789ab")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(rt, "berth", "berth-ws-0123456789ab"); dir != want {
		t.Errorf("HostRunDir = %s, want %s", dir, want)
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if fi, err := os.Lstat(d); err != nil || fi.Mode() != os.ModeDir|0o700 {
			t.Errorf("%s: %v %v, want drwx------", d, fi.Mode(), err)
		}
	}
	for _, name := range []string{"", "../etc", "a/b", ".hidden"} {
		if _, err := HostRunDir(name); err == nil {
			t.Errorf("HostRunDir(%q) succeeded", name)
		}
	}
}

func TestCheckReply(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		op  string
		rep reply
		ok  bool
	}{
		{opHello, reply{PID: 7, Version: testHash}, true},
		{opHello, reply{PID: 0, Version: testHash}, false},
		{opHello, reply{PID: 7}, false},
		{opHello, reply{PID: 7, Version: strings.Repeat("x", 129)}, false},
		{opExec, reply{PID: 1}, true},
		{opExec, reply{PID: -3}, false},
		{opExec, reply{PID: maxPID + 1}, false},
		{opExec, reply{Error: "nope"}, true}, // an error reply carries nothing else
		{opListen, reply{Port: 8080, Listener: 1}, true},
		{opListen, reply{Port: 70000, Listener: 1}, false},
		{opListen, reply{Port: 8080}, false},
		{opDial, reply{}, true},
	} {
		rep := tt.rep
		if err := checkReply(tt.op, &rep); (err == nil) != tt.ok {
			t.Errorf("checkReply(%s, %+v) = %v, want ok %v", tt.op, tt.rep, err, tt.ok)
		}
	}
}

func TestDecodeExit(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		payload string
		want    backends.ExitStatus
		reason  string
		ok      bool
	}{
		{`{"code":0}`, backends.ExitStatus{}, "", true},
		{`{"code":137,"signal":9}`, backends.ExitStatus{Code: 137, Signal: "SIGKILL"}, "", true},
		{`{"code":-1,"reason":"wait: no child\u0007\n"}`, backends.ExitStatus{Code: -1}, "wait: no child  ", true},
		{`{"code":256}`, backends.ExitStatus{}, "", false},
		{`{"code":0,"signal":65}`, backends.ExitStatus{}, "", false},
		{`{"code":0,"signal":-1}`, backends.ExitStatus{}, "", false},
		{`not json`, backends.ExitStatus{}, "", false},
	} {
		st, reason, err := decodeExit([]byte(tt.payload))
		if (err == nil) != tt.ok {
			t.Errorf("decodeExit(%s) err = %v, want ok %v", tt.payload, err, tt.ok)
			continue
		}
		if st != tt.want {
			t.Errorf("decodeExit(%s) = %+v, want %+v", tt.payload, st, tt.want)
		}
		if got := ""; reason != nil {
			got = reason.Error()
			if got != tt.reason {
				t.Errorf("decodeExit(%s) reason %q, want %q", tt.payload, got, tt.reason)
			}
		} else if tt.reason != "" {
			t.Errorf("decodeExit(%s) no reason, want %q", tt.payload, tt.reason)
		}
	}
}

func TestAgentText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxAgentText)
	got := agentText(long)
	if len(got) > maxAgentText+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("agentText of %d bytes = %d bytes", len(long), len(got))
	}
	if got := agentText("a\x1b[2Jb\xff"); got != "a [2Jb\uFFFD" {
		t.Errorf("agentText = %q", got)
	}
}

// A frame stream that ends, or turns bad, without an exit frame is an
// error, never a panic or a made-up status.
func TestDemuxBadStreams(t *testing.T) {
	t.Parallel()
	exit := encFrame(frameExit, []byte(`{"code":3}`))
	for _, tt := range []struct {
		name   string
		stream []byte
		code   int
		ok     bool
	}{
		{"output then exit", append(encFrame(frameStdout, []byte("hi")), exit...), 3, true},
		{"no exit", encFrame(frameStdout, []byte("hi")), 0, false},
		{"truncated header", []byte{frameStdout, 0, 0}, 0, false},
		{"truncated payload", []byte{frameStdout, 0, 0, 0, 9, 'a'}, 0, false},
		{"unknown frame", append(encFrame('z', nil), exit...), 0, false},
		{"a reply mid-stream", append(encFrame(frameReply, []byte(`{}`)), exit...), 0, false},
		{"oversized", binary.BigEndian.AppendUint32([]byte{frameStdout}, maxFrame+1), 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			var n atomicCounters
			st, _, err := demux(bytes.NewReader(tt.stream), &out, io.Discard, &n.frames, &n.delivering)
			if (err == nil) != tt.ok || st.Code != tt.code {
				t.Errorf("demux = %+v, %v; want code %d ok %v", st, err, tt.code, tt.ok)
			}
		})
	}
}

// NoDump's process is not dumpable, and what it starts is, as whatever
// user: execve resets the flag, so processes berth runs stay as
// inspectable as under docker exec.
func TestNoDumpChildrenDumpable(t *testing.T) {
	if os.Getenv("BERTH_TEST_DUMPABLE") != "" {
		return // the child: TestMain's helper answers instead
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_NODUMP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	want := "agent 0\nchild 1\n"
	if os.Geteuid() == 0 {
		want += "child as 65534 1\n"
	}
	if string(out) != want {
		t.Errorf("dumpable flags:\n%s\nwant:\n%s", out, want)
	}
}

// noDumpHelper runs in a child of TestNoDumpChildrenDumpable, from
// TestMain: it calls NoDump and reports its own flag and its children's.
func noDumpHelper() {
	if os.Getenv("BERTH_TEST_DUMPABLE") != "" {
		d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		os.Stdout.WriteString(strconv.Itoa(d) + "\n")
		os.Exit(0)
	}
	if os.Getenv("BERTH_TEST_NODUMP") == "" {
		return
	}
	if err := NoDump(); err != nil {
		os.Stdout.WriteString(err.Error())
		os.Exit(1)
	}
	d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	os.Stdout.WriteString("agent " + strconv.Itoa(d) + "\n")
	child := func(cred *syscall.Credential) string {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BERTH_TEST_DUMPABLE=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.Output()
		if err != nil {
			return err.Error() + "\n"
		}
		return string(out)
	}
	os.Stdout.WriteString("child " + child(nil))
	if os.Geteuid() == 0 {
		// This binary may sit where 65534 cannot run it: sleep will do, and
		// /proc/PID belongs to a process's user only while it is dumpable.
		cmd := exec.Command("sleep", "10")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := cmd.Start(); err != nil {
			os.Stdout.WriteString(err.Error())
			os.Exit(1)
		}
		dir := "/proc/" + strconv.Itoa(cmd.Process.Pid)
		for i := 0; i < 500; i++ {
			if stat, _ := os.ReadFile(dir + "/stat"); strings.Contains(string(stat), "(sleep)") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := "0"
		if fi, err := os.Stat(dir); err == nil && fi.Sys().(*syscall.Stat_t).Uid == 65534 {
			d = "1"
		}
		os.Stdout.WriteString("child as 65534 " + d + "\n")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	os.Exit(0)
}

// AttachKnown skips the greeting, but only for the agent it knows.
func TestAttachKnown(t *testing.T) {
	t.Parallel()
	c, dir := newDoorClient(t, true)
	k := c.Known()
	if k.Socket == "" || k.Proto != protoVersion || k.MinProto != minProto {
		t.Fatalf("Known() = %+v", k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name string
		k    Known
		want error
	}{
		{"another start", Known{Socket: "a-0000000000000000.sock", Proto: k.Proto, MinProto: k.MinProto}, ErrDoorRecord},
		{"another protocol", Known{Socket: k.Socket, Proto: 1, MinProto: 1}, ErrIncompatible},
	} {
		if got, err := AttachKnown(ctx, dir, tt.k, discard); !errors.Is(err, tt.want) {
			if got != nil {
				got.Close()
			}
			t.Errorf("%s: AttachKnown = %v, want %v", tt.name, err, tt.want)
		}
	}
	known, err := AttachKnown(ctx, dir, k, discard)
	if err != nil {
		t.Fatal(err)
	}
	defer known.Close()
	if got, err := run(t, known, backends.ExecSpec{Argv: []string{"echo", "known"}}, nil); err != nil || got.Stdout != "known\n" {
		t.Fatalf("run = %+v, %v", got, err)
	}
}
