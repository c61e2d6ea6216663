package pathmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type rewriteCase struct{ in, want string }

var posixRewrites = []rewriteCase{
	{"", ""},
	{"no paths here\n", "no paths here\n"},
	{"/workspaces/proj/a.py:12:3: error: bad", "/home/u/proj/a.py:12:3: error: bad"},
	{"/workspaces/proj/a.py(12,3): warning", "/home/u/proj/a.py(12,3): warning"},
	{`  File "/workspaces/proj/a.py", line 3, in <module>`, `  File "/home/u/proj/a.py", line 3, in <module>`},
	{"--> /workspaces/proj/src/main.rs:4:9\n", "--> /home/u/proj/src/main.rs:4:9\n"},
	{"/workspaces/proj", "/home/u/proj"},
	{"/workspaces/proj/", "/home/u/proj/"},
	{"cd /workspaces/proj && make", "cd /home/u/proj && make"},
	{"PATH=/usr/bin:/workspaces/proj/bin", "PATH=/usr/bin:/home/u/proj/bin"},
	{"--root=/workspaces/proj --x", "--root=/home/u/proj --x"},
	{"'/workspaces/proj' `/workspaces/proj/a`", "'/home/u/proj' `/home/u/proj/a`"},
	{"(/workspaces/proj/a.go) [/workspaces/proj] {/workspaces/proj} </workspaces/proj>",
		"(/home/u/proj/a.go) [/home/u/proj] {/home/u/proj} </home/u/proj>"},
	{"a,/workspaces/proj,b;/workspaces/proj;", "a,/home/u/proj,b;/home/u/proj;"},
	{"x\t/workspaces/proj\r\n/workspaces/proj/b\n", "x\t/home/u/proj\r\n/home/u/proj/b\n"},
	{"/workspaces/proj/a /workspaces/proj/b", "/home/u/proj/a /home/u/proj/b"},
	{"/workspaces/proj/workspaces/proj", "/home/u/proj/workspaces/proj"},
	// Longest mount wins; mount names with spaces match as they are.
	{"/workspaces/proj/.cache/x", "/home/u/cache/x"},
	{"/workspaces/proj/.cache", "/home/u/cache"},
	{"/workspaces/proj/.cachex", "/home/u/proj/.cachex"},
	{"/workspaces/proj/.cach", "/home/u/proj/.cach"},
	{"/mnt/a b/c.txt: ok", "/home/u/a b/c.txt: ok"},
	{"/vendor/lib.go:1", "/home/u/proj/vendor/lib.go:1"},
	// Coloured and typographically quoted output.
	{"\x1b[1m/workspaces/proj/a.c:1:2:\x1b[0m \x1b[0;1;31merror", "\x1b[1m/home/u/proj/a.c:1:2:\x1b[0m \x1b[0;1;31merror"},
	{"\x1b[01;38;5;208m/workspaces/proj\x1b[m", "\x1b[01;38;5;208m/home/u/proj\x1b[m"},
	{"‘/workspaces/proj/a.c’ and “/workspaces/proj” «/workspaces/proj»", "‘/home/u/proj/a.c’ and “/home/u/proj” «/home/u/proj»"},
	// URIs.
	{"file:///workspaces/proj/a.py", "file:///home/u/proj/a.py"},
	{"see file:///workspaces/proj/a%20b.py#L3.", "see file:///home/u/proj/a%20b.py#L3."},
	{"file:///workspaces/proj", "file:///home/u/proj"},
	{"file:///workspaces/proj?x=1", "file:///home/u/proj?x=1"},
	{"<file:///workspaces/proj>", "<file:///home/u/proj>"},
	{"file:///mnt/a%20b/c", "file:///home/u/a%20b/c"},
	{"file:///mnt/a b/c", "file:///home/u/a%20b/c"},
	{"file:///%77orkspaces/proj/a(1).py", "file:///home/u/proj/a(1).py"}, // tail kept verbatim
	{"file:///workspaces/proj%2Fa", "file:///home/u/proj%2Fa"},
	{"file:///vendor/x", "file:///home/u/proj/vendor/x"},
	{"\x1b]8;;file:///workspaces/proj/a.go\x1b\\a.go\x1b]8;;\x1b\\", "\x1b]8;;file:///home/u/proj/a.go\x1b\\a.go\x1b]8;;\x1b\\"},
	// Not paths: no boundary before, or no component boundary after.
	{"/x/workspaces/proj/a", "/x/workspaces/proj/a"},
	{"a/workspaces/proj", "a/workspaces/proj"},
	{"//workspaces/proj", "//workspaces/proj"},
	{"~/workspaces/proj", "~/workspaces/proj"},
	{"/workspaces/projx/a", "/workspaces/projx/a"},
	{"/workspaces/proj.", "/workspaces/proj."},
	{"/workspaces/proj-old", "/workspaces/proj-old"},
	{"/workspaces/pro", "/workspaces/pro"},
	{"/Workspaces/proj", "/Workspaces/proj"},
	{"http://example.com/workspaces/proj", "http://example.com/workspaces/proj"},
	{"xfile:///workspaces/proj", "xfile:///workspaces/proj"},
	{"file:///workspaces/projx", "file:///workspaces/projx"},
	{"file://host/workspaces/proj", "file://host/workspaces/proj"},
	{"file:/workspaces/proj", "file:/home/u/proj"}, // a path after ':'
	{"file:///workspaces/pro%", "file:///workspaces/pro%"},
	{"file:", "file:"},
	{"/workspaces/proj%20", "/workspaces/proj%20"},
	// Text is not cleaned.
	{"/workspaces/proj/../x", "/home/u/proj/../x"},
}

