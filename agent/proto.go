// Package agent is berth's in-container agent and berth's side of it.
//
// berth copies a small static binary (cmd/berth-agent) into each instance
// and starts it once with the backend's exec. From then on one stdio stream
// carries everything, multiplexed with yamux: each process and each tunnel
// connection is a yamux stream. The agent spawns every process in its own
// process group, and when the stream ends (berth exited, was killed, or the
// exec died) it kills every group it started, so nothing is orphaned.
//
// A stream starts with one request frame from the side that opened it and
// one reply frame. Exec streams then carry typed frames both ways; tunnel
// streams carry raw bytes; a sync stream carries batch after batch of sync
// mode's changes (syncstream.go).
//
// With a local engine, the agent instead runs on its own in the instance,
// outliving the berth that started it, and serves its door: a unix socket
// in a directory shared with the host, where every connection proves the
// instance's key (door.go). Each connection, the exec stream or one through
// the door, owns the processes it started: they die when it ends or goes
// silent. The one exception is the instance's service (service_linux.go),
// which no connection owns. The agent is the instance's, so berth takes nothing it says on
// trust: frames, replies and exit statuses are bounded and checked.
package agent

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/yamux"

	"github.com/berthdev/berth/backends"
)

// Frame types. Requests and replies carry JSON; data frames raw bytes.
const (
	frameRequest = 'q' // opener → peer: JSON request
	frameReply   = 'a' // peer → opener: JSON reply
	frameStdout  = 'o' // agent → berth
	frameStderr  = 'e' // agent → berth
	frameExit    = 'x' // agent → berth: JSON exitMsg; the last frame
	frameStdin   = 'i' // berth → agent
	frameEOF     = 'c' // berth → agent: close stdin
	frameSignal  = 's' // berth → agent: JSON signalMsg
	frameResize  = 'r' // berth → agent: JSON resizeMsg

	framePorts = 'l' // agent → berth, on a watch stream: JSON portsMsg

	frameChallenge = 'n' // door, agent → berth: version and the agent's nonce
	frameProof     = 'p' // door, each way: proof of the instance's key
)

// maxFrame bounds one frame's payload; output is cut into frames this size.
const maxFrame = 1 << 20

// maxJSON bounds a JSON frame (request, reply, exit) that berth reads from
// the agent: none is legitimately near it.
const maxJSON = 64 << 10

// Request ops.
const (
	opHello  = "hello"
	opExec   = "exec"
	opDial   = "dial"
	opListen = "listen"
	opConn   = "conn"   // agent → berth: a connection accepted by a listen
	opDoor   = "door"   // berth → agent launcher, on the exec's stdio: open the door
	opWatch  = "watch"  // berth → agent: report listening ports (proto 3)
	opBrowse = "browse" // agent → berth: the $BROWSER helper asks to open URL (proto 3)
	// berth → agent: start the instance's service unless it runs (proto 4)
	opService = "service"
	opProcs   = "procs" // berth → agent: count live processes of every connection (proto 4)
	opSync    = "sync"  // berth → agent: sync mode's receiver (proto 4; syncstream.go)
)

// Protocol versions. The hello reply carries the agent's protocol and the
// oldest one it still serves; berth uses a running agent whose range holds
// its own protocol, whatever its build, and replaces only one whose range
// doesn't. A change that an older berth or agent can't ignore bumps
// protoVersion; dropping support for an old berth bumps minProto.
//
// Protocol 3 added the port watch (opWatch) and the $BROWSER bridge
// (opBrowse); berth asks an agent of protocol 2 for neither. Protocol 4
// added the instance-owned service (opService), the process count
// (opProcs) and the sync stream (opSync); berth asks older agents for
// none of them, and copies through `untar` processes instead.
const (
	protoVersion = 4
	minProto     = 2
)

// ProtoPorts is the first protocol with the port watch and $BROWSER.
const ProtoPorts = 3

// ProtoService is the first protocol with the instance-owned service and
// the count of live processes.
const ProtoService = 4

// ProtoSyncStream is the first protocol with the sync stream.
const ProtoSyncStream = 4

// DoorDir holds RunDir. The agent keeps it root's alone (0700), so that
// non-root processes in the instance cannot reach the socket even when
// they share berth's uid, which owns RunDir itself.
const DoorDir = Dir + "/door"

// RunDir is where, in an instance whose engine is local, a host directory
// is bind-mounted so that berth can reach the agent on a unix socket, its
// door: the fast path, which skips the engine's exec stream.
const RunDir = DoorDir + "/run"

// LegacyRunDir is where instances made before the door mounted RunDir.
const LegacyRunDir = Dir + "/run"

