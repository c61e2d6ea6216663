// Command counter is the rpc-mode plugin of berth's plugins test image
// (testdata/images/plugins.sh): a JSON-RPC 2.0 server with LSP framing on
// stdio that keeps state between calls.
//
// Methods: count (adds one, answers the total), echo (answers its params),
// stat ({"path"}: whether that container path exists), fail (a JSON-RPC
// error), hang (never answers), crash (exits 3 with a line on stderr),
// garbage (prints a line that isn't a framed message).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

type handler struct {
	mu    sync.Mutex // guards count and writes to stdout outside the conn
	count int
}

func (h *handler) handle(ctx context.Context, c *jsonrpc2.Conn, r *jsonrpc2.Request) (any, error) {
	switch r.Method {
	case "count":
		h.mu.Lock()
		defer h.mu.Unlock()
		h.count++
		return h.count, nil
	case "echo":
		if r.Params == nil {
			return nil, nil
		}
		return r.Params, nil
	case "stat":
		var p struct {
			Path string `json:"path"`
		}
		if r.Params != nil {
			_ = json.Unmarshal(*r.Params, &p)
		}
		_, err := os.Stat(p.Path)
		return map[string]any{"path": p.Path, "exists": err == nil}, nil
	case "fail":
		return nil, &jsonrpc2.Error{Code: 42, Message: "failing as asked"}
	case "hang":
		<-ctx.Done()
		time.Sleep(time.Hour)
		return nil, nil
	case "crash":
		fmt.Fprintln(os.Stderr, "counter: crashing as asked")
		os.Exit(3)
	case "garbage":
		h.mu.Lock()
		fmt.Fprintln(os.Stdout, "this is not a framed message")
		h.mu.Unlock()
		return nil, nil
	}
	return nil, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "no method " + r.Method}
}

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdin.Close() }

var _ io.ReadWriteCloser = stdio{}

func main() {
	h := &handler{}
	conn := jsonrpc2.NewConn(context.Background(), jsonrpc2.NewBufferedStream(stdio{}, jsonrpc2.VSCodeObjectCodec{}),
		jsonrpc2.AsyncHandler(jsonrpc2.HandlerWithError(h.handle)))
	<-conn.DisconnectNotify()
}
