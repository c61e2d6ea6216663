package incus

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/internal/sftp"
	"github.com/berthdev/berth/backends/incus/rest"
	"github.com/google/go-cmp/cmp"
)

func TestInstanceName(t *testing.T) {
	long := strings.Repeat("a", 70)
	tests := []struct {
		in, want string
	}{
		{"berth-test-1795397248287420258", "berth-test-1795397248287420258"},
		{"berth-myproject-1a2b3c", "berth-myproject-1a2b3c"},
		{"Berth_My.Project", "berth-my-project-" + hash8("Berth_My.Project")},
		{"--x--", "x-" + hash8("--x--")},
		{"1abc", "berth-1abc-" + hash8("1abc")},
		{"12345", "berth-12345-" + hash8("12345")},
		{"", "berth-" + hash8("")},
		{"ü", "berth-" + hash8("ü")},
		{long, strings.Repeat("a", 54) + "-" + hash8(long)},
	}
	for _, tt := range tests {
		got := instanceName(tt.in)
		if got != tt.want {
			t.Errorf("instanceName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) > maxNameLen || strings.HasPrefix(got, "-") || strings.HasSuffix(got, "-") || got[0] >= '0' && got[0] <= '9' {
			t.Errorf("instanceName(%q) = %q is not a valid Incus name", tt.in, got)
		}
	}
}

func hash8(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

func FuzzInstanceName(f *testing.F) {
	for _, s := range []string{"berth-x", "A.b_c", "", "9", strings.Repeat("-", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := instanceName(s)
		if len(n) == 0 || len(n) > maxNameLen || n[0] == '-' || n[len(n)-1] == '-' || n[0] >= '0' && n[0] <= '9' {
			t.Fatalf("instanceName(%q) = %q", s, n)
		}
		for _, r := range n {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("instanceName(%q) = %q has %q", s, n, r)
			}
		}
		if instanceName(s) != n {
			t.Fatalf("instanceName(%q) is not deterministic", s)
		}
	})
}

func TestID(t *testing.T) {
	tests := []struct {
		name, uuid, id string
	}{
		{"berth-a", "330e4e0e-bbf1-4258-98df-fe1fea859c20", "berth-a.330e4e0e-bbf1-4258-98df-fe1fea859c20"},
		{"berth-a", "", "berth-a"},
	}
	for _, tt := range tests {
		if got := formatID(tt.name, tt.uuid); got != tt.id {
			t.Errorf("formatID(%q, %q) = %q, want %q", tt.name, tt.uuid, got, tt.id)
		}
		if name, uuid := parseID(tt.id); name != tt.name || uuid != tt.uuid {
			t.Errorf("parseID(%q) = %q, %q", tt.id, name, uuid)
		}
	}
}

func TestConfigAndLabels(t *testing.T) {
	spec := backends.Spec{
		Workspace: "/home/me/proj",
		Workdir:   "/workspaces/proj",
		Image:     "berth-test/busybox-1",
		Labels:    map[string]string{"berth.test": "TestX/y", "team": "a=b"},
		Env:       []string{"A=1", "B=x=y", "bad", "=v"},
	}
	cfg := instanceConfig(spec, "1.2.3")
	wantCfg := map[string]string{
		"user.berth.managed":   "true",
		"user.berth.workspace": "/home/me/proj",
		"user.berth.workdir":   "/workspaces/proj",
		"user.berth.version":   "1.2.3",
		"user.berth.image":     "berth-test/busybox-1",
		"user.berth.test":      "TestX/y",
		"user.team":            "a=b",
		"environment.A":        "1",
		"environment.B":        "x=y",
	}
	if diff := cmp.Diff(wantCfg, cfg); diff != "" {
		t.Errorf("instanceConfig (-want +got):\n%s", diff)
	}
	cfg["volatile.uuid"] = "u"
	cfg["image.os"] = "busybox"
	wantLabels := map[string]string{
		"berth.managed":   "true",
		"berth.workspace": "/home/me/proj",
		"berth.workdir":   "/workspaces/proj",
		"berth.version":   "1.2.3",
		"berth.test":      "TestX/y",
		"team":            "a=b",
	}
	if diff := cmp.Diff(wantLabels, labelsFromConfig(cfg)); diff != "" {
		t.Errorf("labelsFromConfig (-want +got):\n%s", diff)
	}
	if !managed(cfg) || managed(map[string]string{"user.berth.managed": "yes"}) {
		t.Error("managed() is wrong")
	}
}

func TestDiskDevices(t *testing.T) {
	ws := backends.Mount{Host: "/h/ws", Container: "/workspaces/ws"}
	var many []backends.Mount
	for i := range 12 {
		many = append(many, backends.Mount{Host: fmt.Sprintf("/h/%d", i), Container: fmt.Sprintf("/c/%d", i)})
	}
	tests := []struct {
		name   string
		spec   backends.Spec
		shift  bool
		mounts []backends.Mount
	}{
		{"workspace given", backends.Spec{Workspace: ws.Host, Workdir: ws.Container, Mounts: []backends.Mount{ws}}, true, []backends.Mount{ws}},
		{"only the spec's mounts", backends.Spec{Workspace: ws.Host, Workdir: ws.Container, Mounts: []backends.Mount{{Host: "/x", Container: "/y"}}}, false,
			[]backends.Mount{{Host: "/x", Container: "/y"}}},
		{"no bind for volumes and tmpfs", backends.Spec{Mounts: []backends.Mount{ws, {Host: "v", Container: "/v", Type: "volume"}, {Container: "/t", Type: "tmpfs"}}}, false,
			[]backends.Mount{ws}},
		{"order kept past ten", backends.Spec{Mounts: many}, false, many},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs := diskDevices(tt.spec, tt.shift)
			for name, d := range devs {
				if d["type"] != "disk" || (d["shift"] == "true") != tt.shift {
					t.Errorf("device %s = %v", name, d)
				}
			}
			devs["root"] = map[string]string{"type": "disk", "path": "/", "pool": "default"}
			devs["gpu"] = map[string]string{"type": "gpu"}
			if diff := cmp.Diff(tt.mounts, mountsFromDevices(devs)); diff != "" {
				t.Errorf("mounts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveUser(t *testing.T) {
	passwd := []byte("# comment\nroot:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nbroken:x:zz:1:::\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	group := []byte("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
	tests := []struct {
		spec    string
		want    execUser
		wantErr string
	}{
		{"user", execUser{uid: 1000, gid: 1000, name: "user", home: "/home/user"}, ""},
		{"1000", execUser{uid: 1000, gid: 1000, name: "user", home: "/home/user"}, ""},
		{"65534", execUser{uid: 65534, gid: 65534, name: "nobody", home: "/nonexistent"}, ""},
		{"4242", execUser{uid: 4242, home: "/"}, ""},
		{"user:nogroup", execUser{uid: 1000, gid: 65534, name: "user", home: "/home/user"}, ""},
		{"4242:77", execUser{uid: 4242, gid: 77, home: "/"}, ""},
		{"root", execUser{name: "root", home: "/root"}, ""},
		{"ghost", execUser{}, "unable to find user ghost"},
		{"broken", execUser{}, "unable to find user broken"},
		{"user:ghosts", execUser{}, "unable to find group ghosts"},
	}
	for _, tt := range tests {
		got, err := resolveUser(tt.spec, passwd, group)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("resolveUser(%q): err = %v, want %q", tt.spec, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolveUser(%q) = %+v, %v; want %+v", tt.spec, got, err, tt.want)
		}
	}
}

func TestMapErr(t *testing.T) {
	b := &Backend{where: "/var/lib/incus/unix.socket"}
	dial := &net.OpError{Op: "dial", Net: "unix", Err: errors.New("connect: no such file or directory")}
	tests := []struct {
		name     string
		err      error
		notFound error
		want     error
	}{
		{"404 means the call's not-found", &rest.StatusError{Code: 404, Msg: "Instance not found"}, backends.ErrNotFound, backends.ErrNotFound},
		{"404 of an image", &rest.StatusError{Code: 404, Msg: "Image not found"}, backends.ErrImageNotFound, backends.ErrImageNotFound},
		{"no daemon", fmt.Errorf("Get: %w", dial), nil, backends.ErrUnavailable},
		{"not running", &rest.StatusError{Code: 400, Msg: "Instance is not running"}, backends.ErrNotFound, backends.ErrNotRunning},
		{"command not found", errors.New("Command not found"), nil, backends.ErrCommandNotFound},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), nil, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.mapErr("op", tt.err, tt.notFound)
			if !errors.Is(got, tt.want) {
				t.Errorf("mapErr(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if err := b.mapErr("op", dial, nil); !strings.Contains(err.Error(), "incusd") {
		t.Errorf("unavailable error %q does not say how to start incusd", err)
	}
}

func TestKeyedLocks(t *testing.T) {
	var k keyedLocks
	unlock, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := k.lock(context.Background(), "b") // other keys are free
	if err != nil {
		t.Fatal(err)
	}
	other()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.lock(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second lock of a held key: err = %v, want deadline", err)
	}
	unlock()
	again, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(k.m) != 0 {
		t.Errorf("%d lock entries left, want 0", len(k.m))
	}
}

func TestEntryPath(t *testing.T) {
	tests := []struct{ dir, name, want string }{
		{"/tmp", "a.txt", "/tmp/a.txt"},
		{"/tmp", "./d/a", "/tmp/d/a"},
		{"/tmp", "d/", "/tmp/d"},
		{"/tmp", "/etc/passwd", "/tmp/etc/passwd"},
		{"/tmp", "../../etc/passwd", "/tmp/etc/passwd"},
		{"/tmp", "./", "/tmp"},
		{"/", "x", "/x"},
	}
	for _, tt := range tests {
		if got := entryPath(tt.dir, tt.name); got != tt.want {
			t.Errorf("entryPath(%q, %q) = %q, want %q", tt.dir, tt.name, got, tt.want)
		}
	}
}

func TestExtract(t *testing.T) {
	mtime := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		before  map[string]*node // besides /dst
		hdrs    []tar.Header
		bodies  []string
		want    map[string]string // path -> description, for paths under /dst
		wantErr error
	}{
		{
			name:   "file",
			hdrs:   []tar.Header{{Name: "a.txt", Mode: 0o644, Size: 3, Uid: 1000, Gid: 1000, ModTime: mtime}},
			bodies: []string{"hi\n"},
			want:   map[string]string{"/dst/a.txt": `file 644 1000:1000 "hi\n" 1700000000`},
		},
		{
			name: "tree without directory entries, setuid kept",
			hdrs: []tar.Header{
				{Name: "./d/e/f", Mode: 0o4755, Size: 1},
				{Name: "d/link", Typeflag: tar.TypeSymlink, Linkname: "e/f"},
				{Name: "d/hard", Typeflag: tar.TypeLink, Linkname: "d/e/f"},
			},
			bodies: []string{"x", "", ""},
			want: map[string]string{
				"/dst/d":      "dir 755 0:0",
				"/dst/d/e":    "dir 755 0:0",
				"/dst/d/e/f":  `file 4755 0:0 "x" 0`,
				"/dst/d/link": "symlink e/f",
				"/dst/d/hard": `file 4755 0:0 "x" 0`,
			},
		},
		{
			name: "directory entry: mode, owner, time applied after its children",
			hdrs: []tar.Header{
				{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 5, Gid: 6, ModTime: mtime},
				{Name: "d/f", Mode: 0o600, Size: 0},
			},
			bodies: []string{"", ""},
			want: map[string]string{
				"/dst/d":   "dir 700 5:6 1700000000",
				"/dst/d/f": `file 600 0:0 "" 0`,
			},
		},
		{
			name:   "replaces an existing file by rename",
			before: map[string]*node{"/dst/bin": {kind: "file", mode: 0o755, data: "old"}},
			hdrs:   []tar.Header{{Name: "bin", Mode: 0o755, Size: 3}},
			bodies: []string{"new"},
			want:   map[string]string{"/dst/bin": `file 755 0:0 "new" 0`},
		},
		{
			name:   "cannot climb out",
			hdrs:   []tar.Header{{Name: "../../etc/x", Mode: 0o644, Size: 1}},
			bodies: []string{"z"},
			want:   map[string]string{"/dst/etc": "dir 755 0:0", "/dst/etc/x": `file 644 0:0 "z" 0`},
		},
		{
			name:    "fifo is not supported",
			hdrs:    []tar.Header{{Name: "p", Typeflag: tar.TypeFifo, Mode: 0o644}},
			bodies:  []string{""},
			wantErr: backends.ErrNotSupported,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemFS()
			m.nodes["/dst"] = &node{kind: "dir", mode: 0o755}
			for p, n := range tt.before {
				m.nodes[p] = n
			}
			err := extract(m, "/dst", tarOf(t, tt.hdrs, tt.bodies))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, m.describe("/dst/")); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("missing destination", func(t *testing.T) {
		if err := extract(newMemFS(), "/nope", tarOf(t, nil, nil)); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
}

func TestArchive(t *testing.T) {
	m := newMemFS()
	m.nodes["/src"] = &node{kind: "dir", mode: 0o750, uid: 1000, gid: 1000}
	m.nodes["/src/b.txt"] = &node{kind: "file", mode: 0o644, data: "bee"}
	m.nodes["/src/a"] = &node{kind: "dir", mode: 0o755}
	m.nodes["/src/a/link"] = &node{kind: "symlink", link: "../b.txt"}
	m.nodes["/src/fifo"] = &node{kind: "fifo"}
	tests := []struct {
		path string
		want []string
	}{
		{"/src/b.txt", []string{`b.txt 644 0:0 "" "bee"`}},
		{"/src", []string{
			`src/ 750 1000:1000 "" ""`,
			`src/a/ 755 0:0 "" ""`,
			`src/a/link 777 0:0 "../b.txt" ""`,
			`src/b.txt 644 0:0 "" "bee"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			fi, err := m.Lstat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := archive(m, tt.path, fi, &buf); err != nil {
				t.Fatal(err)
			}
			var got []string
			tr := tar.NewReader(&buf)
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				data, _ := io.ReadAll(tr)
				got = append(got, fmt.Sprintf("%s %o %d:%d %q %q", hdr.Name, hdr.Mode&0o7777, hdr.Uid, hdr.Gid, hdr.Linkname, data))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func tarOf(t *testing.T, hdrs []tar.Header, bodies []string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range hdrs {
		if hdrs[i].Typeflag == 0 {
			hdrs[i].Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(&hdrs[i]); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(bodies[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// memFS is an in-memory fileSystem. Hard links share a node.
type memFS struct{ nodes map[string]*node }

type node struct {
	kind     string // dir, file, symlink, fifo
	mode     fs.FileMode
	uid, gid int
	data     string
	link     string
	mtime    time.Time
}

// touched is the mtime a directory gets when an entry is added to it.
var touched = time.Unix(1, 0)

func newMemFS() *memFS { return &memFS{nodes: map[string]*node{"/": {kind: "dir", mode: 0o755}}} }

// describe renders the nodes under prefix for comparison.
func (m *memFS) describe(prefix string) map[string]string {
	out := map[string]string{}
	for p, n := range m.nodes {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		switch n.kind {
		case "symlink":
			out[p] = "symlink " + n.link
		case "file":
			out[p] = fmt.Sprintf("file %o %d:%d %q %d", modeBits(n.mode), n.uid, n.gid, n.data, unix(n.mtime))
		default:
			out[p] = fmt.Sprintf("%s %o %d:%d", n.kind, modeBits(n.mode), n.uid, n.gid)
			if !n.mtime.IsZero() && !n.mtime.Equal(touched) {
				out[p] += fmt.Sprintf(" %d", n.mtime.Unix())
			}
		}
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// modeBits renders a FileMode the octal way, setuid as 04000.
func modeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

func notExist(p string) error { return &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist} }

func (m *memFS) parentDir(p string) error {
	if n := m.nodes[path.Dir(p)]; n == nil || n.kind != "dir" {
		return notExist(path.Dir(p))
	}
	return nil
}

func (m *memFS) Lstat(p string) (fs.FileInfo, error) {
	n := m.nodes[p]
	if n == nil {
		return nil, notExist(p)
	}
	return memInfo{name: path.Base(p), n: n}, nil
}

func (m *memFS) Stat(p string) (fs.FileInfo, error) {
	if n := m.nodes[p]; n != nil && n.kind == "symlink" {
		return m.Lstat(path.Join(path.Dir(p), n.link))
	}
	return m.Lstat(p)
}

func (m *memFS) ReadDir(p string) ([]fs.FileInfo, error) {
	var out []fs.FileInfo
	for q, n := range m.nodes {
		if q != "/" && path.Dir(q) == p {
			out = append(out, memInfo{name: path.Base(q), n: n})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() > out[j].Name() }) // archive must sort
	return out, nil
}

func (m *memFS) ReadLink(p string) (string, error) { return m.nodes[p].link, nil }

func (m *memFS) Open(p string) (io.ReadCloser, error) {
	n := m.nodes[p]
	if n == nil {
		return nil, notExist(p)
	}
	return io.NopCloser(strings.NewReader(n.data)), nil
}

func (m *memFS) MkdirAll(p string) error {
	if p == "/" {
		return nil
	}
	if n := m.nodes[p]; n != nil {
		if n.kind != "dir" {
			return fmt.Errorf("%s: not a directory", p)
		}
		return nil
	}
	if err := m.MkdirAll(path.Dir(p)); err != nil {
		return err
	}
	m.nodes[p] = &node{kind: "dir", mode: 0o755}
	return nil
}

type memWriter struct {
	bytes.Buffer
	n *node
}

func (w *memWriter) Close() error { w.n.data = w.String(); return nil }

func (m *memFS) CreateExcl(p string) (io.WriteCloser, error) {
	if err := m.parentDir(p); err != nil {
		return nil, err
	}
	if m.nodes[p] != nil {
		return nil, fs.ErrExist
	}
	n := &node{kind: "file", mode: 0o644}
	m.nodes[p] = n
	return &memWriter{n: n}, nil
}

func (m *memFS) Chmod(p string, mode fs.FileMode) error {
	if m.nodes[p] == nil {
		return notExist(p)
	}
	m.nodes[p].mode = mode
	return nil
}

func (m *memFS) Chown(p string, uid, gid int) error {
	if m.nodes[p] == nil {
		return notExist(p)
	}
	m.nodes[p].uid, m.nodes[p].gid = uid, gid
	return nil
}

func (m *memFS) Chtimes(p string, _, mtime time.Time) error {
	if m.nodes[p] == nil {
		return notExist(p)
	}
	m.nodes[p].mtime = mtime
	return nil
}

func (m *memFS) Symlink(target, link string) error {
	if err := m.parentDir(link); err != nil {
		return err
	}
	m.nodes[link] = &node{kind: "symlink", mode: 0o777, link: target}
	return nil
}

func (m *memFS) Link(oldname, newname string) error {
	if m.nodes[oldname] == nil {
		return notExist(oldname)
	}
	m.nodes[newname] = m.nodes[oldname]
	return nil
}

func (m *memFS) Rename(oldname, newname string) error {
	n := m.nodes[oldname]
	if n == nil {
		return notExist(oldname)
	}
	delete(m.nodes, oldname)
	m.nodes[newname] = n
	// A new child touches its directory, as on a real one.
	if d := m.nodes[path.Dir(newname)]; d != nil {
		d.mtime = touched
	}
	return nil
}

func (m *memFS) Remove(p string) error {
	delete(m.nodes, p)
	return nil
}

type memInfo struct {
	name string
	n    *node
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return int64(len(i.n.data)) }
func (i memInfo) Mode() fs.FileMode {
	switch i.n.kind {
	case "dir":
		return fs.ModeDir | i.n.mode
	case "symlink":
		return fs.ModeSymlink | 0o777
	case "fifo":
		return fs.ModeNamedPipe | 0o644
	}
	return i.n.mode
}
func (i memInfo) ModTime() time.Time { return i.n.mtime }
func (i memInfo) IsDir() bool        { return i.n.kind == "dir" }
func (i memInfo) Sys() any           { return &sftp.FileStat{UID: uint32(i.n.uid), GID: uint32(i.n.gid)} }

func TestGoArch(t *testing.T) {
	tests := map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "sparc64": "sparc64",
	}
	for in, want := range tests {
		if got := goArch(in); got != want {
			t.Errorf("goArch(%q) = %q, want %q", in, got, want)
		}
	}
}
