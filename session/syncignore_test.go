package session

import (
	"os"
	"path/filepath"
	"testing"
)

// Sync mode leaves out exactly what git leaves out, plus .dockerignore's
// root-anchored patterns.
func TestSyncIgnore(t *testing.T) {
	ws := t.TempDir()
	for name, text := range map[string]string{
		".gitignore":          "/build\n*.log\n!keep.log\nout/\ndocs/*.pdf\n# a comment\n",
		"sub/.gitignore":      "*.tmp\n/local\n!important.tmp\n",
		"sub/deep/.gitignore": "!*.log\n",
		"vendored/.gitignore": "*\n!.gitignore\n",
		".git/info/exclude":   "secret.txt\n",
		".dockerignore":       "node_modules\nonly-root.txt\n",
	} {
		p := filepath.Join(ws, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ig, err := loadSyncIgnore(ws)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rel   string
		isDir bool
		want  bool
	}{
		{"a.go", false, false},
		{".gitignore", false, false},
		{".git", true, true},
		{".git/HEAD", false, true},
		{"sub/.git/config", false, true},
		// An anchored pattern matches only beside its .gitignore.
		{"build", true, true},
		{"build/x.o", false, true},
		{"src/build/x.o", false, false},
		{"src/build", true, false},
		// Negation re-includes.
		{"a.log", false, true},
		{"src/a.log", false, true},
		{"keep.log", false, false},
		{"src/keep.log", false, false},
		// A trailing slash matches directories only, at any depth.
		{"out", true, true},
		{"out", false, false},
		{"src/out/x", false, true},
		// A middle slash anchors.
		{"docs/a.pdf", false, true},
		{"src/docs/a.pdf", false, false},
		{"docs/sub/a.pdf", false, false},
		// A nested .gitignore applies below its directory only, and wins.
		{"sub/a.tmp", false, true},
		{"sub/x/a.tmp", false, true},
		{"a.tmp", false, false},
		{"sub/important.tmp", false, false},
		{"sub/local", false, true},
		{"sub/x/local", false, false},
		{"sub/deep/a.log", false, false},
		{"sub/a.log", false, true},
		{"vendored/x.c", false, true},
		{"vendored/.gitignore", false, false},
		// .git/info/exclude counts.
		{"secret.txt", false, true},
		{"src/secret.txt", false, true},
		// Nothing under an ignored directory comes back.
		{"build/keep.log", false, true},
		// .dockerignore: Docker's rules, anchored at the root.
		{"node_modules/x/y.js", false, true},
		{"only-root.txt", false, true},
		{"src/only-root.txt", false, false},
	} {
		if got := ig.ignored(tc.rel, tc.isDir); got != tc.want {
			t.Errorf("ignored(%q, dir=%v) = %v, want %v", tc.rel, tc.isDir, got, tc.want)
		}
	}
}
