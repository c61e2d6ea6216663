package pathmap

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// posixMounts has nested host mounts (vendor), a container mount that hides
// part of another (cache over proj/.cache) and names that need URI escaping.
var posixMounts = []Mount{
	{Host: "/home/u/proj", Container: "/workspaces/proj"},
	{Host: "/home/u/proj/vendor", Container: "/vendor"},
	{Host: "/home/u/cache", Container: "/workspaces/proj/.cache"},
	{Host: "/home/u/a b", Container: "/mnt/a b"},
}

// rootMounts maps the host root and a container root.
var rootMounts = []Mount{
	{Host: "/", Container: "/host"},
	{Host: "/srv/r", Container: "/"},
}

var windowsMounts = []Mount{
	{Host: `C:\Users\x\proj`, Container: "/workspaces/proj"},
	{Host: `c:/Users/x/proj/vendor/`, Container: "/vendor"},
	{Host: `D:\`, Container: "/mnt/d"},
}

func mustNew(t testing.TB, f Flavor, mounts []Mount) *Mapper {
	t.Helper()
	m, err := New(f, mounts)
	if err != nil {
		t.Fatalf("New(%v, %v): %v", f, mounts, err)
	}
	return m
}

type mapCase struct {
	in   string
	want string // "" means ok == false
}

func runMapCases(t *testing.T, name string, fn func(string) (string, bool), cases []mapCase) {
	t.Helper()
	for _, tc := range cases {
		got, ok := fn(tc.in)
		if !ok {
			got = ""
		}
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s(%q) = %q, %v; want %q, %v", name, tc.in, got, ok, tc.want, tc.want != "")
		}
	}
}

func TestToContainerPosix(t *testing.T) {
	m := mustNew(t, Posix, posixMounts)
	runMapCases(t, "ToContainer", m.ToContainer, []mapCase{
		{"/home/u/proj", "/workspaces/proj"},
		{"/home/u/proj/a.py", "/workspaces/proj/a.py"},
		{"/home/u/proj/", "/workspaces/proj"},
		{"/home/u/proj//src//a.py/", "/workspaces/proj/src/a.py"},
		{"/home/u/proj/./src/../a.py", "/workspaces/proj/a.py"},
		{"/home/u/proj/vendor/lib.go", "/vendor/lib.go"}, // longest host prefix
		{"/home/u/proj/vendorx/lib.go", "/workspaces/proj/vendorx/lib.go"},
		{"/home/u/cache/x", "/workspaces/proj/.cache/x"},
		{"/home/u/a b/x(1).py", "/mnt/a b/x(1).py"},
		// Not covered.
		{"/home/u/proj/.cache/x", ""}, // hidden by the cache mount
		{"/home/u/projx", ""},
		{"/home/u/proj/../other", ""},
		{"/home/u", ""},
		{"/HOME/u/proj", ""}, // case-sensitive
		{"home/u/proj", ""},
		{"", ""},
		{`C:\Users\x`, ""},
		// URIs answer as URIs.
		{"file:///home/u/proj/a%20b.py", "file:///workspaces/proj/a%20b.py"},
		{"file:///home/u/proj/a b.py", "file:///workspaces/proj/a%20b.py"},
		{"file://localhost/home/u/proj/x", "file:///workspaces/proj/x"},
		{"FILE:///home/u/proj", "file:///workspaces/proj"},
		{"file:/home/u/proj/x", "file:///workspaces/proj/x"},
		{"file:///home/u/proj/%23h%25.py", "file:///workspaces/proj/%23h%25.py"},
		{"file:///home/u/proj/caf%c3%a9.py", "file:///workspaces/proj/caf%C3%A9.py"},
		{"file:///home/u/proj/café.py", "file:///workspaces/proj/caf%C3%A9.py"},
		{"file:///home/u/proj/x(1)+y.py", "file:///workspaces/proj/x%281%29%2By.py"},
		{"file:///home/u/proj/a.py#L10", "file:///workspaces/proj/a.py#L10"},
		{"file:///home/u/proj/a.py?q=1#f", "file:///workspaces/proj/a.py?q=1#f"},
		{"file:///home/u/proj/100%", "file:///workspaces/proj/100%25"},
		{"file:///home/u/a%20b/c", "file:///mnt/a%20b/c"},
		{"file:///home/u/proj/sub/..%2F..%2Fx", ""}, // encoded slashes still separate
		{"file://server/home/u/proj", ""},
		{"file://", ""},
		{"file:home/u/proj", ""},
		{"http://example.com/home/u/proj", ""},
		{"vscode-remote://x/home/u/proj", ""},
	})
}

func TestToHostPosix(t *testing.T) {
	m := mustNew(t, Posix, posixMounts)
	runMapCases(t, "ToHost", m.ToHost, []mapCase{
		{"/workspaces/proj", "/home/u/proj"},
		{"/workspaces/proj/", "/home/u/proj"},
		{"/workspaces/proj/a.py", "/home/u/proj/a.py"},
		{"/workspaces/proj/a/../b.py", "/home/u/proj/b.py"},
		{"/workspaces/proj/.cache/x", "/home/u/cache/x"}, // longest container prefix
		{"/workspaces/proj/.cachex", "/home/u/proj/.cachex"},
		{"/vendor", "/home/u/proj/vendor"},
		{"/mnt/a b/c", "/home/u/a b/c"},
		{"/workspaces/projx", ""},
		{"/workspaces/proj/../etc/passwd", ""},
		{"/workspaces", ""},
		{"/Workspaces/proj", ""},
		{"workspaces/proj", ""},
		{"file:///workspaces/proj/a%20b.py", "file:///home/u/proj/a%20b.py"},
		{"file:///workspaces/proj/a b.py", "file:///home/u/proj/a%20b.py"},
		{"file:///mnt/a%20b/%E2%82%AC.txt", "file:///home/u/a%20b/%E2%82%AC.txt"},
		{"file:///workspaces/proj/a.py#L3", "file:///home/u/proj/a.py#L3"},
		{"file://localhost/vendor/x", "file:///home/u/proj/vendor/x"},
		{"file:///workspaces/projx", ""},
		{"file://host/workspaces/proj", ""},
		{"https:///workspaces/proj", ""},
	})
}

func TestRootMounts(t *testing.T) {
	m := mustNew(t, Posix, rootMounts)
	runMapCases(t, "ToContainer", m.ToContainer, []mapCase{
		{"/", "/host"},
		{"/etc/hosts", "/host/etc/hosts"},
		{"/srv/r", "/"},
		{"/srv/r/etc", "/etc"},
		{"/srv/r/host/x", "/host/srv/r/host/x"}, // hidden under /host, reachable via the root mount
		{"/srv/rx", "/host/srv/rx"},
		{"/..", "/host"},
		{"file:///", "file:///host"},
		{"file:///srv/r/a", "file:///a"},
	})
	runMapCases(t, "ToHost", m.ToHost, []mapCase{
		{"/", "/srv/r"},
		{"/etc/x", "/srv/r/etc/x"},
		{"/host", "/"},
		{"/host/etc", "/etc"},
		{"/hostx", "/srv/r/hostx"},
		{"/host/../x", "/srv/r/x"},
		{"file:///", "file:///srv/r"},
		{"file:///host/", "file:///"},
		{"file:///host/a%20b", "file:///a%20b"},
	})
}

func TestToContainerWindows(t *testing.T) {
	m := mustNew(t, Windows, windowsMounts)
	runMapCases(t, "ToContainer", m.ToContainer, []mapCase{
		{`C:\Users\x\proj`, "/workspaces/proj"},
		{`C:\Users\x\proj\a.py`, "/workspaces/proj/a.py"},
		{`c:/Users/x/proj/a.py`, "/workspaces/proj/a.py"},
		{`C:/Users/x\proj\sub/a.py`, "/workspaces/proj/sub/a.py"},
		{`c:\USERS\X\Proj\A.py`, "/workspaces/proj/A.py"}, // case-insensitive; the tail keeps its case
		{`C:\Users\x\proj\`, "/workspaces/proj"},
		{`C:\Users\x\proj\\src\.\..\a.py`, "/workspaces/proj/a.py"},
		{`C:\Users\x\proj\Vendor\lib.go`, "/vendor/lib.go"},
		{`D:\`, "/mnt/d"},
		{`d:\data\f.txt`, "/mnt/d/data/f.txt"},
		{`D:\..\x`, "/mnt/d/x"},
		// Not covered.
		{`C:\Users\x\projx`, ""},
		{`C:\Users\x\proj\..\other`, ""},
		{`E:\x`, ""},
		{`C:`, ""},
		{`C:relative`, ""},
		{`\Users\x\proj`, ""},
		{`\\server\share\x`, ""},
		{`/Users/x/proj`, ""},
		{`1:\x`, ""},
		// URIs, including VS Code's c%3A form, answer as URIs.
		{"file:///c%3A/Users/x/proj/a%20b.py", "file:///workspaces/proj/a%20b.py"},
		{"file:///C:/Users/x/proj/a.py", "file:///workspaces/proj/a.py"},
		{"file:///c%3a/users/x/proj", "file:///workspaces/proj"},
		{"file:///C%3A/Users/x/proj%5Csub%5Ca.py", "file:///workspaces/proj/sub/a.py"},
		{"file://localhost/c:/Users/x/proj/%23.py", "file:///workspaces/proj/%23.py"},
		{"file:///d%3A", "file:///mnt/d"},
		{"file:///d%3A/", "file:///mnt/d"},
		{"file:///d%3Ax", ""},
		{"file:///Users/x/proj", ""},
		{"file:///c%3A/Users/x/projx", ""},
		{"file://server/share/x", ""},
	})
}

func TestToHostWindows(t *testing.T) {
	m := mustNew(t, Windows, windowsMounts)
	runMapCases(t, "ToHost", m.ToHost, []mapCase{
		{"/workspaces/proj", `C:\Users\x\proj`},
		{"/workspaces/proj/src/a.py", `C:\Users\x\proj\src\a.py`},
		{"/workspaces/proj/src/", `C:\Users\x\proj\src`},
		{"/vendor/x", `c:\Users\x\proj\vendor\x`}, // drive letter as written in the mount
		{"/mnt/d", `D:\`},
		{"/mnt/d/a/b", `D:\a\b`},
		{"/workspaces/proj/../x", ""},
		{"/Workspaces/proj", ""}, // the container is case-sensitive
		{"/mnt/dx", ""},
		{"file:///workspaces/proj/a%20b.py", "file:///c%3A/Users/x/proj/a%20b.py"},
		{"file:///workspaces/proj", "file:///c%3A/Users/x/proj"},
		{"file:///vendor/caf%C3%A9", "file:///c%3A/Users/x/proj/vendor/caf%C3%A9"},
		{"file:///mnt/d/", "file:///d%3A/"},
		{"file:///mnt/d/x#frag", "file:///d%3A/x#frag"},
		{"file:///mnt/e", ""},
	})
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		f      Flavor
		mounts []Mount
		want   []string // substrings of the error
	}{
		{Posix, []Mount{{"/a", "/b"}, {"rel", "/c"}}, []string{"mount 1", `"rel"`, "host"}},
		{Posix, []Mount{{"/a", "c"}}, []string{"mount 0", `"c"`, "container"}},
		{Posix, []Mount{{"/a", ""}}, []string{"mount 0", "container"}},
		{Posix, []Mount{{"", "/c"}}, []string{"mount 0", "host"}},
		{Posix, []Mount{{`C:\x`, "/c"}}, []string{"mount 0", "host"}},
		{Windows, []Mount{{"/home/u", "/c"}}, []string{"mount 0", `"/home/u"`, "Windows"}},
		{Windows, []Mount{{"C:", "/c"}}, []string{"mount 0", "host"}},
		{Windows, []Mount{{`C:\x`, `C:\y`}}, []string{"mount 0", "container"}},
		{Posix, []Mount{{"/a", "/c/"}, {"/b", "/c/d/.."}}, []string{"mount 1", "mount 0", "already"}},
		{Flavor(7), nil, []string{"flavor"}},
	} {
		_, err := New(tc.f, tc.mounts)
		if err == nil {
			t.Errorf("New(%v, %q) succeeded; want an error", tc.f, tc.mounts)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%v, %q) error %q does not mention %q", tc.f, tc.mounts, err, w)
			}
		}
	}
	if _, err := New(Posix, nil); err != nil {
		t.Errorf("New with no mounts: %v", err)
	}
}

func TestMounts(t *testing.T) {
	m := mustNew(t, Windows, windowsMounts)
	want := []Mount{
		{Host: `C:\Users\x\proj`, Container: "/workspaces/proj"},
		{Host: `c:\Users\x\proj\vendor`, Container: "/vendor"},
		{Host: `D:\`, Container: "/mnt/d"},
	}
	if diff := cmp.Diff(want, m.Mounts()); diff != "" {
		t.Errorf("Windows Mounts() mismatch (-want +got):\n%s", diff)
	}
	m = mustNew(t, Posix, []Mount{{"/home/u//proj/", "/workspaces/./proj/"}, {"/", "/"}})
	want = []Mount{{"/home/u/proj", "/workspaces/proj"}, {"/", "/"}}
	got := m.Mounts()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Posix Mounts() mismatch (-want +got):\n%s", diff)
	}
	got[0].Host = "changed"
	if m.Mounts()[0].Host != "/home/u/proj" {
		t.Error("Mounts() shares its slice with the Mapper")
	}
	b, err := json.Marshal(got[1])
	if err != nil || string(b) != `{"host":"/","container":"/"}` {
		t.Errorf("json.Marshal(Mount) = %s, %v", b, err)
	}
}

func TestHostFlavor(t *testing.T) {
	want := Posix
	if runtime.GOOS == "windows" {
		want = Windows
	}
	if got := HostFlavor(); got != want {
		t.Errorf("HostFlavor() = %v, want %v", got, want)
	}
	if Posix.String() != "posix" || Windows.String() != "windows" || Flavor(9).String() != "Flavor(9)" {
		t.Error("Flavor.String is wrong")
	}
}

func TestFoldEqual(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"Proj", "pROJ", true},
		{"Ärger", "äRGER", true},
		{"proj", "proj2", false},
		{"\xff", "\xfe", false}, // strings.EqualFold says true
		{"a\xff", "A\xff", true},
		{"", "", true},
	} {
		if got := foldEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("foldEqual(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
