package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHostPolicy(t *testing.T) {
	hp := hostPolicy{home: "/home/u", uid: 1000}
	tests := []struct {
		path  string
		owner int
		want  string // a substring of why; "" means allowed
	}{
		{"/", 1000, "filesystem root"},
		{"/etc", 0, "system directory /etc"},
		{"/usr", 0, "system directory /usr"},
		{"/var", 0, "system directory /var"},
		{"/boot", 0, "system directory /boot"},
		{"/proc", 0, "system directory /proc"},
		{"/sys", 0, "system directory /sys"},
		{"/dev", 0, "system directory /dev"},
		{"/run", 0, "system directory /run"},
		{"/etc/ssl", 1000, "inside the system directory /etc"},
		{"/proc/1/root", 1000, "inside the system directory /proc"},
		{"/sys/fs", 1000, "inside the system directory /sys"},
		{"/dev/shm", 1000, "inside the system directory /dev"},
		{"/boot/efi", 1000, "inside the system directory /boot"},
		{"/home/u", 1000, "home directory itself"},
		{"/home/u/proj", 1000, ""},
		{"/home/u/proj", 0, "owned by uid 0, not by uid 1000"},
		{"/home/u/proj", -1, ""}, // missing: whoever needs it says so
		{"/var/www/app", 1000, ""},
		{"/var/folders/xy/T/proj", 1000, ""},
		{"/usr/local/src/proj", 1000, ""},
		{"/run/user/1000/proj", 1000, ""},
		{"/etcetera", 1000, ""},
		{"/tmp/proj", 1000, ""},
	}
	for _, tt := range tests {
		got := hp.why(tt.path, tt.owner)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("why(%q, owner %d) = %q, want %q", tt.path, tt.owner, got, tt.want)
		}
	}
	// Root owns what it serves; anyone's files are not root's.
	root := hostPolicy{home: "/root", uid: 0}
	if got := root.why("/srv/proj", 0); got != "" {
		t.Errorf("root: why(/srv/proj owned by root) = %q, want allowed", got)
	}
	if got := root.why("/home/u/proj", 1000); !strings.Contains(got, "owned by uid 1000") {
		t.Errorf("root: why(/home/u/proj owned by 1000) = %q, want refused", got)
	}
}

// ResolveWorkspace refuses the real system's directories, resolving
// symlinks first, and takes a temp dir the test owns.
func TestResolveWorkspaceRefuses(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	etcLink := filepath.Join(dir, "etc-link")
	if err := os.Symlink("/etc", etcLink); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, p := range []string{"/", "/etc", "/etc/berth-no-such-dir", "/usr", "/var", "/run", "/proc/self", "/dev", "file:///etc", etcLink, etcLink + "/ssl", home} {
		if _, err := ResolveWorkspace(p); !errors.Is(err, ErrRefusedPath) {
			t.Errorf("ResolveWorkspace(%q) = %v, want ErrRefusedPath", p, err)
		}
	}
	if _, err := ResolveWorkspace(dir); err != nil {
		t.Errorf("ResolveWorkspace(%q) = %v, want it allowed", dir, err)
	}
	sub := filepath.Join(home, "proj")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveWorkspace(sub); err != nil {
		t.Errorf("a folder in the home directory: %v, want it allowed", err)
	}
}

func TestResolveWorkspaceRefusesOthersDirectories(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory away")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := ResolveWorkspace(dir)
	if !errors.Is(err, ErrRefusedPath) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Errorf("ResolveWorkspace(dir owned by nobody) = %v, want ErrRefusedPath naming the owner", err)
	}
}
