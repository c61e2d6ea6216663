package attach

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/backends/memory"
	"github.com/berthdev/berth/rpc"
	"github.com/berthdev/berth/session"
)

var discard = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LocalHost": true,
		"::ffff:127.0.0.1": true,
		"":                 false, "0.0.0.0": false, "::": false, "192.0.2.2": false, "172.17.0.1": false,
		"10.0.0.1": false, "example.com": false, "localhost.example.com": false, "128.0.0.1": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCheckTCP(t *testing.T) {
	tests := []struct {
		addr     string
		insecure bool
		want     error // nil, ErrNotLoopback, or errAny
	}{
		{"127.0.0.1:7420", false, nil},
		{"127.0.0.1:0", false, nil},
		{"[::1]:7420", false, nil},
		{"localhost:7420", false, nil},
		{"0.0.0.0:7420", false, ErrNotLoopback},
		{":7420", false, ErrNotLoopback},
		{"[::]:7420", false, ErrNotLoopback},
		{"192.0.2.2:7420", false, ErrNotLoopback},
		{"myhost:7420", false, ErrNotLoopback},
		{"0.0.0.0:7420", true, nil},
		{"192.0.2.2:7420", true, nil},
		{"127.0.0.1", false, errAny},
		{"127.0.0.1:http", false, errAny},
		{"127.0.0.1:70000", true, errAny},
	}
	for _, tt := range tests {
		err := CheckTCP(tt.addr, tt.insecure)
		switch {
		case tt.want == nil && err != nil, tt.want != nil && err == nil,
			tt.want == ErrNotLoopback && !errors.Is(err, ErrNotLoopback):
			t.Errorf("CheckTCP(%q, %v) = %v, want %v", tt.addr, tt.insecure, err, tt.want)
		}
	}
	err := CheckTCP("0.0.0.0:1", false)
	if !strings.Contains(err.Error(), "--tcp-insecure-listen") {
		t.Errorf("the error doesn't say how to listen anyway: %v", err)
	}
}

var errAny = errors.New("any error")

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want Target
		bad  bool
	}{
		{in: "unix:/run/b.sock", want: Target{Network: "unix", Address: "/run/b.sock"}},
		{in: "unix:rel.sock", want: Target{Network: "unix", Address: "rel.sock"}},
		{in: "tcp:127.0.0.1:7420", want: Target{Network: "tcp", Address: "127.0.0.1:7420", Port: 7420}},
		{in: "tcp://127.0.0.1:7420", want: Target{Network: "tcp", Address: "127.0.0.1:7420", Port: 7420}},
		{in: "localhost:9", want: Target{Network: "tcp", Address: "localhost:9", Port: 9}},
		{in: "[::1]:9", want: Target{Network: "tcp", Address: "[::1]:9", Port: 9}},
		{in: ":9", want: Target{Network: "tcp", Address: "127.0.0.1:9", Port: 9}},
		{in: "unix:", bad: true},
		{in: "7420", bad: true},
		{in: "h:0", bad: true},
		{in: "h:x", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v (bad %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseListen(t *testing.T) {
	if p, err := ParseListen("unix:/tmp/x.sock"); err != nil || p != "/tmp/x.sock" {
		t.Errorf("ParseListen(unix:/tmp/x.sock) = %q, %v", p, err)
	}
	for _, v := range []string{"", "unix:", "/tmp/x.sock", "tcp:127.0.0.1:1"} {
		if _, err := ParseListen(v); err == nil {
			t.Errorf("ParseListen(%q) succeeded", v)
		}
	}
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The token file lives in $XDG_RUNTIME_DIR/berth, else in a private
// directory under the user's cache.
func TestTokenPath(t *testing.T) {
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	if p, err := TokenPath(7420); err != nil || p != filepath.Join(rt, "berth", "tcp-7420.token") {
		t.Errorf("TokenPath = %q, %v", p, err)
	}
	cache := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache) // macOS's cache lives under it
	p, err := TokenPath(1)
	if err != nil || !strings.HasPrefix(p, cache) || !strings.HasSuffix(p, filepath.Join("berth", "run", "tcp-1.token")) {
		t.Errorf("TokenPath without XDG_RUNTIME_DIR = %q, %v", p, err)
	}
	if err := writeTokenFile(p, "0123456789abcdef0123"); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, filepath.Dir(p)); m != 0o700 {
		t.Errorf("token directory mode %04o, want 0700", m)
	}
}

func TestTokenFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "berth")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tcp-1.token")
	if err := os.WriteFile(p, []byte("stale, from a berth killed with SIGKILL"), 0o644); err != nil {
		t.Fatal(err)
	}
	token, err := NewToken()
	if err != nil || len(token) != 64 {
		t.Fatalf("NewToken = %q, %v", token, err)
	}
	if other, _ := NewToken(); other == token {
		t.Fatal("NewToken repeats itself")
	}
	if err := writeTokenFile(p, token); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, p); m != 0o600 {
		t.Errorf("token file mode %04o, want 0600", m)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("a loose token directory is left at %04o, want 0700", m)
	}
	if got, err := ReadTokenFile(p); err != nil || got != token {
		t.Errorf("ReadTokenFile = %q, %v", got, err)
	}
	removeTokenFile(p, "another berth's token")
	if _, err := os.Stat(p); err != nil {
		t.Error("removeTokenFile removed a file with another token")
	}
	removeTokenFile(p, token)
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("removeTokenFile left the file: %v", err)
	}

	// What ReadTokenFile refuses.
	write := func(name, body string, perm fs.FileMode) string {
		q := filepath.Join(dir, name)
		if err := os.WriteFile(q, []byte(body), perm); err != nil {
			t.Fatal(err)
		}
		os.Chmod(q, perm)
		return q
	}
	link := filepath.Join(dir, "link")
	os.Symlink(write("target", token, 0o600), link)
	for name, q := range map[string]string{
		"readable by others": write("loose", token, 0o644),
		"empty":              write("empty", "\n", 0o600),
		"short":              write("short", "abc\n", 0o600),
		"huge":               write("huge", strings.Repeat("a", 5000), 0o600),
		"a symlink":          link,
		"a directory":        t.TempDir(),
		"missing":            filepath.Join(dir, "nope"),
	} {
		if got, err := ReadTokenFile(q); err == nil {
			t.Errorf("%s: ReadTokenFile = %q, want an error", name, got)
		}
	}
	if got, err := ReadTokenFile(write("spaces", "  "+token+"\n\n", 0o600)); err != nil || got != token {
		t.Errorf("ReadTokenFile trims: %q, %v", got, err)
	}
}

