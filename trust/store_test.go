package trust

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	return NewStore(filepath.Join(t.TempDir(), "berth", FileName))
}

func mustTrusted(t *testing.T, s *Store, ws, hash string, want bool) {
	t.Helper()
	got, err := s.Trusted(ws, hash)
	if err != nil || got != want {
		t.Fatalf("Trusted(%q, %q) = %v, %v; want %v", ws, hash, got, err, want)
	}
}

func TestStore(t *testing.T) {
	s := newTestStore(t)
	mustTrusted(t, s, "/w", "h1", false) // no file yet
	if err := s.Trust("/w", "h1"); err != nil {
		t.Fatal(err)
	}
	mustTrusted(t, s, "/w", "h1", true)
	mustTrusted(t, s, "/w", "h2", false) // a changed configuration
	mustTrusted(t, s, "/other", "h1", false)

	// Another process reads what this one wrote.
	mustTrusted(t, NewStore(s.Path()), "/w", "h1", true)

	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(s.Path())); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v; want mode 0700", di.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(s.Path()))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+FileName) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestStoreKeepsRecentConfigurations(t *testing.T) {
	s := newTestStore(t)
	for i := range keep + 3 {
		if err := s.Trust("/w", fmt.Sprint("h", i)); err != nil {
			t.Fatal(err)
		}
	}
	mustTrusted(t, s, "/w", "h0", false)
	mustTrusted(t, s, "/w", "h2", false)
	mustTrusted(t, s, "/w", "h3", true)
	mustTrusted(t, s, "/w", fmt.Sprint("h", keep+2), true)
	// Trusting an old one again makes it the newest.
	if err := s.Trust("/w", "h3"); err != nil {
		t.Fatal(err)
	}
	if err := s.Trust("/w", "new"); err != nil {
		t.Fatal(err)
	}
	mustTrusted(t, s, "/w", "h3", true)
	mustTrusted(t, s, "/w", "h4", false)
}

// Writers in parallel, each with its own Store as separate processes
// would have, lose nothing: the lock file serialises them.
func TestStoreConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- NewStore(path).Trust(fmt.Sprint("/w", i), "h")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := NewStore(path)
	for i := range n {
		mustTrusted(t, s, fmt.Sprint("/w", i), "h", true)
	}
}

func TestStoreRefusesBadFiles(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		mode    os.FileMode
		wantErr string
	}{
		{"damaged", "{not json", 0o600, "damaged"},
		{"writable by others", `{"version":1,"workspaces":{"/w":[{"hash":"h"}]}}`, 0o666, "writable by others"},
		{"group writable", `{"version":1,"workspaces":{"/w":[{"hash":"h"}]}}`, 0o620, "writable by others"},
		{"future version", `{"version":2}`, 0o600, "version 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStore(t)
			if err := os.MkdirAll(filepath.Dir(s.Path()), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Path(), []byte(tt.body), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(s.Path(), tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			ok, err := s.Trusted("/w", "h")
			if ok || err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), s.Path()) {
				t.Errorf("Trusted = %v, %v; want an error naming the file and %q", ok, err, tt.wantErr)
			}
			if err := s.Trust("/w", "h2"); err == nil {
				t.Error("Trust over a bad file succeeded; it must not overwrite it")
			}
		})
	}
}

func TestDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("HOME", dir) // macOS takes it from HOME
	got, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, dir) || !strings.HasSuffix(got, filepath.Join("berth", FileName)) {
		t.Errorf("DefaultPath = %q, want berth/%s under %s", got, FileName, dir)
	}
}
