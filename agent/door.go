package agent

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The door is how berth on the host reaches an agent without the engine: a
// unix socket that the agent makes in RunDir, a host directory that berth
// bind-mounts into the instance when the engine is local.
//
// Processes in the instance must not pass for berth there, so:
//   - berth makes a random key per agent start and hands it to the agent
//     through the launcher's exec, which only berth holds. The agent is
//     non-dumpable, so nothing in the instance short of root with
//     CAP_SYS_PTRACE reads it out of its memory.
//   - berth keeps the key on the host in a record beside the run directory
//     (not in it), mode 0600, so that every berth process of the same user
//     uses the door too: the agent behind it runs as a daemon
//     (daemon_linux.go) and outlives the berth that launched it.
//   - every connection proves the key both ways by HMAC-SHA256 over a
//     nonce of each side's; the key itself never crosses the socket.
//   - the agent admits no connection from a process it can see in its own
//     pid namespace: berth's pid is 0 there. That stops a process in the
//     instance that replaced the socket from relaying berth's handshake.
//   - the socket is 0600 and owned by berth's uid, RunDir is 0700 on the
//     host, and the agent keeps DoorDir, above RunDir, 0700 and root's.
//
// Handshake, in agent frames (proto.go), agent first:
//
//	agent → berth  'n'  doorVersion(1) ‖ Na(32)
//	berth → agent  'p'  Nc(32) ‖ HMAC(key, "berth-door/1 berth" ‖ Na ‖ Nc)
//	agent → berth  'p'  HMAC(key, "berth-door/1 agent" ‖ Na ‖ Nc)
//
// A wrong proof closes the connection; after the last frame the connection
// carries a yamux session, as the exec stream does.

const (
	doorVersion = 1
	keySize     = 32
	nonceSize   = 32
	// doorTimeout bounds a handshake: a peer that stalls is dropped.
	doorTimeout = 5 * time.Second
	// maxRecord bounds the record file berth reads.
	maxRecord = 4 << 10
)

var (
	labelBerth = []byte("berth-door/1 berth")
	labelAgent = []byte("berth-door/1 agent")
)

// ErrDoorRefused means a peer at the door did not prove the instance's key,
// or broke the handshake.
var ErrDoorRefused = errors.New("agent door: handshake refused")

// ErrDoorRecord means berth's record of a door is missing, unsafe or
// malformed.
var ErrDoorRecord = errors.New("agent door: no usable record")

// newKey makes a per-instance key.
func newKey() ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("agent door: key: %w", err)
	}
	return key, nil
}

func doorProof(key, label, na, nc []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(label)
	m.Write(na)
	m.Write(nc)
	return m.Sum(nil)
}

// readDoorFrame reads one handshake frame of exactly size bytes of type
// want; anything else is a refusal.
func readDoorFrame(r io.Reader, want byte, size int) ([]byte, error) {
	typ, p, err := readFrameMax(r, nil, uint32(size))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDoorRefused, err)
	}
	if typ != want || len(p) != size {
		return nil, fmt.Errorf("%w: got %q of %d bytes, want %q of %d", ErrDoorRefused, typ, len(p), want, size)
	}
	return p, nil
}

// doorClient is berth's side of the handshake on conn.
func doorClient(conn net.Conn, key []byte) error {
	if len(key) != keySize {
		return fmt.Errorf("%w: key of %d bytes", ErrDoorRecord, len(key))
	}
	_ = conn.SetDeadline(time.Now().Add(doorTimeout))
	ch, err := readDoorFrame(conn, frameChallenge, 1+nonceSize)
	if err != nil {
		return err
	}
	if ch[0] != doorVersion {
		return fmt.Errorf("%w: door version %d, want %d", ErrDoorRefused, ch[0], doorVersion)
	}
	na := ch[1:]
	nc := make([]byte, nonceSize)
	if _, err := rand.Read(nc); err != nil {
		return err
	}
	if err := writeFrame(conn, frameProof, append(append([]byte(nil), nc...), doorProof(key, labelBerth, na, nc)...)); err != nil {
		return fmt.Errorf("%w: %w", ErrDoorRefused, err)
	}
	got, err := readDoorFrame(conn, frameProof, sha256.Size)
	if err != nil {
		return err
	}
	if !hmac.Equal(got, doorProof(key, labelAgent, na, nc)) {
		return fmt.Errorf("%w: the agent's proof is wrong", ErrDoorRefused)
	}
	return conn.SetDeadline(time.Time{})
}

// doorServer is the agent's side of the handshake on conn.
func doorServer(conn net.Conn, key []byte) error {
	_ = conn.SetDeadline(time.Now().Add(doorTimeout))
	na := make([]byte, nonceSize)
	if _, err := rand.Read(na); err != nil {
		return err
	}
	if err := writeFrame(conn, frameChallenge, append([]byte{doorVersion}, na...)); err != nil {
		return fmt.Errorf("%w: %w", ErrDoorRefused, err)
	}
	p, err := readDoorFrame(conn, frameProof, nonceSize+sha256.Size)
	if err != nil {
		return err
	}
	nc, proof := p[:nonceSize], p[nonceSize:]
	if !hmac.Equal(proof, doorProof(key, labelBerth, na, nc)) {
		return fmt.Errorf("%w: wrong proof", ErrDoorRefused)
	}
	if err := writeFrame(conn, frameProof, doorProof(key, labelAgent, na, nc)); err != nil {
		return fmt.Errorf("%w: %w", ErrDoorRefused, err)
	}
	return conn.SetDeadline(time.Time{})
}

// doorRecord is what berth keeps on the host about an instance's door.
type doorRecord struct {
	Version int    `json:"v"`
	Socket  string `json:"socket"` // the socket's name in the run directory
	Key     []byte `json:"key"`
}

