package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/berthdev/berth/rpc"
)

var lspOnly = flag.Bool("lsp", false, "run only the language-server figures: pylsp through `berth lsp` beside the engine's CLI exec (Debian test image)")

// lspImage is the test image with pylsp, for -lsp.
func lspImage() string {
	if *engineArg == "docker" {
		return envOr("BERTH_TEST_DEBIAN_IMAGE", "berth-test/debian:2")
	}
	return envOr("BERTH_TEST_INCUS_DEBIAN_IMAGE", "berth-test/debian-2")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

const lspMain = `from mod import helper


def main():
    return helper(1)
`

const lspMod = `def helper(x):
    """Add one to x."""
    return x + 1
`

// lspConn is a minimal LSP client on a server's stdio: one request at a
// time, the server's own requests answered with null.
type lspConn struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *rpc.FrameReader
	id  int
}

func startLSPConn(cmd *exec.Cmd) (*lspConn, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &lspConn{cmd: cmd, in: in, out: rpc.NewFrameReader(out, 64<<20)}, nil
}

func (c *lspConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return rpc.WriteFrame(c.in, b)
}

func (c *lspConn) notify(method string, params any) error {
	return c.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// call sends a request and reads until its response, answering the
// server's requests on the way.
func (c *lspConn) call(method string, params any) (json.RawMessage, error) {
	c.id++
	if err := c.send(map[string]any{"jsonrpc": "2.0", "id": c.id, "method": method, "params": params}); err != nil {
		return nil, err
	}
	for {
		b, err := c.out.ReadFrame()
		if err != nil {
			return nil, err
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		switch {
		case m.Method != "" && m.ID != nil:
			if err := c.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": nil}); err != nil {
				return nil, err
			}
		case m.Method == "" && string(m.ID) == strconv.Itoa(c.id):
			if m.Error != nil {
				return nil, fmt.Errorf("%s: %s", method, m.Error)
			}
			return m.Result, nil
		}
	}
}

func (c *lspConn) close() {
	_, _ = c.call("shutdown", nil)
	_ = c.notify("exit", nil)
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// start initializes a server for root (a file URI as the server is to
// see it) and opens main.py.
func (c *lspConn) start(root string) error {
	if _, err := c.call("initialize", map[string]any{"processId": os.Getpid(), "rootUri": root, "capabilities": map[string]any{}}); err != nil {
		return err
	}
	if err := c.notify("initialized", map[string]any{}); err != nil {
		return err
	}
	return c.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{
		"uri": root + "/main.py", "languageId": "python", "version": 1, "text": lspMain}})
}

