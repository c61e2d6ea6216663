// Package lsp is `berth lsp`: a stdio language server that an editor
// spawns like any other, which runs the real server inside the
// workspace's container, through the agent, and relays every message both
// ways, rewriting file URIs and paths between the host and the container
// (Rewriter). Files that exist only in the container, such as the
// standard library, reach the editor through a read-only mirror in the
// user's cache directory (Mirror).
//
// The messages are relayed frame by frame, never decoded into Go types:
// the rewriter finds the few strings to change and splices them, so a
// message of any method, known or not, passes with only its URIs changed.
package lsp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/pathmap"
	"github.com/berthdev/berth/rpc"
)

// maxMessage bounds one message either way: a didOpen of a huge file
// must still pass.
const maxMessage = 256 << 20

// exitGrace is how long the server has to exit once the editor has
// closed its end, before it is killed.
const exitGrace = 3 * time.Second

// Target is a workspace's running container, as the proxy needs it.
type Target struct {
	Mapper *pathmap.Mapper // the workspace's mounts
	// Sync maps the synced mounts, whose host side lacks the files the
	// sync ignores; nil without.
	Sync *pathmap.Mapper
	// Exec starts a process in the workspace folder, as the remote user,
	// with the container's environment, unless spec says otherwise.
	Exec ExecFunc
	// MirrorDir is where the instance's mirror goes (see MirrorDir); ""
	// for none.
	MirrorDir string
}

// Proxy is one `berth lsp` session: one editor, one server.
type Proxy struct {
	Argv []string // the server's command line in the container
	// Workspace is the host folder whose container runs the server; ""
	// finds it from initialize's rootUri (FindWorkspace), else Dir.
	Workspace string
	Dir       string
	// Start ensures the workspace's container, as `berth up` would.
	Start  func(ctx context.Context, workspace string) (*Target, error)
	Stderr io.Writer // the server's stderr, paths mapped
	Log    *slog.Logger
	// Trace logs every frame, as relayed, at debug level.
	Trace bool
}

// Run serves the editor on in and out until the server exits, and
// returns the server's exit code. When the editor closes in, the server's
// stdin is closed and it has exitGrace to exit before it is killed; when
// ctx ends, it is killed. The reader of in is left blocked if the server
// exits first and in can't be interrupted: berth lsp exits right after.
func (p *Proxy) Run(ctx context.Context, in io.Reader, out io.Writer) (int, error) {
	fr := rpc.NewFrameReader(in, maxMessage)
	first, err := p.readFrame(fr)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, err
	}
	var head struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(first, &head)
	ws := p.Workspace
	if ws == "" {
		if head.Method == "initialize" {
			ws = FindWorkspace(rootOf(head.Params))
		}
		if ws == "" {
			ws = p.Dir
		}
	}
	p.Log.Debug("lsp: workspace", "workspace", ws, "method", head.Method)
	fail := func(err error) (int, error) {
		if head.ID != nil {
			_ = writeError(out, head.ID, err)
		}
		return 0, err
	}
	t, err := p.Start(ctx, ws)
	if err != nil {
		return fail(err)
	}
	var mirror *Mirror
	if t.MirrorDir != "" {
		if mirror, err = NewMirror(t.MirrorDir, t.Exec, p.Log); err != nil {
			p.Log.Warn("lsp: no mirror: container-only files keep their container URIs", "err", err)
		}
	}
	rw := NewRewriter(t.Mapper, t.Sync, mirror, exists)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	stderr := t.Mapper.NewWriter(p.Stderr)
	proc, err := t.Exec(ctx, backends.ExecSpec{Argv: p.Argv, Stdin: inR, Stdout: outW, Stderr: stderr})
	if err != nil {
		return fail(err)
	}
	p.Log.Debug("lsp: server started", "argv", p.Argv)

	// Goroutines: up relays the editor's messages (it may stay blocked
	// reading in, see above); down relays the server's and ends with its
	// stdout; waiter waits for the server. Run waits for down and waiter.
	upDone := make(chan error, 1)
	go func() {
		upDone <- p.up(fr, first, rw, inW)
		inW.Close() // the server sees EOF
	}()
	var wg sync.WaitGroup
	downDone := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		downDone <- p.down(ctx, outR, rw, out)
		outR.Close() // the server's output now goes nowhere, as the editor has gone
	}()
	type exit struct {
		st  backends.ExitStatus
		err error
	}
	exited := make(chan exit, 1)
	go func() {
		defer wg.Done()
		st, err := proc.Wait(context.WithoutCancel(ctx))
		_ = stderr.Flush()
		outW.Close()
		inR.CloseWithError(errors.New("the language server has exited"))
		exited <- exit{st, err}
	}()
	kill := func(why string) {
		p.Log.Debug("lsp: killing the server", "why", why)
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = proc.Kill(kctx)
	}
	// Wait for the server, killing it when the editor is gone (after a
	// grace period if it only closed its end) or berth lsp is stopped.
	var ex exit
	var grace <-chan time.Time
	stopped := ctx.Done()
	for waiting := true; waiting; {
		select {
		case ex = <-exited:
			waiting = false
		case err := <-upDone:
			upDone = nil
			p.Log.Debug("lsp: the editor closed its end", "err", err)
			grace = time.After(exitGrace)
		case err := <-downDone:
			downDone = nil
			if err != nil {
				// The editor stopped reading: nobody is left to serve.
				kill(fmt.Sprintf("writing to the editor failed: %v", err))
			}
		case <-grace:
			grace = nil
			kill("it did not exit after the editor left")
		case <-stopped:
			stopped = nil
			kill("berth lsp was stopped")
		}
	}
	wg.Wait()
	if ex.err != nil {
		return 0, fmt.Errorf("lsp: %s: %w", p.Argv[0], ex.err)
	}
	p.Log.Debug("lsp: server exited", "code", ex.st.Code)
	return ex.st.Code, nil
}