// socketName is what a door's socket may be called: a plain name, so that
// neither side ever resolves a path the other chose.
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, checked by hand: a regexp compiled
// at start-up costs every berth process, `berth exec` included.
var socketName = nameChecker{}

type nameChecker struct{}

func (nameChecker) MatchString(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return true
}

func (r doorRecord) valid() error {
	switch {
	case r.Version != doorVersion:
		return fmt.Errorf("%w: version %d", ErrDoorRecord, r.Version)
	case !socketName.MatchString(r.Socket):
		return fmt.Errorf("%w: socket name %q", ErrDoorRecord, r.Socket)
	case len(r.Key) != keySize:
		return fmt.Errorf("%w: key of %d bytes", ErrDoorRecord, len(r.Key))
	}
	return nil
}

// RecordPath is where berth keeps the record of the door whose run
// directory on the host is hostDir: beside it, never in it, since the
// instance can write there.
func RecordPath(hostDir string) string {
	return filepath.Clean(hostDir) + ".door"
}

// RemoveHostRun removes what berth keeps on the host for an instance that
// is gone: hostDir, the directory it shared with the instance, and the
// door's record and lock beside it. Files that others keep beside it go
// first (see session's profile and user environment).
func RemoveHostRun(hostDir string) error {
	hostDir = filepath.Clean(hostDir)
	return errors.Join(
		os.RemoveAll(hostDir),
		removeIfThere(RecordPath(hostDir)),
		removeIfThere(hostDir+".lock"),
	)
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeRecord stores rec for hostDir, readable by berth's user alone.
func writeRecord(hostDir string, rec doorRecord) error {
	if err := rec.valid(); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	path := RecordPath(hostDir)
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("agent door: record: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes it 0600; say so, whatever the umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("agent door: record: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("agent door: record: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("agent door: record: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("agent door: record: %w", err)
	}
	return nil
}

// readRecord reads hostDir's record, refusing one that another user owns
// or could have read.
func readRecord(hostDir string) (doorRecord, error) {
	path := RecordPath(hostDir)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return doorRecord{}, fmt.Errorf("%w: %w", ErrDoorRecord, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return doorRecord{}, fmt.Errorf("%w: %w", ErrDoorRecord, err)
	}
	if err := ownedPrivate(fi, 0o077); err != nil {
		return doorRecord{}, fmt.Errorf("%w: %s: %w", ErrDoorRecord, path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return doorRecord{}, fmt.Errorf("%w: %w", ErrDoorRecord, err)
	}
	if len(data) > maxRecord {
		return doorRecord{}, fmt.Errorf("%w: %s is too big", ErrDoorRecord, path)
	}
	var rec doorRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return doorRecord{}, fmt.Errorf("%w: %s: %w", ErrDoorRecord, path, err)
	}
	return rec, rec.valid()
}

// ownedPrivate checks that fi is a regular file or directory owned by this
// process's user, with none of the mode bits in forbid.
func ownedPrivate(fi os.FileInfo, forbid os.FileMode) error {
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return fmt.Errorf("not a regular file or directory (%s)", fi.Mode().Type())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no owner information")
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not %d", st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&forbid != 0 {
		return fmt.Errorf("mode %04o lets others in", fi.Mode().Perm())
	}
	return nil
}

// PrivateDir makes dir (and its parents) if needed and checks that it is a
// directory of this process's user that no one else may enter, tightening
// its mode if it is ours. Door run directories and records live in one.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if err := ownedPrivate(fi, 0); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// HostRunDir makes the host directory that berth shares with the
// instance named name for its door: under $XDG_RUNTIME_DIR/berth, else
// /run/berth for root, else $TMPDIR/berth-UID. It and the directory above
// it, where the door's record goes, must be this user's alone: one that
// someone else made or can enter is refused. The name is the instance's,
// so a berth process finds the door from the workspace alone.
func HostRunDir(name string) (string, error) {
	if !socketName.MatchString(name) {
		return "", fmt.Errorf("agent door: instance name %q", name)
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	switch {
	case base != "":
		base = filepath.Join(base, "berth")
	case os.Geteuid() == 0:
		base = "/run/berth"
	default:
		base = filepath.Join(os.TempDir(), fmt.Sprintf("berth-%d", os.Geteuid()))
	}
	dir := filepath.Join(base, name)
	for _, d := range []string{base, dir} {
		if err := PrivateDir(d); err != nil {
			return "", fmt.Errorf("agent door: %w", err)
		}
	}
	return dir, nil
}

// DialDoor connects to the agent whose run directory on the host is
// hostDir, through its door, with the key in berth's record of it. The
// connection it returns has passed the handshake both ways and is ready for
// a yamux session.
func DialDoor(ctx context.Context, hostDir string) (net.Conn, error) {
	rec, err := readRecord(hostDir)
	if err != nil {
		return nil, err
	}
	return dialDoor(ctx, hostDir, rec)
}

func dialDoor(ctx context.Context, hostDir string, rec doorRecord) (net.Conn, error) {
	if err := rec.valid(); err != nil {
		return nil, err
	}
	conn, err := dialIn(ctx, hostDir, rec.Socket)
	if err != nil {
		return nil, fmt.Errorf("agent door: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	err = doorClient(conn, rec.Key)
	if !stop() {
		err = ctx.Err() // the handshake was cut short, or its deadline reset
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// checkSocket vets the door's socket before berth dials it: a socket, that
// the agent gave to berth's user.
func checkSocket(isSocket bool, uid int) error {
	if !isSocket {
		return errors.New("not a socket")
	}
	if uid != os.Geteuid() {
		return fmt.Errorf("socket owned by uid %d, not %d", uid, os.Geteuid())
	}
	return nil
}