type request struct {
	Op string `json:"op"`

	// exec
	Argv  []string `json:"argv,omitempty"`
	Env   []string `json:"env,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	User  string   `json:"user,omitempty"`
	Stdin bool     `json:"stdin,omitempty"`
	TTY   bool     `json:"tty,omitempty"`
	Cols  uint16   `json:"cols,omitempty"`
	Rows  uint16   `json:"rows,omitempty"`
	// Helper marks berth's own process (a probe, a plugin host): opProcs
	// doesn't count it. Older agents ignore it.
	Helper bool `json:"helper,omitempty"`

	// dial, listen
	Addr string `json:"addr,omitempty"`

	// conn
	Listener uint64 `json:"listener,omitempty"`

	// door: open the door, a unix socket named Addr in RunDir, where
	// every connection must prove Key (see door.go). Only the launcher's
	// exec carries this: the key crosses no other wire.
	Key []byte `json:"key,omitempty"`

	// watch: also take the $BROWSER helper's requests; with NoPorts,
	// only take them
	Browse  bool `json:"browse,omitempty"`
	NoPorts bool `json:"noPorts,omitempty"`
	// browse
	URL string `json:"url,omitempty"`
}

// Reply error kinds, so berth can map them to sentinels.
const (
	errKindNotFound = "notfound"
	errKindNotExec  = "notexec" // exists, but can't be run
	errKindUser     = "user"
	errKindCwd      = "cwd"
)

type reply struct {
	Error   string `json:"error,omitempty"`
	ErrKind string `json:"errKind,omitempty"`

	// hello
	Version  string `json:"version,omitempty"`  // the agent's build: its hash
	Proto    int    `json:"proto,omitempty"`    // the protocol it speaks
	MinProto int    `json:"minProto,omitempty"` // the oldest protocol it serves
	OS       string `json:"os,omitempty"`
	Arch     string `json:"arch,omitempty"`
	PID      int    `json:"pid,omitempty"` // hello, door: the agent's pid; exec: the process's

	// listen
	Port     int    `json:"port,omitempty"`
	Listener uint64 `json:"listener,omitempty"`

	// service: it already ran (PID is its), and was not started again
	Running bool `json:"running,omitempty"`
	// procs: live processes of every connection, helpers left out
	Count int `json:"count,omitempty"`
}

type exitMsg struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Reason string `json:"reason,omitempty"`
}

type signalMsg struct {
	Signal int `json:"signal"`
}

type resizeMsg struct {
	Cols uint16 `json:"cols"`
	Rows uint16 `json:"rows"`
}

// writeFrame writes one frame. Callers serialise writes per stream.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > maxFrame {
		return fmt.Errorf("agent: frame of %d bytes exceeds %d", len(payload), maxFrame)
	}
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if len(payload) == 0 {
		_, err := w.Write(hdr[:])
		return err
	}
	// One write keeps a frame in one yamux data frame in the common case.
	buf := make([]byte, 0, 5+len(payload))
	buf = append(append(buf, hdr[:]...), payload...)
	_, err := w.Write(buf)
	return err
}

// frameHead is the room a buffer leaves before its payload for
// writeFramed: the frame's header.
const frameHead = 5

// writeFramed writes the frame whose payload is b[frameHead:], putting its
// header in b's head room: one write, and no copy of a large payload (the
// output copiers read into the room after it).
func writeFramed(w io.Writer, typ byte, b []byte) error {
	n := len(b) - frameHead
	if n > maxFrame {
		return fmt.Errorf("agent: frame of %d bytes exceeds %d", n, maxFrame)
	}
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:frameHead], uint32(n))
	_, err := w.Write(b)
	return err
}

func writeJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFrame(w, typ, b)
}

// errBadFrame is a frame that breaks the protocol: its peer is broken or
// hostile, and the stream is dropped.
var errBadFrame = errors.New("agent: bad frame")

// readFrame reads one frame into buf (grown as needed) and returns its type
// and payload, which aliases buf.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	return readFrameMax(r, buf, maxFrame)
}

// readFrameMax is readFrame for frames of at most limit bytes.
func readFrameMax(r io.Reader, buf []byte, limit uint32) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > limit {
		return 0, nil, fmt.Errorf("%w: %q of %d bytes exceeds %d", errBadFrame, hdr[0], n, limit)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

func readJSON(r io.Reader, want byte, v any) error {
	return readJSONMax(r, want, v, maxFrame)
}

// readJSONMax is readJSON for frames of at most limit bytes.
func readJSONMax(r io.Reader, want byte, v any, limit uint32) error {
	typ, payload, err := readFrameMax(r, nil, limit)
	if err != nil {
		return err
	}
	if typ != want {
		return fmt.Errorf("%w: got %q, want %q", errBadFrame, typ, want)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %q: %w", errBadFrame, typ, err)
	}
	return nil
}

// streamWindow is each stream's receive window: the most a stream's peer
// may send before the reader takes it. It is what a process's unread
// output costs in berth beside its outbox, so it is small: when berth stops
// reading a process's stream, the agent stops reading its pipes once this
// much is in flight, and the other streams go on.
const streamWindow = 256 << 10

// Keepalive: each end pings the other every keepAliveInterval and gives a
// pong, or a write, writeTimeout; a connection that stays silent longer is
// dead, and the agent kills its processes. A peer is so declared after
// 5 to 7 s of silence: long enough that a loaded machine's stalls don't
// trip it, short enough that nothing outlives a frozen or vanished berth
// for long.
const (
	keepAliveInterval = 2 * time.Second
	writeTimeout      = 5 * time.Second
)

// muxConfig is the yamux configuration of both ends.
func muxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.MaxStreamWindowSize = streamWindow
	cfg.KeepAliveInterval = keepAliveInterval
	cfg.ConnectionWriteTimeout = writeTimeout
	cfg.StreamCloseTimeout = time.Minute
	return cfg
}

// compatible reports whether an agent that speaks proto, and still serves
// berths down to min, serves this berth.
func compatible(proto, min int) bool {
	return proto >= minProto && min <= protoVersion && min <= proto
}

// headerJoiner sits under yamux, whose send loop writes each data frame's
// 12-byte header and its body in two calls. Over an exec stream every call
// becomes a frame of the engine's own, so it holds a data header back and
// sends it with its body in one write: gathered (writev) on a unix or TCP
// socket, else copied into a buffer it keeps. On the door's socket that
// halves the agent's writes, and berth wakes once per frame, not twice.
// Only yamux's send loop writes, so nothing here is shared.
type headerJoiner struct {
	w    io.Writer
	hdr  [yamuxHeaderSize]byte // a data frame header awaiting its body, when held
	held bool
	buf  []byte // the joined frame, reused: a frame is up to a window (256 KiB)
}

const (
	yamuxHeaderSize = 12
	yamuxTypeData   = 0
)

func (j *headerJoiner) Write(p []byte) (int, error) {
	if !j.held {
		if len(p) == yamuxHeaderSize && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:12]) > 0 {
			copy(j.hdr[:], p)
			j.held = true
			return len(p), nil
		}
		return j.w.Write(p)
	}
	j.held = false
	var err error
	switch c := j.w.(type) {
	case *net.UnixConn, *net.TCPConn:
		bufs := net.Buffers{j.hdr[:], p}
		_, err = bufs.WriteTo(c)
	default:
		j.buf = append(append(j.buf[:0], j.hdr[:]...), p...)
		_, err = j.w.Write(j.buf)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// joinedConn is a transport whose writes go through a headerJoiner.
type joinedConn struct {
	io.ReadWriteCloser
	j *headerJoiner
}

func newJoinedConn(c io.ReadWriteCloser) joinedConn {
	return joinedConn{ReadWriteCloser: c, j: &headerJoiner{w: c}}
}

func (c joinedConn) Write(p []byte) (int, error) { return c.j.Write(p) }

// maxPID is the kernel's PID_MAX_LIMIT: no pid is larger.
const maxPID = 1 << 22

// checkReply vets what the agent says in a reply to op before berth uses
// it: the agent runs in the instance, whose processes could have replaced
// it, so berth takes nothing it says on trust.
func checkReply(op string, rep *reply) error {
	if rep.Error != "" {
		rep.Error = agentText(rep.Error)
		return nil
	}
	bad := func(what string, v any) error {
		return fmt.Errorf("%w: %s reply with %s %v", errBadFrame, op, what, v)
	}
	switch op {
	case opHello, opDoor:
		if rep.PID <= 0 || rep.PID > maxPID {
			return bad("pid", rep.PID)
		}
		if rep.Version == "" || len(rep.Version) > 128 {
			return bad("version of length", len(rep.Version))
		}
		if rep.Proto < 0 || rep.MinProto < 0 {
			return bad("protocol", rep.Proto)
		}
	case opExec, opService:
		if rep.PID <= 0 || rep.PID > maxPID {
			return bad("pid", rep.PID)
		}
	case opProcs:
		if rep.Count < 0 || rep.Count > maxPID {
			return bad("count", rep.Count)
		}
	case opListen:
		if rep.Port <= 0 || rep.Port > 65535 {
			return bad("port", rep.Port)
		}
		if rep.Listener == 0 {
			return bad("listener", rep.Listener)
		}
	}
	return nil
}

// decodeExit reads an exit frame. reason is the agent's account of a
// process that could not be waited for.
func decodeExit(payload []byte) (status backends.ExitStatus, reason error, err error) {
	var m exitMsg
	if err := json.Unmarshal(payload, &m); err != nil {
		return status, nil, fmt.Errorf("%w: exit: %w", errBadFrame, err)
	}
	// Exit codes are a byte, 128+signal for a signal, or -1 for none.
	if m.Code < -1 || m.Code > 255 || m.Signal < 0 || m.Signal > 64 {
		return status, nil, fmt.Errorf("%w: exit code %d, signal %d", errBadFrame, m.Code, m.Signal)
	}
	status.Code = m.Code
	if m.Signal > 0 {
		status.Signal = backends.SignalName(m.Signal)
	}
	if m.Reason != "" {
		reason = errors.New(agentText(m.Reason))
	}
	return status, reason, nil
}

// maxAgentText bounds a message of the agent's that berth passes on.
const maxAgentText = 1024

// agentText makes a message of the agent's fit to pass on: valid UTF-8,
// no control characters, at most maxAgentText bytes.
func agentText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxAgentText {
		cut := maxAgentText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