// readFrame reads the next frame, skipping malformed ones.
func (p *Proxy) readFrame(fr *rpc.FrameReader) ([]byte, error) {
	for {
		b, err := fr.ReadFrame()
		if err != nil && rpc.IsFrameError(err) {
			p.Log.Warn("lsp: skipping a malformed frame", "err", err)
			continue
		}
		return b, err
	}
}

// up relays the editor's messages to the server, first and then the rest
// of fr, until the editor closes its end or the server's stdin fails.
func (p *Proxy) up(fr *rpc.FrameReader, first []byte, rw *Rewriter, w io.Writer) error {
	msg := first
	for {
		if bytes.Contains(msg, []byte(`"initialize"`)) {
			msg = prepareInitialize(msg, rw.m)
		}
		out, err := rw.ToServer(msg)
		if err != nil {
			p.Log.Warn("lsp: relaying a message from the editor as it is", "err", err)
		}
		if p.Trace {
			p.Log.Debug("lsp: to the server", "frame", string(out))
		}
		if err := rpc.WriteFrame(w, out); err != nil {
			return err
		}
		if msg, err = p.readFrame(fr); err != nil {
			return err
		}
	}
}

// down relays the server's messages to the editor until the server's
// stdout ends (nil) or writing to the editor fails.
func (p *Proxy) down(ctx context.Context, r io.Reader, rw *Rewriter, w io.Writer) error {
	fr := rpc.NewFrameReader(r, maxMessage)
	for {
		msg, err := p.readFrame(fr)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				p.Log.Warn("lsp: reading the server's output", "err", err)
			}
			return nil
		}
		out, err := rw.ToEditor(ctx, msg)
		if err != nil {
			p.Log.Warn("lsp: relaying a message from the server as it is", "err", err)
		}
		if p.Trace {
			p.Log.Debug("lsp: to the editor", "frame", string(out))
		}
		if err := rpc.WriteFrame(w, out); err != nil {
			return err
		}
	}
}

// prepareInitialize nulls initialize's processId, which names a process
// the container can't see (servers that watch their parent would exit),
// and maps its rootPath, a path rather than a URI. Anything else is left.
func prepareInitialize(msg []byte, m *pathmap.Mapper) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(msg, &top) != nil || string(top["method"]) != `"initialize"` {
		return msg
	}
	var params map[string]json.RawMessage
	if json.Unmarshal(top["params"], &params) != nil || params == nil {
		return msg
	}
	params["processId"] = json.RawMessage("null")
	var root string
	if json.Unmarshal(params["rootPath"], &root) == nil && root != "" {
		if c, ok := m.ToContainer(root); ok {
			params["rootPath"], _ = json.Marshal(c)
		}
	}
	var err error
	if top["params"], err = json.Marshal(params); err != nil {
		return msg
	}
	out, err := json.Marshal(top)
	if err != nil {
		return msg
	}
	return out
}

// writeError answers request id with err.
func writeError(w io.Writer, id json.RawMessage, err error) error {
	body, merr := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   any             `json:"error"`
	}{"2.0", id, rpc.ErrorOf(err)})
	if merr != nil {
		return merr
	}
	return rpc.WriteFrame(w, body)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
