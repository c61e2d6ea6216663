package main_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/rpc"
)

// These tests attack the real binary's attach modes (--tcp, --listen,
// berth connect): every refusal of issue 11, end to end.

// attached is a running `berth --tcp` or `berth --listen`.
type attached struct {
	t         *testing.T
	cmd       *exec.Cmd
	env       []string
	addr      string // host:port, or the socket path
	network   string
	tokenFile string // printed on stderr, if any
	waited    chan struct{}

	mu     sync.Mutex // guards stderr
	stderr bytes.Buffer
}

var (
	listeningRe = regexp.MustCompile(`berth: listening on (\S+)`)
	tokenRe     = regexp.MustCompile(`berth: token in (\S+) \(`)
)

// privateEnv is the environment for a berth whose token files stay in a
// runtime directory of the test's own, rt.
func privateEnv(t *testing.T) []string {
	env, _ := privateEnvDir(t)
	return env
}

func privateEnvDir(t *testing.T) (env []string, rt string) {
	rt = t.TempDir()
	return append(os.Environ(), "XDG_RUNTIME_DIR="+rt, "BERTH_TOKEN="), rt
}

// startAttached runs berth with args (which pick --tcp or --listen) and
// waits until it listens.
func startAttached(t *testing.T, env []string, args ...string) *attached {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &attached{t: t, cmd: cmd, env: env, waited: make(chan struct{})}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			t.Logf("berth: %s", line)
			a.mu.Lock()
			a.stderr.WriteString(line + "\n")
			if m := tokenRe.FindStringSubmatch(line); m != nil {
				a.tokenFile = m[1]
			}
			if m := listeningRe.FindStringSubmatch(line); m != nil {
				a.addr, a.network = m[1], "tcp"
				if p, ok := strings.CutPrefix(m[1], "unix:"); ok {
					a.addr, a.network = p, "unix"
				}
			}
			done := a.addr != "" // the token line, if any, came first
			a.mu.Unlock()
			if done {
				once.Do(func() { close(ready) })
			}
		}
		cmd.Wait()
		close(a.waited)
		once.Do(func() { close(ready) })
	}()
	t.Cleanup(a.stop)
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("berth did not start listening")
	}
	if a.addr == "" {
		t.Fatalf("berth exited without listening: %s", a.log())
	}
	return a
}

func (a *attached) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stderr.String()
}