func TestPrivateDirRefuses(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if err := privateDir(f); err == nil {
		t.Error("privateDir took a file")
	}
	target := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(target, link)
	if err := privateDir(link); err == nil {
		t.Error("privateDir took a symlink")
	}
}

// connect's token: --tcp-token-file, else BERTH_TOKEN, else the default
// file for the port.
func TestResolveToken(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	def, _ := TokenPath(9)
	if err := writeTokenFile(def, "default-token-000000"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte("file-token-0000000000\n"), 0o600)
	tests := []struct {
		file, env string
		port      int
		want      string
		errWant   string
	}{
		{file: file, env: "env-token-000000000000", port: 9, want: "file-token-0000000000"},
		{env: "env-token-000000000000", port: 9, want: "env-token-000000000000"},
		{port: 9, want: "default-token-000000"},
		{port: 10, errWant: "tcp-10.token does not exist"},
		{env: "short", port: 9, errWant: "at least 16"},
	}
	for _, tt := range tests {
		got, err := ResolveToken(tt.file, tt.env, tt.port)
		if got != tt.want || (tt.errWant == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.errWant)) {
			t.Errorf("ResolveToken(%q, %q, %d) = %q, %v; want %q, %q", tt.file, tt.env, tt.port, got, err, tt.want, tt.errWant)
		}
	}
}

func TestAdmitUID(t *testing.T) {
	for _, tt := range []struct {
		peer, self int
		ok         bool
	}{
		{1000, 1000, true}, {0, 1000, true}, {0, 0, true},
		{1001, 1000, false}, {65534, 0, false}, {1000, 0, false},
	} {
		err := admitUID(tt.peer, tt.self)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, rpc.ErrUnauthorized)) {
			t.Errorf("admitUID(%d, %d) = %v, want ok %v", tt.peer, tt.self, err, tt.ok)
		}
	}
}

