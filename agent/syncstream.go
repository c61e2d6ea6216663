package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// A sync stream (opSync, protocol 4) is sync mode's long-lived receiver:
// one stream per instance that carries batch after batch of changes, so a
// batch costs no process start. Each batch is
//
//	berth → agent: frameBatch, JSON batchMsg (paths to remove, the states
//	               berth expects of the files the tar replaces)
//	berth → agent: frameStdin* carrying one tar stream, then frameEOF
//	agent → berth: frameAck, JSON ackMsg
//
// The agent removes, then extracts under the request's Cwd, and
// acknowledges; an error fails the batch, not the stream.
const (
	frameBatch = 'b' // berth → agent, on a sync stream: JSON batchMsg
	frameAck   = 'k' // agent → berth, on a sync stream: JSON ackMsg
)

type batchMsg struct {
	// Remove lists names to remove, recursively.
	Remove []string `json:"remove,omitempty"`
	// Expect maps a regular file's name to its state as last synced (see
	// FileState): one found in another state is kept as NAME.berth-conflict.
	Expect map[string]string `json:"expect,omitempty"`
}

type ackMsg struct {
	Error string `json:"error,omitempty"`
	// Conflicts lists the names kept as NAME.berth-conflict.
	Conflicts []string `json:"conflicts,omitempty"`
}

// maxBatchJSON bounds a batch header the agent reads.
const maxBatchJSON = 16 << 20

// cleanName is a batch name made relative to the stream's root, or "" if
// it would leave it.
func cleanName(n string) string {
	n = path.Clean(strings.TrimPrefix(n, "/"))
	if n == "." || n == ".." || strings.HasPrefix(n, "../") {
		return ""
	}
	return n
}

// frameReader reads the tar of one batch: frameStdin payloads until
// frameEOF.
type frameReader struct {
	r   io.Reader
	buf []byte
	cur []byte
	eof bool
}

func (f *frameReader) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		typ, payload, err := readFrame(f.r, f.buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		f.buf = payload[:0]
		switch typ {
		case frameStdin:
			f.cur = payload
		case frameEOF:
			f.eof = true
		default:
			return 0, fmt.Errorf("%w: %q in a sync batch", errBadFrame, typ)
		}
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// serveSync is the agent's end of a sync stream rooted at dir: it applies
// batches until berth closes the stream.
func serveSync(st io.ReadWriter, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		_ = writeJSON(st, frameReply, reply{Error: err.Error()})
		return nil
	}
	defer root.Close()
	if err := writeJSON(st, frameReply, reply{}); err != nil {
		return err
	}
	for {
		var b batchMsg
		if err := readJSONMax(st, frameBatch, &b, maxBatchJSON); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var errs []error
		for _, n := range b.Remove {
			if n = cleanName(n); n != "" {
				if err := root.RemoveAll(n); err != nil {
					errs = append(errs, err)
				}
			}
		}
		expect := make(map[string]string, len(b.Expect))
		for n, s := range b.Expect {
			if n = cleanName(n); n != "" {
				expect[n] = s
			}
		}
		fr := &frameReader{r: st}
		conflicts, err := untar(root, fr, expect)
		if err != nil {
			errs = append(errs, err)
		}
		// Whatever is left of the batch, to stay in step with berth.
		if _, err := io.Copy(io.Discard, fr); err != nil {
			return err
		}
		ack := ackMsg{Conflicts: conflicts}
		if err := errors.Join(errs...); err != nil {
			ack.Error = err.Error()
		}
		if err := writeJSON(st, frameAck, ack); err != nil {
			return err
		}
	}
}

// ErrNoSyncStream means the agent predates the sync stream (ProtoSyncStream).
var ErrNoSyncStream = errors.New("the agent predates the sync stream")

// SyncStream is berth's end of a sync stream. Apply calls are serialised.
type SyncStream struct {
	c  *Client
	st *yamux.Stream

	mu     sync.Mutex // serialises batches; guards broken
	broken error      // set once the stream is out of step or gone
}

// SyncStream opens a sync stream that extracts under dir in the instance.
func (c *Client) SyncStream(ctx context.Context, dir string) (*SyncStream, error) {
	if c.proto[0] < ProtoSyncStream {
		return nil, ErrNoSyncStream
	}
	var rep reply
	st, err := c.open(ctx, request{Op: opSync, Cwd: dir}, &rep)
	if err != nil {
		return nil, err
	}
	return &SyncStream{c: c, st: st}, nil
}

// Batch is one batch of a sync stream.
type Batch struct {
	Remove []string          // names to remove, recursively, first
	Expect map[string]string // see batchMsg
	// Tar writes the batch's tar stream; nil sends none.
	Tar func(w io.Writer) error
}

// syncChunk is the most tar data one frame carries.
const syncChunk = 256 << 10

// Apply sends one batch and waits for the agent to apply it. It returns
// the names the agent kept as NAME.berth-conflict. An error from the
// agent's side of the batch leaves the stream usable; any other, or ctx
// ending, breaks it, and every later Apply fails.
func (s *SyncStream) Apply(ctx context.Context, b Batch) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return nil, s.broken
	}
	stop := context.AfterFunc(ctx, func() {
		_ = s.st.SetDeadline(time.Now())
	})
	defer stop()
	ack, err := s.apply(b)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		s.broken = fmt.Errorf("agent: sync stream: %w", err)
		s.st.Close()
		return nil, s.broken
	}
	if ack.Error != "" {
		return ack.Conflicts, fmt.Errorf("agent: sync: %s", agentText(ack.Error))
	}
	return ack.Conflicts, nil
}

func (s *SyncStream) apply(b Batch) (ackMsg, error) {
	var ack ackMsg
	if err := writeJSON(s.st, frameBatch, batchMsg{Remove: b.Remove, Expect: b.Expect}); err != nil {
		return ack, s.c.lost(err)
	}
	if b.Tar != nil {
		bw := bufio.NewWriterSize(frameWriter{s.st}, syncChunk)
		if err := b.Tar(bw); err != nil {
			return ack, err
		}
		if err := bw.Flush(); err != nil {
			return ack, s.c.lost(err)
		}
	}
	if err := writeFrame(s.st, frameEOF, nil); err != nil {
		return ack, s.c.lost(err)
	}
	if err := readJSONMax(s.st, frameAck, &ack, maxJSON); err != nil {
		return ack, s.c.lost(err)
	}
	// The agent is the instance's: it may only name files berth asked
	// it to check.
	asked := make(map[string]bool, len(b.Expect))
	for n := range b.Expect {
		asked[cleanName(n)] = true
	}
	for _, n := range ack.Conflicts {
		if !asked[n] {
			return ack, fmt.Errorf("%w: sync ack names %q, which berth did not ask about", errBadFrame, n)
		}
		delete(asked, n)
	}
	return ack, nil
}

// Close ends the stream.
func (s *SyncStream) Close() error { return s.st.Close() }

// frameWriter writes what it is given as data frames.
type frameWriter struct{ w io.Writer }

func (f frameWriter) Write(p []byte) (int, error) {
	for off := 0; off < len(p); off += maxFrame {
		if err := writeFrame(f.w, frameStdin, p[off:min(off+maxFrame, len(p))]); err != nil {
			return off, err
		}
	}
	return len(p), nil
}

// Err is why the stream broke, or nil while it is usable.
func (s *SyncStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken
}