func (a *attached) port() int {
	_, p, _ := net.SplitHostPort(a.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// stop ends berth with SIGTERM and waits.
func (a *attached) stop() {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.waited:
	case <-time.After(30 * time.Second):
		a.cmd.Process.Kill()
		<-a.waited
	}
}

// dial opens a raw connection to berth.
func (a *attached) dial() *rawBerth {
	a.t.Helper()
	c, err := net.DialTimeout(a.network, a.addr, 10*time.Second)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return &rawBerth{t: a.t, stdin: c, out: bufio.NewReader(c)}
}

// closed reports whether berth has hung up.
func (r *rawBerth) closed() bool {
	_, err := r.out.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func initializeBody(id int, token string) string {
	opts := ""
	if token != "" {
		opts = fmt.Sprintf(`,"initializationOptions":{"token":%q}`, token)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"initialize","params":{"processId":null%s}}`, id, opts)
}

// A --tcp address other machines or containers could reach is refused
// unless --tcp-insecure-listen asks for it; nothing listens, and no token
// file is written.
func TestAttachTCPNotLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.2:0", "example.com:0"} {
		env := privateEnv(t)
		cmd := exec.Command(berthBin, "--tcp", addr)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("--tcp %s: %v, want a failure\n%s", addr, err, out)
		}
		for _, want := range []string{"not a loopback address", "--tcp-insecure-listen"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("--tcp %s: the error doesn't say %q:\n%s", addr, want, out)
			}
		}
		if strings.Contains(string(out), "listening on") {
			t.Errorf("--tcp %s listened:\n%s", addr, out)
		}
	}
}

// The generated token: a file only the user can read, in a directory only
// the user can enter, named on stderr, never printed itself, gone when
// berth ends.
func TestAttachTokenFile(t *testing.T) {
	env, rt := privateEnvDir(t)
	a := startAttached(t, env, "--tcp", "127.0.0.1:0", "--trace")
	want := filepath.Join(rt, "berth", fmt.Sprintf("tcp-%d.token", a.port()))
	if a.tokenFile != want {
		t.Fatalf("token file %q, want %q", a.tokenFile, want)
	}
	for p, mode := range map[string]fs.FileMode{want: 0o600, filepath.Dir(want): 0o700} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", p, fi.Mode().Perm(), mode)
		}
	}
	token := readToken(t, want)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(token) {
		t.Errorf("token %q is not 32 random bytes in hex", token)
	}
	// The token works, and even --trace doesn't log it.
	r := a.dial()
	r.sendBody(initializeBody(1, token))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize with the token: %+v", *resp.Error)
	}
	r.sendBody(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`)
	r.recv()
	a.stop()
	if strings.Contains(a.log(), token) {
		t.Errorf("the token is in berth's log")
	}
	if !strings.Contains(a.log(), "[redacted]") {
		t.Errorf("--trace shows no redacted initialize")
	}
	if _, err := os.Stat(want); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the token file outlives berth: %v", err)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Without the right token, whatever comes first is answered with -32028
// and the connection is closed.
func TestAttachTCPRefusals(t *testing.T) {
	a := startAttached(t, privateEnv(t), "--tcp", "127.0.0.1:0")
	token := readToken(t, a.tokenFile)
	tests := []struct {
		name string
		body string
		id   string
	}{
		{"no token", initializeBody(1, ""), "1"},
		{"wrong token", initializeBody(2, token[:63]+"x"), "2"},
		{"a token with more after it", initializeBody(3, token+"0"), "3"},
		{"request before initialize", `{"jsonrpc":"2.0","id":4,"method":"berth/exec","params":{"workspace":"/tmp","argv":["id"]}}`, "4"},
		{"notification before initialize", `{"jsonrpc":"2.0","method":"exit"}`, "null"},
		{"garbage", `{"jsonrpc":`, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.dial()
			r.sendBody(tt.body)
			resp := r.recv()
			if resp.Error == nil || resp.Error.Code != rpc.CodeUnauthorized || string(resp.ID) != tt.id {
				t.Fatalf("got %+v (id %s), want %d", resp.Error, resp.ID, rpc.CodeUnauthorized)
			}
			if !r.closed() {
				t.Error("berth keeps the connection open")
			}
		})
	}
	// The refusals cost berth nothing: the right token still works.
	r := a.dial()
	r.sendBody(initializeBody(1, token))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize with the token: %+v", *resp.Error)
	}
}

// A token from BERTH_TOKEN or --tcp-token-file is used as given; no file
// is written. A token file others can read is refused.
func TestAttachSuppliedToken(t *testing.T) {
	const token = "supplied-token-for-the-test-0123"
	env := append(privateEnv(t), "BERTH_TOKEN="+token)
	a := startAttached(t, env, "--tcp", "127.0.0.1:0")
	if a.tokenFile != "" {
		t.Errorf("berth wrote a token file for a supplied token: %s", a.tokenFile)
	}
	r := a.dial()
	r.sendBody(initializeBody(1, token))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize with BERTH_TOKEN's token: %+v", *resp.Error)
	}

	file := filepath.Join(t.TempDir(), "token")
	os.WriteFile(file, []byte("file-token-for-the-test-012345\n"), 0o600)
	a = startAttached(t, privateEnv(t), "--tcp", "127.0.0.1:0", "--tcp-token-file", file)
	r = a.dial()
	r.sendBody(initializeBody(1, "file-token-for-the-test-012345"))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize with --tcp-token-file's token: %+v", *resp.Error)
	}

	os.Chmod(file, 0o644)
	cmd := exec.Command(berthBin, "--tcp", "127.0.0.1:0", "--tcp-token-file", file)
	cmd.Env = privateEnv(t)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "others may read it") {
		t.Errorf("a token file readable by others: %v\n%s", err, out)
	}
}

// A unix socket is 0600, needs no token for berth's own user, and is
// removed when berth ends.
func TestAttachUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berth.sock")
	a := startAttached(t, privateEnv(t), "--listen", "unix:"+sock)
	if a.addr != sock {
		t.Fatalf("listening on %q, want %q", a.addr, sock)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	r := a.dial()
	r.sendBody(initializeBody(1, ""))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize over the socket: %+v", *resp.Error)
	}
	a.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket outlives berth: %v", err)
	}

	// berth doesn't clobber what isn't a stale socket.
	file := filepath.Join(t.TempDir(), "precious")
	os.WriteFile(file, []byte("data"), 0o600)
	cmd := exec.Command(berthBin, "--listen", "unix:"+file)
	cmd.Env = privateEnv(t)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not a socket") {
		t.Errorf("--listen on a file: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(file); string(b) != "data" {
		t.Error("the file was replaced")
	}
}

