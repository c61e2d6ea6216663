package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"
)

// rawBerth is a minimal client that decodes each frame once with a fast
// JSON parser, as an editor's native JSON.parse would: encoding/json
// decodes escaped strings at ~170 MB/s here and would measure itself, not
// berth.
type rawBerth struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	pipe *os.File // berth's stdout
	out  *bufio.Reader
	id   int
	p    fastjson.Parser
	body []byte // the last frame read, reused
	// countOnly, when set, leaves Text unset: read only counts it.
	countOnly bool
	// idle, when set, is how long read waits for berth to send anything.
	idle time.Duration
}

func startRaw(bin, ws string, args ...string) (*rawBerth, error) {
	cmd := exec.Command(bin, append([]string{"--stdio", "--log-level", "error", "--backend", *engineArg}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+*image)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pipe, _ := out.(*os.File)
	b := &rawBerth{cmd: cmd, in: in, pipe: pipe, out: bufio.NewReaderSize(out, 1<<20)}
	if _, err := b.call("initialize", map[string]any{"rootPath": ws}); err != nil {
		return nil, err
	}
	return b, nil
}

type frame struct {
	ID     *int            `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
	Params struct {
		PID     string `json:"pid"`
		Text    string `json:"text"`
		TextLen int    `json:"-"` // len(Text), also set when Text is not
		Code    int    `json:"code"`
	} `json:"params"`
}

func (b *rawBerth) send(method string, params any) (int, error) {
	b.id++
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": b.id, "method": method, "params": params})
	if err != nil {
		return 0, err
	}
	_, err = fmt.Fprintf(b.in, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.id, err
}

func (b *rawBerth) read() (*frame, error) {
	if b.idle > 0 && b.pipe != nil {
		_ = b.pipe.SetReadDeadline(time.Now().Add(b.idle))
	}
	n := -1
	for {
		line, err := b.out.ReadString('\n')
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("berth sent nothing for %s", b.idle)
		}
		if err != nil {
			return nil, err
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	if cap(b.body) < n {
		b.body = make([]byte, n)
	}
	body := b.body[:n]
	if _, err := io.ReadFull(b.out, body); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("berth sent nothing for %s", b.idle)
		}
		return nil, err
	}
	v, err := b.p.ParseBytes(body)
	if err != nil {
		return nil, err
	}
	f := &frame{Method: string(v.GetStringBytes("method"))}
	if v.Exists("id") {
		id := v.GetInt("id")
		f.ID = &id
	}
	if r := v.Get("result"); r != nil {
		f.Result = json.RawMessage(r.MarshalTo(nil))
	}
	if e := v.Get("error"); e != nil {
		f.Error = &struct {
			Message string `json:"message"`
		}{Message: string(e.GetStringBytes("message"))}
	}
	f.Params.PID = string(v.GetStringBytes("params", "pid"))
	// The text is unescaped, as an editor's JSON.parse would; a counting
	// reader needs only its length.
	text := v.GetStringBytes("params", "text")
	f.Params.TextLen = len(text)
	if !b.countOnly {
		f.Params.Text = string(text)
	}
	f.Params.Code = v.GetInt("params", "code")
	return f, nil
}

func (b *rawBerth) call(method string, params any) (*frame, error) {
	id, err := b.send(method, params)
	if err != nil {
		return nil, err
	}
	for {
		f, err := b.read()
		if err != nil {
			return nil, err
		}
		if f.ID != nil && *f.ID == id {
			if f.Error != nil {
				return nil, fmt.Errorf("%s: %s", method, f.Error.Message)
			}
			return f, nil
		}
	}
}

// execCount runs argv and counts its output bytes until berth/exit.
func (b *rawBerth) execCount(argv []string) (int64, error) {
	f, err := b.call("berth/exec", map[string]any{"argv": argv})
	if err != nil {
		return 0, err
	}
	var res struct{ PID string }
	json.Unmarshal(f.Result, &res)
	var n int64
	b.countOnly = true
	defer func() { b.countOnly = false }()
	for {
		f, err := b.read()
		if err != nil {
			return n, err
		}
		switch {
		case f.Method == "berth/output" && f.Params.PID == res.PID:
			n += int64(f.Params.TextLen)
		case f.Method == "berth/exit" && f.Params.PID == res.PID:
			if f.Params.Code != 0 {
				return n, fmt.Errorf("exit %d", f.Params.Code)
			}
			return n, nil
		}
	}
}

func (b *rawBerth) close() {
	if _, err := b.call("shutdown", nil); err != nil {
		b.cmd.Process.Kill()
	}
	b.in.Close()
	b.cmd.Wait()
}
