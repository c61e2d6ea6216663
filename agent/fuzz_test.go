package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzAgentFrames feeds berth's side of the agent protocol whatever an
// agent could send: a process stream, a reply to each request, a
// connection handed back, and the door's handshake. None may panic, hang,
// or accept what breaks the protocol.
//
//	go test -fuzz FuzzAgentFrames ./agent/
func FuzzAgentFrames(f *testing.F) {
	var stream bytes.Buffer
	_ = writeFrame(&stream, frameStdout, []byte("out"))
	_ = writeFrame(&stream, frameStderr, []byte("err"))
	_ = writeJSON(&stream, frameExit, exitMsg{Code: 137, Signal: 9})
	f.Add(stream.Bytes())
	for _, rep := range []reply{
		{Version: "abc", PID: 1, OS: "linux", Arch: "amd64"},
		{PID: 42},
		{Port: 8080, Listener: 3},
		{Error: "no such file", ErrKind: errKindNotFound},
	} {
		var b bytes.Buffer
		_ = writeJSON(&b, frameReply, rep)
		f.Add(b.Bytes())
	}
	var conn bytes.Buffer
	_ = writeJSON(&conn, frameRequest, request{Op: opConn, Listener: 1})
	f.Add(conn.Bytes())
	var door bytes.Buffer
	_ = writeFrame(&door, frameChallenge, append([]byte{doorVersion}, make([]byte, nonceSize)...))
	_ = writeFrame(&door, frameProof, make([]byte, 32))
	f.Add(door.Bytes())
	f.Add([]byte{frameStdout, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})

	key := bytes.Repeat([]byte{5}, keySize)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A process stream: the exit frame ends it, or an error does.
		var n atomicCounters
		var out countWriter
		status, _, err := demux(bytes.NewReader(data), &out, &out, &n.frames, &n.delivering)
		if err == nil && (status.Code < -1 || status.Code > 255) {
			t.Fatalf("demux accepted exit code %d", status.Code)
		}
		if out.n > int64(len(data)) {
			t.Fatalf("demux wrote %d bytes out of %d", out.n, len(data))
		}

		// A reply to each request.
		for _, op := range []string{opHello, opExec, opDial, opListen, opDoor} {
			var rep reply
			if err := readJSONMax(bytes.NewReader(data), frameReply, &rep, maxJSON); err != nil {
				break
			}
			if checkReply(op, &rep) == nil {
				switch {
				case rep.Error != "":
					if len(rep.Error) > maxAgentText+len("…") {
						t.Fatalf("error text of %d bytes passed", len(rep.Error))
					}
				case op == opExec && (rep.PID <= 0 || rep.PID > maxPID):
					t.Fatalf("exec reply with pid %d passed", rep.PID)
				case op == opListen && (rep.Port <= 0 || rep.Port > 65535):
					t.Fatalf("listen reply with port %d passed", rep.Port)
				}
			}
		}

		// A connection the agent hands back for a reverse tunnel.
		var req request
		if readJSONMax(bytes.NewReader(data), frameRequest, &req, maxJSON) == nil {
			_, _ = json.Marshal(req)
		}

		// The door's handshake, berth's side: only the right proof passes,
		// and no fuzzer finds that.
		if err := doorClient(&fakeConn{r: bytes.NewReader(data)}, key); err == nil {
			t.Fatal("doorClient accepted a made-up agent")
		}
	})
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// fakeConn is an agent that says data and hears nothing.
type fakeConn struct{ r io.Reader }

func (c *fakeConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.UnixAddr{} }
func (c *fakeConn) RemoteAddr() net.Addr             { return &net.UnixAddr{} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

type atomicCounters struct {
	frames     atomic.Int64
	delivering atomic.Bool
}