// A process of another user is kept out of the unix socket: by its mode,
// and, with the mode loosened, by the peer-uid check.
func TestAttachUnixOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	dir, err := os.MkdirTemp("", "berth-attach-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	// A berth nobody may run, to act as nobody's client.
	bin := filepath.Join(dir, "berth")
	copyFile(t, berthBin, bin, 0o755)
	sock := filepath.Join(dir, "berth.sock")
	a := startAttached(t, privateEnv(t), "--listen", "unix:"+sock)

	asNobody := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "connect", "unix:"+sock)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
		cmd.Stdin = strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(initializeBody(1, "")), initializeBody(1, "")))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := asNobody()
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody through the 0600 socket: %v\n%s", err, out)
	}
	// Loosen the mode: the peer-uid check still refuses.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	out, err = asNobody()
	if !strings.Contains(out, strconv.Itoa(rpc.CodeUnauthorized)) || !strings.Contains(out, "peer uid 65534") || strings.Contains(out, "serverInfo") {
		t.Errorf("nobody through a 0666 socket: %v\n%s", err, out)
	}
	// Root, and berth's own user, still get in.
	r := a.dial()
	r.sendBody(initializeBody(1, ""))
	if resp := r.recv(); resp.Error != nil {
		t.Fatalf("initialize as berth's user: %+v", *resp.Error)
	}
}

func copyFile(t *testing.T, from, to string, mode fs.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Connections over --max-connections get one error frame and are closed
// at once; a freed slot admits the next.
func TestAttachConnectionCap(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	a := startAttached(t, privateEnv(t), "--listen", "unix:"+sock, "--max-connections", "2")
	first, second := a.dial(), a.dial()
	for i, r := range []*rawBerth{first, second} {
		r.sendBody(initializeBody(i+1, ""))
		if resp := r.recv(); resp.Error != nil {
			t.Fatalf("connection %d: %+v", i, *resp.Error)
		}
	}
	third := a.dial()
	resp := third.recv()
	if resp.Error == nil || resp.Error.Code != rpc.CodeRequestFailed || !strings.Contains(resp.Error.Message, "too many connections") {
		t.Fatalf("third connection: %+v, want %d", resp.Error, rpc.CodeRequestFailed)
	}
	if !third.closed() {
		t.Error("the third connection stays open")
	}
	first.stdin.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Until the slot frees, berth refuses and closes, perhaps before
		// the write: that is a retry too.
		r := a.dial()
		body := initializeBody(9, "")
		_, werr := fmt.Fprintf(r.stdin, "Content-Length: %d\r\n\r\n%s", len(body), body)
		if werr == nil {
			if resp := r.recv(); resp.Error == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A connection that says nothing is told why and closed after
// --init-timeout, on TCP and on the socket.
func TestAttachInitTimeout(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	for _, args := range [][]string{{"--tcp", "127.0.0.1:0"}, {"--listen", "unix:" + sock}} {
		a := startAttached(t, privateEnv(t), append(args, "--init-timeout", "500ms")...)
		r := a.dial()
		start := time.Now()
		resp := r.recv()
		if resp.Error == nil || resp.Error.Code != rpc.CodeServerNotInitialized {
			t.Fatalf("%v: %+v, want %d", args, resp.Error, rpc.CodeServerNotInitialized)
		}
		if !r.closed() {
			t.Errorf("%v: the idle connection stays open", args)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v: closed after %s", args, d)
		}
	}
}

// berth connect bridges an editor's stdio to a running berth: over TCP it
// finds the token in the default file and adds it to initialize.
func TestAttachConnect(t *testing.T) {
	env := privateEnv(t)
	sock := filepath.Join(t.TempDir(), "s")
	tcp := startAttached(t, env, "--tcp", "127.0.0.1:0")
	unix := startAttached(t, env, "--listen", "unix:"+sock)
	for _, addr := range []string{tcp.addr, "tcp:" + tcp.addr, "unix:" + unix.addr} {
		t.Run(addr, func(t *testing.T) {
			cmd := exec.Command(berthBin, "connect", addr)
			cmd.Env = env
			cmd.Stderr = &testWriter{t: t}
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			c := rpc.NewClient(context.Background(), pipes{stdout, stdin}, slog.New(slog.DiscardHandler), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var res rpc.InitializeResult
			if err := c.Call(ctx, "initialize", rpc.InitializeParams{}, &res); err != nil {
				t.Fatalf("initialize through berth connect: %v", err)
			}
			if res.ServerInfo.Name != "berth" || len(res.Capabilities.Berth.Methods) == 0 {
				t.Errorf("initialize result: %+v", res)
			}
			if err := c.Call(ctx, "shutdown", nil, nil); err != nil {
				t.Fatal(err)
			}
			c.Notify(ctx, "exit", nil)
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("berth connect: %v", err)
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("berth connect did not end with the connection")
			}
			c.Close()
		})
	}

	// Without the token file (another user's runtime dir, say), connect
	// says where it looked.
	cmd := exec.Command(berthBin, "connect", tcp.addr)
	cmd.Env = privateEnv(t)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not exist") || !strings.Contains(string(out), "--tcp-token-file") {
		t.Errorf("connect without a token: %v\n%s", err, out)
	}
	// With a wrong one, berth's refusal reaches the editor.
	cmd = exec.Command(berthBin, "connect", tcp.addr)
	cmd.Env = append(privateEnv(t), "BERTH_TOKEN=wrong-token-0000000000000")
	cmd.Stdin = strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(initializeBody(1, "")), initializeBody(1, "")))
	out, _ = cmd.CombinedOutput()
	if !strings.Contains(string(out), strconv.Itoa(rpc.CodeUnauthorized)) {
		t.Errorf("connect with a wrong token:\n%s", out)
	}
}

