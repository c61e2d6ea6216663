package plugins

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"go.uber.org/goleak"
)

// counterBin is testdata/plugins/counter, built once by TestMain.
var counterBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "berth-plugins-test")
	if err != nil {
		panic(err)
	}
	counterBin = filepath.Join(dir, "counter")
	cmd := exec.Command("go", "build", "-o", counterBin, "../testdata/plugins/counter")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		panic("build counter: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hostContainer is a Container whose "instance" is this machine: files come
// from a map, processes run here. It counts the processes it starts.
type hostContainer struct {
	files  map[string]string // container path → content; a key ending in / is a directory
	starts atomic.Int32
}

func (c *hostContainer) CopyFrom(ctx context.Context, p string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := filepath.Base(p)
	found := false
	for name, body := range c.files {
		switch {
		case name == p:
			found = true
			_ = tw.WriteHeader(&tar.Header{Name: base, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(body))
		case name == p+"/":
			found = true
			_ = tw.WriteHeader(&tar.Header{Name: base + "/", Mode: 0o755, Typeflag: tar.TypeDir})
		case strings.HasPrefix(name, p+"/"):
			rel := base + "/" + strings.TrimPrefix(name, p+"/")
			if strings.HasSuffix(name, "@") { // a symbolic link
				_ = tw.WriteHeader(&tar.Header{Name: strings.TrimSuffix(rel, "@"), Linkname: body, Typeflag: tar.TypeSymlink})
				continue
			}
			_ = tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
			_, _ = tw.Write([]byte(body))
		}
	}
	if !found {
		return nil, backends.ErrNotFound
	}
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

func (c *hostContainer) Exec(ctx context.Context, spec backends.ExecSpec) (backends.Process, error) {
	c.starts.Add(1)
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &hostProc{cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if spec.Stdin != nil {
			_, _ = io.Copy(stdin, spec.Stdin)
		}
		stdin.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		// As the backends do: the process is gone, so is its stdin.
		if c, ok := spec.Stdin.(io.Closer); ok {
			c.Close()
		}
		<-copied
		close(p.done)
	}()
	return p, nil
}

type hostProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *hostProc) Wait(ctx context.Context) (backends.ExitStatus, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return backends.ExitStatus{}, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return backends.ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal().String()}, nil
		}
		return backends.ExitStatus{Code: ee.ExitCode()}, nil
	}
	return backends.ExitStatus{}, p.err
}

func (p *hostProc) Signal(ctx context.Context, sig int) error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.Signal(sig))
}

func (p *hostProc) Kill(ctx context.Context) error { return p.Signal(ctx, int(syscall.SIGKILL)) }

// script writes an exec-mode plugin as a shell script.
func script(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hello")
	body := `#!/bin/sh
case "$1" in
version) echo '"1.0"' ;;
echo) cat ;;
env) printf '{"plugin":"%s","mode":"%s"}\n' "$BERTH_PLUGIN" "$BERTH_PLUGIN_MODE" ;;
fail) echo "something broke" >&2; exit 3 ;;
garbage) echo "hello, not JSON" ;;
hang) sleep 600 ;;
*) echo "unknown $1" >&2; exit 2 ;;
esac
`
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestHost(t *testing.T) (*Host, *hostContainer) {
	t.Helper()
	hello := script(t)
	c := &hostContainer{files: map[string]string{
		CoreXFile: "[plugin.hello]\npath = \"" + hello + "\"\nexports = [\"version\", \"echo\", \"env\", \"fail\", \"garbage\", \"hang\"]\n",
		Dir + "/": "",
		Dir + "/counter.toml": "[plugin.counter]\npath = \"" + counterBin + "\"\nmode = \"rpc\"\n" +
			"exports = [\"count\", \"echo\", \"fail\", \"hang\", \"crash\", \"garbage\"]\n",
		Dir + "/broken.toml": "[plugin.broken\npath = \"/x\"\n",
		Dir + "/dup.toml":    "[plugin.hello]\npath = \"/other\"\nexports = [\"x\"]\n",
		Dir + "/link.toml@":  "/elsewhere.toml",
		Dir + "/README":      "not a plugin file",
	}}
	h := NewHost(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(h.Close)
	return h, c
}

func TestDiscover(t *testing.T) {
	h, _ := newTestHost(t)
	set, err := h.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.Plugins {
		names = append(names, p.Name+":"+p.Mode+":"+p.Source)
	}
	want := []string{"hello:exec:" + CoreXFile, "counter:rpc:" + Dir + "/counter.toml"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("plugins: got %v, want %v", names, want)
	}
	var errs []string
	for _, e := range set.Errors {
		errs = append(errs, e.Error())
	}
	wantErrs := []string{
		Dir + "/broken.toml:1:",
		Dir + `/dup.toml:1:1: plugin "hello": already declared in ` + CoreXFile,
		Dir + "/link.toml: not a regular file",
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors: got %q, want %q", errs, wantErrs)
	}
	for i := range errs {
		if !strings.HasPrefix(errs[i], wantErrs[i]) {
			t.Errorf("error %d: got %q, want it to start with %q", i, errs[i], wantErrs[i])
		}
	}

	empty := NewHost(&hostContainer{files: map[string]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer empty.Close()
	if set, err := empty.Discover(context.Background()); err != nil || len(set.Plugins)+len(set.Errors) != 0 {
		t.Errorf("no plugin files: got %+v, %v", set, err)
	}
}

func TestCall(t *testing.T) {
	h, c := newTestHost(t)
	ctx := context.Background()
	tests := []struct {
		method  string
		params  string
		timeout time.Duration
		want    string
		err     error
		errText string
		noRun   bool
	}{
		{method: "hello.version", want: `"1.0"`},
		{method: "hello.echo", params: `{"a":[1,"x"]}`, want: `{"a":[1,"x"]}`},
		{method: "hello.env", want: `{"plugin":"hello","mode":"exec"}`},
		{method: "hello.fail", err: ErrFailed, errText: "exited with code 3; stderr: something broke"},
		{method: "hello.garbage", err: ErrFailed, errText: `printed no JSON value on stdout: "hello, not JSON"`},
		{method: "hello.hang", timeout: 300 * time.Millisecond, err: ErrTimeout},
		{method: "hello.greet", err: ErrNotExported, noRun: true},
		{method: "nobody.greet", err: ErrNoSuchPlugin, noRun: true},
		{method: "broken.x", err: ErrNoSuchPlugin, noRun: true},
		{method: "hello", err: ErrNoSuchPlugin, noRun: true},
		{method: "counter.echo", params: `{"b":true}`, want: `{"b":true}`},
		{method: "counter.fail", err: ErrFailed, errText: "failing as asked"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			before := c.starts.Load()
			start := time.Now()
			got, err := h.Call(ctx, tt.method, json.RawMessage(tt.params), tt.timeout)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("got %s, %v; want an error wrapping %v containing %q", got, err, tt.err, tt.errText)
				}
			} else if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v; want %s", got, err, tt.want)
			}
			if tt.noRun && c.starts.Load() != before {
				t.Errorf("a refused call started a process")
			}
			if tt.timeout > 0 && time.Since(start) > 5*time.Second {
				t.Errorf("a timed-out call took %v", time.Since(start))
			}
		})
	}
}