// lspBench measures pylsp through `berth lsp` and through the engine's
// CLI exec side by side, alternating requests so that both see the same
// load, and then the memory a 5 MB didOpen costs berth lsp.
func lspBench(r *report, eng *engine, bin, ws, id, containerWS string) error {
	for name, text := range map[string]string{"main.py": lspMain, "mod.py": lspMod} {
		if err := os.WriteFile(filepath.Join(ws, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	berthCmd := func() *exec.Cmd {
		cmd := exec.Command(bin, "lsp", "--backend", *engineArg, "--workspace", ws, "--", "pylsp")
		cmd.Env = append(os.Environ(), "BERTH_IMAGE="+*image)
		return cmd
	}
	viaBerth, err := startLSPConn(berthCmd())
	if err != nil {
		return err
	}
	defer viaBerth.close()
	// The engine's CLI exec, in the workspace folder as berth runs it.
	raw := exec.Command("docker", "exec", "-i", "-w", containerWS, id, "pylsp")
	rawShown := "`docker exec -i -w DIR CTR pylsp`"
	if *engineArg != "docker" {
		raw = exec.Command("incus", "exec", "--cwd", containerWS, strings.SplitN(id, ".", 2)[0], "--", "pylsp")
		rawShown = "`incus exec --cwd DIR CTR -- pylsp`"
	}
	direct, err := startLSPConn(raw)
	if err != nil {
		return err
	}
	defer direct.close()
	hostRoot, contRoot := "file://"+ws, "file://"+containerWS
	if err := viaBerth.start(hostRoot); err != nil {
		return fmt.Errorf("berth lsp: %w", err)
	}
	if err := direct.start(contRoot); err != nil {
		return fmt.Errorf("%s: %w", rawShown, err)
	}

	r.printf("## Language server: pylsp, per request (issue 14)\n\n")
	r.printf("pylsp in one container, reached two ways at once: through `berth lsp -- pylsp` and through %s, a raw pipe with no rewriting. Requests alternate between the two, %d each after a warm-up; hover answers with text, definition with a URI in the workspace, which berth maps.\n\n", rawShown, *samples)
	r.printf("| request | berth lsp p50 | p90 | raw pipe p50 | p90 | p50 added by berth |\n|---|---|---|---|---|---|\n")
	pos := map[string]any{"line": 4, "character": 12}
	for _, method := range []string{"textDocument/hover", "textDocument/definition"} {
		req := func(c *lspConn, root string) func() error {
			return func() error {
				res, err := c.call(method, map[string]any{"textDocument": map[string]string{"uri": root + "/main.py"}, "position": pos})
				if err == nil && (len(res) == 0 || string(res) == "null") {
					err = errors.New("empty result")
				}
				if err == nil && method == "textDocument/definition" {
					var locs []struct {
						URI string `json:"uri"`
					}
					if json.Unmarshal(res, &locs) != nil || len(locs) == 0 || locs[0].URI != root+"/mod.py" {
						err = fmt.Errorf("definition %s is not %s/mod.py", res, root)
					}
				}
				return err
			}
		}
		a, b := req(viaBerth, hostRoot), req(direct, contRoot)
		for range 20 { // warm both
			if err := a(); err != nil {
				return fmt.Errorf("berth lsp %s: %w", method, err)
			}
			if err := b(); err != nil {
				return fmt.Errorf("%s %s: %w", rawShown, method, err)
			}
		}
		var da, db []time.Duration
		for range *samples {
			x, err := measure(1, a)
			if err != nil {
				return err
			}
			y, err := measure(1, b)
			if err != nil {
				return err
			}
			da, db = append(da, x...), append(db, y...)
		}
		r.printf("| `%s` | %s | %s | %s | %s | %s |\n", method, ms(pct(da, 0.5)), ms(pct(da, 0.9)), ms(pct(db, 0.5)), ms(pct(db, 0.9)), ms(pct(da, 0.5)-pct(db, 0.5)))
	}

	// Memory: one 5 MB didOpen through a fresh berth lsp.
	fresh, err := startLSPConn(berthCmd())
	if err != nil {
		return err
	}
	defer fresh.close()
	if err := fresh.start(hostRoot); err != nil {
		return err
	}
	// Settle, then read the peak so far as the baseline.
	if _, err := fresh.call("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": hostRoot + "/main.py"}, "position": pos}); err != nil {
		return err
	}
	before, err := vmHWM(fresh.cmd.Process.Pid)
	if err != nil {
		return err
	}
	const size = 5 << 20
	line := "# " + strings.Repeat("x", 77) + "\n"
	text := strings.Repeat(line, size/len(line))
	if err := fresh.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{
		"uri": hostRoot + "/big.py", "languageId": "python", "version": 1, "text": text}}); err != nil {
		return err
	}
	// A request after it, on the small file: its answer means the didOpen
	// went through.
	t0 := time.Now()
	if _, err := fresh.call("textDocument/hover", map[string]any{"textDocument": map[string]string{"uri": hostRoot + "/main.py"}, "position": pos}); err != nil {
		return err
	}
	took := time.Since(t0)
	after, err := vmHWM(fresh.cmd.Process.Pid)
	if err != nil {
		return err
	}
	r.printf("\nA %.1f MB `didOpen` (then a hover on main.py, answered in %s): berth lsp's peak RSS went from %s to %s, %.1f× the message.\n\n",
		float64(len(text))/1e6, ms(took), mb(before), mb(after), float64(after-before)/float64(len(text)))
	return nil
}

// vmHWM reads a process's peak RSS, in bytes.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}
