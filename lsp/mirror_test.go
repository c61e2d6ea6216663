package lsp

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/pathmap"
)

// TestMirror mirrors "container" files (host files, through hostExec),
// reuses them while they are unchanged, and fetches them again when their
// size or mtime changes.
func TestMirror(t *testing.T) {
	lib := t.TempDir() // the container's library
	src := filepath.Join(lib, "os.py")
	if err := os.WriteFile(src, []byte("def join(*a): pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	// An earlier image's mirror of this instance goes.
	stale := MirrorDir(cache, "berth-x", "id0", "img:1")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := MirrorDir(cache, "berth-x", "id1", "img:2")
	mr, err := NewMirror(dir, hostExec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the earlier mirror %s is still there", stale)
	}
	ctx := context.Background()
	missing := filepath.Join(lib, "nope.py")
	have := mr.Ensure(ctx, []string{src, lib, missing, src})
	if !have[src] || have[lib] || have[missing] {
		t.Fatalf("Ensure = %v, want only %s", have, src)
	}
	host := filepath.Join(dir, src)
	check := func(want string) {
		t.Helper()
		got, err := os.ReadFile(host)
		if err != nil || string(got) != want {
			t.Fatalf("mirror holds %q (%v), want %q", got, err, want)
		}
		if fi, _ := os.Stat(host); fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("mirror file is writable: %v", fi.Mode())
		}
	}
	check("def join(*a): pass\n")

	// pip install in the container: the next result that names it brings
	// the new content.
	if err := os.WriteFile(src, []byte("def join(*parts): return '/'.join(parts)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	if have := mr.Ensure(ctx, []string{src}); !have[src] {
		t.Fatal("not mirrored after a change")
	}
	check("def join(*parts): return '/'.join(parts)\n")

	// Through the rewriter: a container-only URI becomes the mirror's, and
	// back.
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: "/home/me/proj", Container: "/workspaces/proj"}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRewriter(m, nil, mr, exists)
	out, err := r.ToEditor(ctx, []byte(`{"id":1,"result":{"uri":"file://`+src+`","range":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	mirrorURI := pathmap.FileURI(host)
	if !strings.Contains(string(out), `"uri":"`+mirrorURI+`"`) {
		t.Fatalf("ToEditor = %s, want the mirror's URI %s", out, mirrorURI)
	}
	back, err := r.ToServer([]byte(`{"method":"textDocument/hover","params":{"textDocument":{"uri":"` + mirrorURI + `"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(back), `"uri":"file://`+src+`"`) {
		t.Errorf("ToServer = %s, want the container URI of %s", back, src)
	}
}

// TestSyncIgnored: in sync mode a workspace file the sync ignored is only
// in the container, so it is mirrored too.
func TestSyncIgnored(t *testing.T) {
	cont := t.TempDir() // the container's workspace
	hostWS := t.TempDir()
	venv := filepath.Join(cont, ".venv", "lib.py")
	if err := os.MkdirAll(filepath.Dir(venv), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(venv, []byte("x = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostWS, "a.py"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := pathmap.New(pathmap.Posix, []pathmap.Mount{{Host: hostWS, Container: cont}})
	if err != nil {
		t.Fatal(err)
	}
	dir := MirrorDir(t.TempDir(), "i", "id", "img")
	mr, err := NewMirror(dir, hostExec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRewriter(m, m, mr, exists)
	out, err := r.ToEditor(context.Background(), []byte(`{"id":1,"result":[{"uri":"file://`+venv+`"},{"uri":"file://`+cont+`/a.py"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"uri":"` + pathmap.FileURI(filepath.Join(dir, venv)) + `"},{"uri":"file://` + hostWS + `/a.py"}]`
	if !strings.Contains(string(out), want) {
		t.Errorf("got %s, want %s", out, want)
	}
}

// TestMirrorMany: a result naming many container files mirrors them all.
func TestMirrorMany(t *testing.T) {
	lib := t.TempDir()
	var paths []string
	for i := range 25 {
		p := filepath.Join(lib, fmt.Sprintf("m%02d.py", i))
		if err := os.WriteFile(p, []byte(strings.Repeat("#", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	dir := MirrorDir(t.TempDir(), "i", "id", "img")
	mr, err := NewMirror(dir, hostExec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	have := mr.Ensure(context.Background(), paths)
	for i, p := range paths {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if !have[p] || err != nil || string(got) != strings.Repeat("#", i) {
			t.Errorf("%s: mirrored %v, %q, %v", p, have[p], got, err)
		}
	}
}