func TestPeerUID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, conn := range []net.Conn{sc, c} {
		if uid, err := PeerUID(conn.(*net.UnixConn)); err != nil || uid != os.Geteuid() {
			t.Errorf("PeerUID = %d, %v; want %d", uid, err, os.Geteuid())
		}
	}
	if err := checkPeer(sc); err != nil {
		t.Errorf("checkPeer refuses berth's own user: %v", err)
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.sock")
	var notice bytes.Buffer
	l, err := Listen(Options{Unix: path, Log: discard, Notice: &notice})
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("socket mode %04o, want 0600", m)
	}
	if !strings.Contains(notice.String(), "listening on unix:"+path) {
		t.Errorf("notice: %q", notice.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("Listen left more than the socket: %v", entries)
	}
	// A second berth on the same path is refused while the first serves.
	if _, err := Listen(Options{Unix: path, Log: discard, Notice: io.Discard}); !errors.Is(err, ErrSocketPath) {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	l.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the socket: %v", err)
	}

	// A stale socket is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l, err = Listen(Options{Unix: path, Log: discard, Notice: io.Discard})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()

	// Anything else is left alone.
	for name, make := range map[string]func(string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("precious"), 0o600) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o700) },
		"symlink": func(p string) error { return os.Symlink("/etc/passwd", p) },
	} {
		p := filepath.Join(dir, name)
		if err := make(p); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(Options{Unix: p, Log: discard, Notice: io.Discard}); !errors.Is(err, ErrSocketPath) {
			t.Errorf("Listen over a %s: %v", name, err)
		}
		if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() == fs.ModeSocket {
			t.Errorf("the %s was replaced", name)
		}
	}
}

func TestListenTCP(t *testing.T) {
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	var notice bytes.Buffer
	l, err := Listen(Options{TCP: "127.0.0.1:0", Log: discard, Notice: &notice})
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	want := filepath.Join(rt, "berth", fmt.Sprintf("tcp-%d.token", port))
	if l.TokenFile() != want || !strings.Contains(notice.String(), "token in "+want) {
		t.Errorf("token file %q, notice %q; want %q", l.TokenFile(), notice.String(), want)
	}
	if m := mode(t, want); m != 0o600 {
		t.Errorf("token file mode %04o", m)
	}
	if strings.Contains(notice.String(), l.token) {
		t.Error("the token itself is printed")
	}
	l.Close()
	if _, err := os.Stat(want); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Close left the token file: %v", err)
	}

	// A supplied token writes no file.
	l, err = Listen(Options{TCP: "127.0.0.1:0", Token: "supplied-token-0000000", Log: discard, Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if l.TokenFile() != "" || l.token != "supplied-token-0000000" {
		t.Errorf("token file %q, token %q", l.TokenFile(), l.token)
	}
	l.Close()

	for _, o := range []Options{
		{TCP: "0.0.0.0:0"},
		{TCP: "127.0.0.1:0", Token: "short"},
		{TCP: "127.0.0.1:0", TokenFile: filepath.Join(rt, "missing")},
		{},
		{TCP: "127.0.0.1:0", Unix: "/x"},
	} {
		o.Log, o.Notice = discard, io.Discard
		if l, err := Listen(o); err == nil {
			l.Close()
			t.Errorf("Listen(%+v) succeeded", o)
		}
	}
}

// blockingServer holds each connection until its client hangs up.
type blockingServer struct {
	mu   sync.Mutex
	seen []rpc.ConnOptions
}

func (s *blockingServer) ServeConnWith(ctx context.Context, rwc io.ReadWriteCloser, opts rpc.ConnOptions) error {
	s.mu.Lock()
	s.seen = append(s.seen, opts)
	s.mu.Unlock()
	_, err := io.Copy(io.Discard, rwc)
	return err
}

// serve runs l.Serve until the test ends.
func serve(t *testing.T, l *Listener, srv Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx, srv) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		l.Close()
	})
}

// readError reads one frame from c and returns its error code, or 0.
func readError(t *testing.T, c net.Conn) int64 {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a frame: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Content-Length: "); ok {
			n, _ = strconv.Atoi(v)
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	var m struct {
		Error *struct{ Code int64 }
	}
	json.Unmarshal(body, &m)
	if m.Error == nil {
		return 0
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Errorf("the connection stays open after the error: %v", err)
	}
	return m.Error.Code
}

