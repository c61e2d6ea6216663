package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/berthdev/berth/pathmap"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// mixed has runes of every UTF-8 length.
const mixed = "a é € 😀 中文 z\u00e9\u0301 🏳️‍🌈!"

func TestCompletePrefix(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"empty", "", 0},
		{"ascii", "abc", 3},
		{"complete 2-byte", "é", 2},
		{"complete 4-byte", "😀", 4},
		{"cut 2-byte", "a\xc3", 1},
		{"cut 3-byte after 1", "a\xe2", 1},
		{"cut 3-byte after 2", "a\xe2\x82", 1},
		{"complete 3-byte", "a\xe2\x82\xac", 4},
		{"cut 4-byte after 3", "\xf0\x9f\x98", 0},
		{"invalid byte is not held", "a\xff", 2},
		{"stray continuations are not held", "a\x80\x80", 3},
		{"more continuations than a rune has", "\xe2\x82\xac\x80\x80\x80\x80", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := completePrefix([]byte(tt.in)); got != tt.want {
				t.Errorf("completePrefix(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompletePrefixEveryCut(t *testing.T) {
	for i := 0; i <= len(mixed); i++ {
		p := []byte(mixed[:i])
		n := completePrefix(p)
		if n > i || i-n >= utf8.UTFMax {
			t.Errorf("cut %d: completePrefix = %d, want at most %d and no more than %d held", i, n, i, utf8.UTFMax-1)
		}
		if !utf8.Valid(p[:n]) {
			t.Errorf("cut %d: prefix %q is not valid UTF-8", i, p[:n])
		}
		if n < i && utf8.FullRune(p[n:]) {
			t.Errorf("cut %d: held back %q, a complete rune", i, p[n:])
		}
	}
}

// emits collects what a textWriter emits.
type emits []string

func (e *emits) emit(p []byte) { *e = append(*e, string(p)) }

func TestTextWriterSplits(t *testing.T) {
	check := func(t *testing.T, what string, got emits, want string) {
		t.Helper()
		for _, s := range got {
			if !utf8.ValidString(s) {
				t.Errorf("%s: emitted %q, a broken rune", what, s)
			}
			if s == "" {
				t.Errorf("%s: emitted an empty string", what)
			}
		}
		if s := strings.Join(got, ""); s != want {
			t.Errorf("%s: emitted %q in all, want %q", what, s, want)
		}
	}
	// Every two-way split.
	for i := 0; i <= len(mixed); i++ {
		var got emits
		tw := &textWriter{emit: got.emit}
		for _, part := range []string{mixed[:i], mixed[i:]} {
			if n, err := tw.Write([]byte(part)); n != len(part) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", part, n, err)
			}
		}
		tw.flush()
		check(t, fmt.Sprintf("split at %d", i), got, mixed)
	}
	// Every three-way split.
	for i := 0; i <= len(mixed); i++ {
		for j := i; j <= len(mixed); j++ {
			var got emits
			tw := &textWriter{emit: got.emit}
			for _, part := range []string{mixed[:i], mixed[i:j], mixed[j:]} {
				tw.Write([]byte(part))
			}
			tw.flush()
			check(t, fmt.Sprintf("split at %d and %d", i, j), got, mixed)
		}
	}
	// A byte at a time.
	var got emits
	tw := &textWriter{emit: got.emit}
	for i := 0; i < len(mixed); i++ {
		tw.Write([]byte{mixed[i]})
	}
	tw.flush()
	check(t, "byte at a time", got, mixed)
}

func TestTextWriterInvalidInput(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   emits
	}{
		// A sequence that never completes is let out by the next write,
		// or by flush at the end: nothing is lost.
		{"truncated rune then ascii", []string{"a\xe2\x82", "b"}, emits{"a", "\xe2\x82b"}},
		{"truncated rune at the end", []string{"a\xe2\x82"}, emits{"a", "\xe2\x82"}},
		{"invalid byte passes", []string{"\xff", "x"}, emits{"\xff", "x"}},
		{"completed by the next write", []string{"\xf0\x9f", "\x98", "\x80!"}, emits{"😀!"}},
		{"empty write emits nothing", []string{"", "a", ""}, emits{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got emits
			tw := &textWriter{emit: got.emit}
			for _, w := range tt.writes {
				tw.Write([]byte(w))
			}
			tw.flush()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("emitted (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamWriterMapsPathsAcrossSplits(t *testing.T) {
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/u/proj", Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	in := "é /workspaces/proj/main.go:3: 😀 file:///workspaces/proj/a%20b\n"
	want := "é /home/u/proj/main.go:3: 😀 file:///home/u/proj/a%20b\n"
	for _, mapPaths := range []bool{false, true} {
		for i := 0; i <= len(in); i++ {
			var got emits
			sw := newStreamWriter(m, mapPaths, got.emit)
			sw.Write([]byte(in[:i]))
			sw.Write([]byte(in[i:]))
			sw.Flush()
			w := in
			if mapPaths {
				w = want
			}
			for _, s := range got {
				if !utf8.ValidString(s) {
					t.Errorf("mapPaths %v, split at %d: emitted %q, a broken rune", mapPaths, i, s)
				}
			}
			if s := strings.Join(got, ""); s != w {
				t.Errorf("mapPaths %v, split at %d: got %q, want %q", mapPaths, i, s, w)
			}
		}
	}
}

func TestStdinQueue(t *testing.T) {
	type write struct {
		text string
		eof  bool
	}
	tests := []struct {
		name    string
		writes  []write
		bufSize int
		want    string
	}{
		{"in order then EOF", []write{{"ab", false}, {"cd", false}, {"", true}}, 64, "abcd"},
		{"text with the EOF", []write{{"one\n", false}, {"two\n", true}}, 64, "one\ntwo\n"},
		{"small reads", []write{{"hello, ", false}, {"world", true}}, 3, "hello, world"},
		{"EOF only", []write{{"", true}}, 64, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newStdinQueue()
			for _, w := range tt.writes {
				if err := q.write(w.text, w.eof); err != nil {
					t.Fatalf("write(%q, %v) = %v", w.text, w.eof, err)
				}
			}
			var got []byte
			buf := make([]byte, tt.bufSize)
			for {
				n, err := q.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
			}
			if string(got) != tt.want {
				t.Errorf("read %q, want %q", got, tt.want)
			}
			if err := q.write("more", false); !errors.Is(err, ErrStdinClosed) {
				t.Errorf("write after EOF = %v, want ErrStdinClosed", err)
			}
		})
	}
}

func TestStdinQueueWritesNeverBlock(t *testing.T) {
	q := newStdinQueue()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Nobody reads: 16 MiB must still queue at once.
		chunk := strings.Repeat("x", 1<<20)
		for range 16 {
			if err := q.write(chunk, false); err != nil {
				t.Errorf("write: %v", err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked with no reader")
	}
	q.Close()
}

func TestStdinQueueReadWaits(t *testing.T) {
	tests := []struct {
		name    string
		unblock func(q *stdinQueue)
		wantN   int
		wantErr error
	}{
		{"by a write", func(q *stdinQueue) { q.write("hi", false) }, 2, nil},
		{"by EOF", func(q *stdinQueue) { q.write("", true) }, 0, io.EOF},
		{"by Close", func(q *stdinQueue) { q.Close() }, 0, io.ErrClosedPipe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newStdinQueue()
			type res struct {
				n   int
				err error
			}
			got := make(chan res, 1)
			go func() {
				n, err := q.Read(make([]byte, 16))
				got <- res{n, err}
			}()
			select {
			case r := <-got:
				t.Fatalf("Read on an empty queue returned %d, %v at once", r.n, r.err)
			case <-time.After(20 * time.Millisecond):
			}
			tt.unblock(q)
			select {
			case r := <-got:
				if r.n != tt.wantN || r.err != tt.wantErr {
					t.Errorf("Read = %d, %v; want %d, %v", r.n, r.err, tt.wantN, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Read still blocked")
			}
			q.Close()
		})
	}
}

func TestStdinQueueClose(t *testing.T) {
	q := newStdinQueue()
	if err := q.write("unread", false); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	// The process is gone: queued text is dropped, not read.
	if n, err := q.Read(make([]byte, 16)); n != 0 || err != io.ErrClosedPipe {
		t.Errorf("Read after Close = %d, %v; want 0, %v", n, err, io.ErrClosedPipe)
	}
	for _, eof := range []bool{false, true} {
		if err := q.write("late", eof); !errors.Is(err, ErrStdinClosed) {
			t.Errorf("write(eof %v) after Close = %v, want ErrStdinClosed", eof, err)
		}
	}
}

// dockerName is what Docker accepts as a container name.
var dockerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func TestInstanceName(t *testing.T) {
	hash := func(ws string) string {
		sum := sha256.Sum256([]byte(ws))
		return hex.EncodeToString(sum[:])[:12]
	}
	tests := []struct {
		ws       string
		wantBase string
	}{
		{"/home/u/proj", "proj"},
		{"/home/u/My Project", "my-project"},
		{"/home/u/my_proj.v2", "my_proj.v2"},
		{"/home/u/--weird--", "weird"},
		{"/home/u/.dotted", "dotted"},
		{"/home/u/a  b\t\tc", "a-b-c"},
		{"/home/u/проект", "root"},
		{"/home/u/café", "caf"},
		{"/", "root"},
		{"/home/u/" + strings.Repeat("abcdefghij", 5), strings.Repeat("abcdefghij", 3)},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.ws, func(t *testing.T) {
			got := InstanceName(tt.ws)
			want := "berth-" + tt.wantBase + "-" + hash(tt.ws)
			if got != want {
				t.Errorf("InstanceName(%q) = %q, want %q", tt.ws, got, want)
			}
			if again := InstanceName(tt.ws); again != got {
				t.Errorf("InstanceName(%q) is %q, then %q", tt.ws, got, again)
			}
			if !dockerName.MatchString(got) || len(got) > 63 {
				t.Errorf("InstanceName(%q) = %q, not a valid Docker name of at most 63 bytes", tt.ws, got)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("InstanceName(%q) = InstanceName(%q) = %q", tt.ws, other, got)
			}
			seen[got] = tt.ws
		})
	}
	// Same base name, different paths: different instances.
	a, b := InstanceName("/a/proj"), InstanceName("/b/proj")
	if a == b || !strings.HasPrefix(a, "berth-proj-") || !strings.HasPrefix(b, "berth-proj-") {
		t.Errorf("InstanceName of /a/proj and /b/proj = %q and %q, want two berth-proj-<hash> names", a, b)
	}
}

func TestWorkdir(t *testing.T) {
	tests := []struct{ ws, want string }{
		{"/home/u/proj", "/workspaces/proj"},
		{"/home/u/My Project", "/workspaces/My Project"},
		{"/home/u/proj/", "/workspaces/proj"},
		{"/", "/workspaces"},
	}
	for _, tt := range tests {
		if got := Workdir(tt.ws); got != tt.want {
			t.Errorf("Workdir(%q) = %q, want %q", tt.ws, got, tt.want)
		}
	}
}

func TestResolveWorkspace(t *testing.T) {
	// The temp dir itself may sit behind a symlink; resolved names are
	// canonical.
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	odd := filepath.Join(root, "a b%c#d")
	plain := filepath.Join(root, "plain")
	file := filepath.Join(root, "file.txt")
	link := filepath.Join(root, "link")
	for _, d := range []string{odd, plain} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, filepath.Join(root, "filelink")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{"absolute path", plain, plain, nil},
		{"uncleaned path", root + "/./plain/../plain/", plain, nil},
		{"odd characters", odd, odd, nil},
		{"file URI", "file://" + plain, plain, nil},
		{"file URI, percent-encoded", "file://" + filepath.ToSlash(root) + "/a%20b%25c%23d", odd, nil},
		{"file URI, localhost", "file://localhost" + plain, plain, nil},
		{"FILE URI, upper case scheme", "FILE://" + plain, plain, nil},
		{"symlink resolved", link, plain, nil},
		{"symlink via URI", "file://" + link, plain, nil},
		{"empty", "", "", ErrNoWorkspace},
		{"relative", "plain", "", ErrBadWorkspace},
		{"dot relative", "./plain", "", ErrBadWorkspace},
		{"missing", filepath.Join(root, "missing"), "", ErrBadWorkspace},
		{"a file", file, "", ErrBadWorkspace},
		{"symlink to a file", filepath.Join(root, "filelink"), "", ErrBadWorkspace},
		{"remote file URI", "file://otherhost" + plain, "", ErrBadWorkspace},
		{"opaque file URI", "file:plain", "", ErrBadWorkspace},
		{"other scheme", "http://host" + plain, "", ErrBadWorkspace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveWorkspace(tt.in)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("ResolveWorkspace(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ResolveWorkspace(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestContainerCwd(t *testing.T) {
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{
		{Host: "/home/u/proj", Container: "/workspaces/proj"},
		{Host: "/home/u/cache", Container: "/cache"},
	})
	if err != nil {
		t.Fatal(err)
	}
	const wd = "/workspaces/proj"
	tests := []struct {
		name, cwd, want string
	}{
		{"empty is the workdir", "", wd},
		{"host path of the workspace", "/home/u/proj", wd},
		{"host path under the workspace", "/home/u/proj/src/pkg", wd + "/src/pkg"},
		{"host path under another mount", "/home/u/cache/go", "/cache/go"},
		{"file URI", "file:///home/u/proj/src", wd + "/src"},
		{"file URI, percent-encoded", "file:///home/u/proj/my%20dir%23x", wd + "/my dir#x"},
		{"container absolute path", "/etc", "/etc"},
		{"container path under the workdir", "/workspaces/proj/src", "/workspaces/proj/src"},
		{"relative joins the workdir", "src/pkg", wd + "/src/pkg"},
		{"relative is cleaned", "./src/../lib", wd + "/lib"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := containerCwd(m, tt.cwd, wd); got != tt.want {
				t.Errorf("containerCwd(%q) = %q, want %q", tt.cwd, got, tt.want)
			}
		})
	}
}

// TestContainerCwdUnmappedURI: a file URI that no mount covers is a
// container URI, and its path is the directory.
func TestContainerCwdUnmappedURI(t *testing.T) {
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/u/proj", Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := containerCwd(m, "file:///srv/app", "/workspaces/proj"), "/srv/app"; got != want {
		t.Errorf("containerCwd(%q) = %q, want %q", "file:///srv/app", got, want)
	}
}

func TestEnvList(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nil", nil, []string{}},
		{"sorted by key", map[string]string{"B": "2", "A": "1", "C": "3", "AA": "0"}, []string{"A=1", "AA=0", "B=2", "C=3"}},
		{"values kept whole", map[string]string{"X": "a=b c", "EMPTY": ""}, []string{"EMPTY=", "X=a=b c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Maps iterate at random: ask a few times.
			for range 5 {
				if diff := cmp.Diff(tt.want, envList(tt.env)); diff != "" {
					t.Fatalf("envList (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestCapped(t *testing.T) {
	fill := strings.Repeat("a", MaxRunOutput-1) // one byte of room left
	tests := []struct {
		name          string
		adds          []string
		wantLen       int
		wantTail      string
		wantTruncated bool
	}{
		{"small", []string{"hello", " world"}, 11, "hello world", false},
		{"exactly full", []string{fill, "b"}, MaxRunOutput, "ab", false},
		{"over by ascii", []string{fill, "bc"}, MaxRunOutput, "ab", true},
		{"2-byte rune straddles the cap", []string{fill, "é"}, MaxRunOutput - 1, "aa", true},
		{"4-byte rune straddles the cap", []string{fill[:len(fill)-2], "😀"}, MaxRunOutput - 3, "aa", true},
		{"rune fits, the next does not", []string{fill[:len(fill)-2], "éé"}, MaxRunOutput - 1, "é", true},
		{"adds after full are dropped", []string{fill, "b", "c", "d"}, MaxRunOutput, "ab", true},
		{"empty add when full", []string{fill, "b", ""}, MaxRunOutput, "ab", false},
		{"one huge add", []string{strings.Repeat("€", MaxRunOutput)}, MaxRunOutput - MaxRunOutput%3, "€", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c capped
			for _, s := range tt.adds {
				c.add([]byte(s))
			}
			got := c.String()
			if len(got) != tt.wantLen || !strings.HasSuffix(got, tt.wantTail) || c.truncated != tt.wantTruncated {
				t.Errorf("got %d bytes ending %q, truncated %v; want %d ending %q, truncated %v",
					len(got), got[max(0, len(got)-8):], c.truncated, tt.wantLen, tt.wantTail, tt.wantTruncated)
			}
			if !utf8.ValidString(got) {
				t.Errorf("captured text is not valid UTF-8: ends %q", got[max(0, len(got)-8):])
			}
		})
	}
}