// TestRPCMode: one process serves many calls and keeps its state; a crash,
// garbage or a hang kills it, and the next call starts it again.
func TestRPCMode(t *testing.T) {
	before := goleak.IgnoreCurrent()
	h, c := newTestHost(t)
	ctx := context.Background()
	call := func(method string, timeout time.Duration) (string, error) {
		got, err := h.Call(ctx, "counter."+method, nil, timeout)
		return string(got), err
	}
	started := c.starts.Load()
	for i := 1; i <= 3; i++ {
		if got, err := call("count", 0); err != nil || got != string(rune('0'+i)) {
			t.Fatalf("count %d: got %s, %v", i, got, err)
		}
	}
	if n := c.starts.Load() - started; n != 1 {
		t.Errorf("three calls started %d processes, want 1", n)
	}

	_, err := call("crash", 0)
	var ce *CallError
	if !errors.As(err, &ce) || ce.ExitCode == nil || *ce.ExitCode != 3 || !strings.Contains(ce.Stderr, "crashing as asked") {
		t.Fatalf("crash: got %v, want a CallError with code 3 and the stderr", err)
	}
	if got, err := call("count", 0); err != nil || got != "1" {
		t.Fatalf("count after a crash: got %s, %v; want 1 from a new process", got, err)
	}

	if _, err := call("garbage", 0); !errors.Is(err, ErrFailed) {
		t.Fatalf("garbage: got %v, want ErrFailed", err)
	}
	if got, err := call("count", 0); err != nil || got != "1" {
		t.Fatalf("count after garbage: got %s, %v; want 1 from a new process", got, err)
	}

	start := time.Now()
	if _, err := call("hang", 300*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("hang: got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hung call took %v", d)
	}
	if got, err := call("count", 0); err != nil || got != "1" {
		t.Fatalf("count after a hang: got %s, %v; want 1 from a new process", got, err)
	}
	if r := h.Running(); len(r) != 1 || r[0] != "counter" {
		t.Errorf("running: %v", r)
	}
	h.Close()
	goleak.VerifyNone(t, before) // Close waited for every plugin's goroutines
	if r := h.Running(); len(r) != 0 {
		t.Errorf("running after Close: %v", r)
	}
	if _, err := call("count", 0); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
}

// TestRPCConcurrent: calls share one rpc plugin at once, each getting its
// own answer.
func TestRPCConcurrent(t *testing.T) {
	h, c := newTestHost(t)
	const n = 16
	got := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.Call(context.Background(), "counter.count", nil, 0)
			if err != nil {
				t.Error(err)
			}
			got <- string(res)
		}()
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for g := range got {
		seen[g] = true
	}
	if len(seen) != n || c.starts.Load() != 1 {
		t.Errorf("%d concurrent calls: %d distinct answers from %d processes; want %d from 1", n, len(seen), c.starts.Load(), n)
	}
}