// Connections over the cap get one error frame and are closed; a freed
// slot admits the next.
func TestConnectionCap(t *testing.T) {
	for _, unix := range []bool{false, true} {
		t.Run(fmt.Sprint("unix=", unix), func(t *testing.T) {
			o := Options{TCP: "127.0.0.1:0", Token: "cap-token-0000000000", MaxConns: 2, Log: discard, Notice: io.Discard}
			if unix {
				o = Options{Unix: filepath.Join(t.TempDir(), "s"), MaxConns: 2, Log: discard, Notice: io.Discard}
			}
			l, err := Listen(o)
			if err != nil {
				t.Fatal(err)
			}
			srv := &blockingServer{}
			serve(t, l, srv)
			network := l.Addr().Network()
			dial := func() net.Conn {
				c, err := net.Dial(network, l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			a, _ := dial(), dial()
			waitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.seen) == 2 })
			if code := readError(t, dial()); code != rpc.CodeRequestFailed {
				t.Errorf("third connection: code %d, want %d", code, rpc.CodeRequestFailed)
			}
			a.Close()
			time.Sleep(100 * time.Millisecond)
			dial()
			waitFor(t, func() bool { srv.mu.Lock(); defer srv.mu.Unlock(); return len(srv.seen) == 3 })
			srv.mu.Lock()
			defer srv.mu.Unlock()
			want := rpc.ConnOptions{Token: o.Token, InitTimeout: DefaultInitTimeout}
			if diff := cmp.Diff(want, srv.seen[0]); diff != "" {
				t.Errorf("connection options (-want +got):\n%s", diff)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWithToken(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no options", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"rootUri":"file:///w"}}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"token":"T"},"rootUri":"file:///w"}}`},
		{"options kept", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"initializationOptions":{"image":"x","token":"old"}}}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"image":"x","token":"T"}}}`},
		{"null options", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"initializationOptions":null}}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"token":"T"}}}`},
		{"options not an object", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"initializationOptions":"x"}}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"token":"T"}}}`},
		{"no params", `{"jsonrpc":"2.0","id":1,"method":"initialize"}`,
			`{"id":1,"jsonrpc":"2.0","method":"initialize","params":{"initializationOptions":{"token":"T"}}}`},
		{"params array", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":[]}`, ""},
		{"another method", `{"jsonrpc":"2.0","id":1,"method":"shutdown"}`, ""},
		{"not JSON", `{"jsonrpc"`, ""},
	}
	for _, tt := range tests {
		got, ok := withToken([]byte(tt.in), "T")
		if string(got) != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: withToken = %s, %v; want %s", tt.name, got, ok, tt.want)
		}
	}
}

// newRPC is a real berth server on an in-memory backend.
func newRPC(t *testing.T) *rpc.Server {
	mgr := session.NewManager(memory.New(memory.Options{Local: true}), discard, "img:1")
	t.Cleanup(mgr.Close)
	return rpc.NewServer(rpc.Options{Managers: map[string]*session.Manager{"memory": mgr}, Default: "memory", Logger: discard, Version: "t"})
}

// frame frames body.
func frame(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }

// berth connect adds the token to initialize and splices the rest; over a
// unix socket it needs none.
func TestConnect(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	srv := newRPC(t)
	tcp, err := Listen(Options{TCP: "127.0.0.1:0", Log: discard, Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, tcp, srv)
	unix, err := Listen(Options{Unix: filepath.Join(t.TempDir(), "s"), Log: discard, Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, unix, srv)
	for _, tt := range []struct {
		addr, env string
		ok        bool
	}{
		{"tcp:" + tcp.Addr().String(), "", true},
		{tcp.Addr().String(), "", true},
		{"unix:" + unix.sockPath, "", true},
		{tcp.Addr().String(), "wrong-token-000000000", false},
	} {
		t.Run(tt.addr+tt.env, func(t *testing.T) {
			in := frame(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null}}`) +
				frame(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`) +
				frame(`{"jsonrpc":"2.0","method":"exit"}`)
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Connect(ctx, ConnectOptions{Addr: tt.addr, Token: tt.env}, strings.NewReader(in), &out)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			got := out.String()
			initOK := strings.Contains(got, `"id":1,"result":{"serverInfo"`)
			if initOK != tt.ok || (tt.ok && !strings.Contains(got, `"id":2,"result":null`)) {
				t.Errorf("berth answered:\n%s", got)
			}
			if !tt.ok && !strings.Contains(got, strconv.Itoa(rpc.CodeUnauthorized)) {
				t.Errorf("a wrong token got no %d:\n%s", rpc.CodeUnauthorized, got)
			}
		})
	}
	if err := Connect(context.Background(), ConnectOptions{Addr: "127.0.0.1:1"}, strings.NewReader(""), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "tcp-1.token does not exist") {
		t.Errorf("Connect without a token file: %v", err)
	}
}
