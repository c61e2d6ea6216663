package work

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/pathmap"
)

func TestParseListening(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:162E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
`
	got := parseListening(table)
	want := map[int]bool{5678: true, 22: true} // 0x162E, 0x0016; 0x1F90 is established, not listening
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseListening (-want +got):\n%s", diff)
	}
}

func TestDetectFramework(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"go module", []string{"go.mod", "main.go"}, "go"},
		{"go wins over python", []string{"go.mod", "pyproject.toml"}, "go"},
		{"pyproject", []string{"pyproject.toml"}, "pytest"},
		{"setup.py", []string{"setup.py"}, "pytest"},
		{"a test file deep down", []string{"src/pkg/tests/test_x.py"}, "pytest"},
		{"suffix test file", []string{"x_test.py"}, "pytest"},
		{"hidden dirs don't count", []string{".venv/lib/test_y.py"}, ""},
		{"nothing", []string{"README.md"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(ws, f)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, nil, 0o644)
			}
			got, err := DetectFramework(ws)
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("DetectFramework = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestMapFiles(t *testing.T) {
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/u/proj", Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := mapFiles(m, []string{"/home/u/proj/tests/test_a.py", "file:///home/u/proj/b%20c.py", "/usr/lib/x.py"})
	want := []string{"/workspaces/proj/tests/test_a.py", "/workspaces/proj/b c.py", "/usr/lib/x.py"}
	if err != nil || !cmp.Equal(got, want) {
		t.Errorf("mapFiles = %v, %v; want %v", got, err, want)
	}
	if _, err := mapFiles(m, []string{"relative.py"}); err == nil || !strings.Contains(err.Error(), "relative.py") {
		t.Errorf("relative file: err = %v", err)
	}
}

func TestGoTestOutput(t *testing.T) {
	out := goTestOutput()
	stream := `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:3: \"quoted\" \u00e9\n"}
# p [build failed]
{"Action":"pass","Package":"p"}
`
	var got strings.Builder
	for i := 0; i < len(stream); i += 7 { // chunks that split lines
		got.WriteString(out(stream[i:min(i+7, len(stream))]))
	}
	want := "=== RUN   TestA\n    a_test.go:3: \"quoted\" é\n# p [build failed]\n"
	if got.String() != want {
		t.Errorf("goTestOutput = %q, want %q", got.String(), want)
	}
}

func TestStringList(t *testing.T) {
	if got := stringList([]any{"-k", "x", 3}); !cmp.Equal(got, []string{"-k", "x"}) {
		t.Errorf("stringList = %v", got)
	}
	if got := stringList("nope"); got != nil {
		t.Errorf("stringList of a string = %v, want nil", got)
	}
}