// A process in a Docker container can't reach a loopback berth through
// any of the host's addresses, the bridge's gateway above all. With
// --tcp-insecure-listen it reaches berth but, without the token, is
// refused.
func TestAttachFromContainer(t *testing.T) {
	needBackend(t, docker.Name)
	var hostIPs []string
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			hostIPs = append(hostIPs, ipn.IP.String())
		}
	}
	// Each target is tried with a frame; nc prints what berth answers.
	probe := func(t *testing.T, port int, body string) string {
		t.Helper()
		frame := fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
		script := `gw=$(ip route | awk '/^default/{print $3}')
for ip in $gw ` + strings.Join(hostIPs, " ") + `; do
  echo "== $ip"
  printf '%s' "$FRAME" | nc -w 3 "$ip" ` + strconv.Itoa(port) + ` 2>&1
  echo "== status $?"
done`
		name := fmt.Sprintf("berth-attach-probe-%d", time.Now().UnixNano())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
		out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--name", name, "--label", backendtest.LabelTest+"=attach",
			"-e", "FRAME="+frame, backendtest.Image(), "sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("docker run: %v\n%s", err, out)
		}
		t.Logf("from the container:\n%s", out)
		return string(out)
	}

	t.Run("loopback", func(t *testing.T) {
		a := startAttached(t, privateEnv(t), "--tcp", "127.0.0.1:0")
		token := readToken(t, a.tokenFile)
		out := probe(t, a.port(), initializeBody(1, token))
		tried := strings.Count(out, "== status ")
		if tried < 1+len(hostIPs) {
			t.Fatalf("the container tried %d addresses, want the gateway and %d more:\n%s", tried, len(hostIPs), out)
		}
		if strings.Contains(out, "jsonrpc") || strings.Count(out, "== status 1") != tried {
			t.Errorf("a container reached berth on loopback:\n%s", out)
		}
	})
	t.Run("insecure", func(t *testing.T) {
		a := startAttached(t, privateEnv(t), "--tcp", "0.0.0.0:0", "--tcp-insecure-listen")
		token := readToken(t, a.tokenFile)
		for _, body := range []string{initializeBody(1, ""), initializeBody(1, "guessed-token-0000000000000000"),
			`{"jsonrpc":"2.0","id":1,"method":"berth/list","params":{}}`} {
			out := probe(t, a.port(), body)
			if !strings.Contains(out, `"code":-32028`) {
				t.Errorf("the container got no -32028 for %s:\n%s", body, out)
			}
			if strings.Contains(out, "serverInfo") || strings.Contains(out, token) {
				t.Errorf("the container got in:\n%s", out)
			}
		}
	})
}