var windowsRewrites = []rewriteCase{
	{"/workspaces/proj/src/a.py:12:3: error", `C:\Users\x\proj\src\a.py:12:3: error`},
	{`File "/workspaces/proj/a/b.py", line 3`, `File "C:\Users\x\proj\a\b.py", line 3`},
	{"/workspaces/proj", `C:\Users\x\proj`},
	{"/workspaces/proj/", `C:\Users\x\proj\`},
	{"/vendor/a/b", `c:\Users\x\proj\vendor\a\b`},
	{"/mnt/d/x/y and /mnt/d", `D:\x\y and D:\`},
	{"/mnt/d,/mnt/d/", `D:\,D:\`},
	{"/workspaces/proj/a/b c/d", `C:\Users\x\proj\a\b c/d`}, // a space ends the path
	{"/workspaces/proj/x=/workspaces/proj/y", `C:\Users\x\proj\x=C:\Users\x\proj\y`},
	{"/workspaces/proj/a.py\x1b[0m/x", "C:\\Users\\x\\proj\\a.py\x1b[0m/x"},
	{"file:///workspaces/proj/a/b.py", "file:///c%3A/Users/x/proj/a/b.py"},
	{"file:///mnt/d", "file:///d%3A/"},
	{"file:///mnt/d/x/y", "file:///d%3A/x/y"},
	{"/workspaces/projx/a", "/workspaces/projx/a"},
	{"a/workspaces/proj/a", "a/workspaces/proj/a"},
}

var rootRewrites = []rewriteCase{
	{"ls /etc/x", "ls /srv/r/etc/x"},
	{"/host/y and /host", "/y and /"},
	{"a / b", "a /srv/r/ b"},
	{"file:///etc/x", "file:///srv/r/etc/x"},
	{"file:///host/a", "file:///a"},
	{"file:///host", "file:///"},
	{"x/y", "x/y"},
}

func TestRewriteToHost(t *testing.T) {
	for _, set := range []struct {
		name  string
		m     *Mapper
		cases []rewriteCase
	}{
		{"posix", mustNew(t, Posix, posixMounts), posixRewrites},
		{"windows", mustNew(t, Windows, windowsMounts), windowsRewrites},
		{"root", mustNew(t, Posix, rootMounts), rootRewrites},
	} {
		for _, tc := range set.cases {
			if got := set.m.RewriteToHost(tc.in); got != tc.want {
				t.Errorf("%s: RewriteToHost(%q)\n got %q\nwant %q", set.name, tc.in, got, tc.want)
			}
		}
	}
}

func TestRewriteToHostNoMounts(t *testing.T) {
	m := mustNew(t, Posix, nil)
	in := "file:///a /b"
	if got := m.RewriteToHost(in); got != in {
		t.Errorf("RewriteToHost(%q) = %q", in, got)
	}
}

// writeChunks runs text through a Writer in the given chunk sizes (cycled) and
// checks every Write's count.
func writeChunks(t testing.TB, m *Mapper, text []byte, sizes []int) string {
	t.Helper()
	var buf bytes.Buffer
	w := m.NewWriter(&buf)
	for i := 0; len(text) > 0; i++ {
		n := len(text)
		if len(sizes) > 0 {
			n = min(n, max(sizes[i%len(sizes)], 1))
		}
		got, err := w.Write(text[:n])
		if err != nil || got != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
		}
		text = text[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.String()
}

type writerSet struct {
	name string
	m    *Mapper
	in   []string
}

func writerSets(t testing.TB) []writerSet {
	var sets []writerSet
	for _, s := range []struct {
		name   string
		f      Flavor
		mounts []Mount
		cases  []rewriteCase
	}{
		{"posix", Posix, posixMounts, posixRewrites},
		{"windows", Windows, windowsMounts, windowsRewrites},
		{"root", Posix, rootMounts, rootRewrites},
	} {
		ws := writerSet{name: s.name, m: mustNew(t, s.f, s.mounts)}
		var all []string
		for _, c := range s.cases {
			ws.in = append(ws.in, c.in)
			all = append(all, c.in)
		}
		ws.in = append(ws.in, strings.Join(all, "\n"), strings.Join(all, ""))
		sets = append(sets, ws)
	}
	return sets
}

func TestWriterEverySplit(t *testing.T) {
	for _, set := range writerSets(t) {
		for _, in := range set.in {
			want := set.m.RewriteToHost(in)
			for k := 0; k <= len(in); k++ {
				if got := writeChunks(t, set.m, []byte(in), []int{k, len(in)}); got != want {
					t.Fatalf("%s: split at %d of %q\n got %q\nwant %q", set.name, k, in, got, want)
				}
			}
			if got := writeChunks(t, set.m, []byte(in), []int{1}); got != want {
				t.Fatalf("%s: byte at a time %q\n got %q\nwant %q", set.name, in, got, want)
			}
		}
	}
}

func TestWriterRandomChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, set := range writerSets(t) {
		text := []byte(genLog(r, set.m, 300<<10))
		want := set.m.RewriteToHost(string(text))
		if want == string(text) {
			t.Fatalf("%s: generated log has nothing to rewrite", set.name)
		}
		for range 20 {
			sizes := make([]int, 1+r.IntN(8))
			for i := range sizes {
				switch r.IntN(3) {
				case 0:
					sizes[i] = 1 + r.IntN(8)
				case 1:
					sizes[i] = 1 + r.IntN(200)
				default:
					sizes[i] = 1 + r.IntN(100<<10)
				}
			}
			if got := writeChunks(t, set.m, text, sizes); got != want {
				t.Fatalf("%s: chunks %v: output differs from RewriteToHost:\n%s", set.name, sizes, cmp.Diff(want, got))
			}
		}
	}
}

// genLog makes build-log-like text full of container paths, near misses and
// URIs.
func genLog(r *rand.Rand, m *Mapper, size int) string {
	var pre []string
	for _, mt := range m.Mounts() {
		pre = append(pre, mt.Container)
	}
	words := []string{"error:", "warning", "in", "File", "line", "at", "/usr/lib/x.so", "http://x.org/a", "a/b", "file:", "fil"}
	seps := []string{" ", "\n", ":", "\"", "'", "(", ")", ",", "=", "\x1b[1m", "/", "x", "‘", "%", "%2"}
	var sb strings.Builder
	for sb.Len() < size {
		switch r.IntN(6) {
		case 0, 1:
			p := pre[r.IntN(len(pre))]
			if r.IntN(3) == 0 {
				p = strings.TrimSuffix(p, "/") + "/src/pkg/a_" + fmt.Sprint(r.IntN(100)) + ".go"
			}
			if r.IntN(4) == 0 {
				p = "file://" + strings.ReplaceAll(p, " ", "%20")
			}
			if r.IntN(5) == 0 {
				p = p[:r.IntN(len(p)+1)]
			}
			sb.WriteString(p)
		case 2:
			fmt.Fprintf(&sb, ":%d:%d", r.IntN(999), r.IntN(80))
		default:
			sb.WriteString(words[r.IntN(len(words))])
		}
		sb.WriteString(seps[r.IntN(len(seps))])
	}
	return sb.String()
}

func TestWriterHoldsBackOnlyPossiblePaths(t *testing.T) {
	m := mustNew(t, Posix, posixMounts)
	for _, tc := range []struct{ in, out string }{
		{"plain text\n", "plain text\n"},
		{"x /usr/lib/a /tmp ", "x /usr/lib/a /tmp "},
		{"x /workspaces/pro", "x "},
		{"x /workspaces/proj", "x "},                       // could still be /workspaces/projx
		{"x /workspaces/proj/.c", "x "},                    // could still be the .cache mount
		{"x /workspaces/proj/a.py", "x /home/u/proj/a.py"}, // decided
		{"x /workspaces/proj/.d", "x /home/u/proj/.d"},
		{"x /", "x "},
		{"a/", "a/"},
		{"x fi", "x "},
		{"x file:", "x "},
		{"x file:///workspaces/", "x "},
		{"xfile:", "xfile:"},
		{"x file:///workspaces/proj/a%2", "x file:///home/u/proj/a%2"},
		{"x file:///workspaces/p%7", "x "},
	} {
		var buf bytes.Buffer
		w := m.NewWriter(&buf)
		if n, err := w.Write([]byte(tc.in)); n != len(tc.in) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", tc.in, n, err)
		}
		if got := buf.String(); got != tc.out {
			t.Errorf("after Write(%q) the output is %q, want %q", tc.in, got, tc.out)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, want := buf.String(), m.RewriteToHost(tc.in); got != want {
			t.Errorf("after Flush of %q the output is %q, want %q", tc.in, got, want)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterErrors(t *testing.T) {
	m := mustNew(t, Posix, posixMounts)
	w := m.NewWriter(&failWriter{n: 4})
	if n, err := w.Write([]byte("hello world")); err == nil || n != 0 {
		t.Fatalf("Write to a failing writer = %d, %v", n, err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after a failure succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failure succeeded")
	}
	w = m.NewWriter(shortWriter{})
	if _, err := w.Write([]byte("hello")); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write gave %v", err)
	}
	w = m.NewWriter(&failWriter{n: 2})
	if _, err := w.Write([]byte("x /workspaces")); err != nil {
		t.Fatalf("first Write: %v", err)
	}
	if err := w.Flush(); err == nil {
		t.Error("Flush to a failing writer succeeded")
	}
}

func TestWriterEmptyWrites(t *testing.T) {
	m := mustNew(t, Posix, posixMounts)
	var buf bytes.Buffer
	w := m.NewWriter(&buf)
	for _, s := range []string{"", "/work", "", "spaces/proj", "", "/a", ""} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "/home/u/proj/a" {
		t.Errorf("got %q", got)
	}
}

func BenchmarkWriter(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, set := range []struct {
		name string
		f    Flavor
		m    []Mount
	}{{"posix", Posix, posixMounts}, {"windows", Windows, windowsMounts}} {
		m := mustNew(b, set.f, set.m)
		log := []byte(genLog(r, m, 1<<20))
		plain := bytes.Repeat([]byte("ok  \tgithub.com/x/y/z\t0.123s coverage: 81.2% of statements\n"), 1<<20/60)
		for _, in := range []struct {
			name string
			data []byte
		}{{"paths", log}, {"plain", plain}} {
			b.Run(set.name+"/"+in.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				w := m.NewWriter(io.Discard)
				for b.Loop() {
					for p := in.data; len(p) > 0; {
						n := min(len(p), 32<<10)
						w.Write(p[:n])
						p = p[n:]
					}
					w.Flush()
				}
			})
		}
	}
}
