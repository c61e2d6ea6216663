package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tarOf is a tar of name → content; a name ending in / is a directory.
func tarOf(t *testing.T, files map[string]string, mtime time.Time) func(io.Writer) error {
	return func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for name, body := range files {
			h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mtime, Typeflag: tar.TypeReg}
			if strings.HasSuffix(name, "/") {
				h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.WriteString(tw, body); err != nil {
				return err
			}
		}
		return tw.Close()
	}
}

func TestSyncStream(t *testing.T) {
	c, _ := newClient(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := c.SyncStream(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	then := time.Unix(1_700_000_000, 0)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "<gone>"
		}
		return string(b)
	}
	// The state berth would expect of a.txt after batch 1.
	synced := "f644 3 1700000000"
	tests := []struct {
		name          string
		before        func() // a change inside, before the batch
		batch         Batch
		wantConflicts []string
		wantErr       bool
		want          map[string]string
	}{
		{
			name:  "files and a directory",
			batch: Batch{Tar: tarOf(t, map[string]string{"w/": "", "w/a.txt": "one", "w/b.txt": "bee"}, then)},
			want:  map[string]string{"w/a.txt": "one", "w/b.txt": "bee"},
		},
		{
			name:  "remove, and nothing to extract",
			batch: Batch{Remove: []string{"w/b.txt", "../escape", "/w/none"}},
			want:  map[string]string{"w/a.txt": "one", "w/b.txt": "<gone>"},
		},
		{
			name:  "expected state found: replaced",
			batch: Batch{Expect: map[string]string{"w/a.txt": synced}, Tar: tarOf(t, map[string]string{"w/a.txt": "two"}, then)},
			want:  map[string]string{"w/a.txt": "two", "w/a.txt" + ConflictSuffix: "<gone>"},
		},
		{
			name: "changed inside since: kept as the conflict copy",
			before: func() {
				os.WriteFile(filepath.Join(dir, "w/a.txt"), []byte("inside"), 0o644)
			},
			batch:         Batch{Expect: map[string]string{"/w/a.txt": synced}, Tar: tarOf(t, map[string]string{"w/a.txt": "host"}, then)},
			wantConflicts: []string{"w/a.txt"},
			want:          map[string]string{"w/a.txt": "host", "w/a.txt" + ConflictSuffix: "inside"},
		},
		{
			name:    "a bad tar fails the batch, not the stream",
			batch:   Batch{Tar: func(w io.Writer) error { _, err := w.Write(bytes.Repeat([]byte{'x'}, 1024)); return err }},
			wantErr: true,
		},
		{
			name:  "the stream goes on",
			batch: Batch{Tar: tarOf(t, map[string]string{"w/c.txt": strings.Repeat("c", 3<<20)}, then)},
			want:  map[string]string{"w/c.txt": strings.Repeat("c", 3<<20)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			got, err := s.Apply(ctx, tt.batch)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Apply: %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantConflicts, got); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
			for name, want := range tt.want {
				if got := read(name); got != want {
					t.Errorf("%s = %.20q, want %.20q", name, got, want)
				}
			}
		})
	}
	if fi, err := os.Stat(filepath.Join(dir, "w/c.txt")); err != nil || !fi.ModTime().Equal(then) {
		t.Errorf("mtime not kept: %v %v", fi, err)
	}
}

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name    string
		frames  func(w io.Writer)
		want    string
		wantErr bool
	}{
		{"empty", func(w io.Writer) { writeFrame(w, frameEOF, nil) }, "", false},
		{"two frames", func(w io.Writer) {
			writeFrame(w, frameStdin, []byte("ab"))
			writeFrame(w, frameStdin, []byte("cd"))
			writeFrame(w, frameEOF, nil)
		}, "abcd", false},
		{"cut short", func(w io.Writer) { writeFrame(w, frameStdin, []byte("ab")) }, "ab", true},
		{"a stray frame", func(w io.Writer) { writeFrame(w, frameExit, []byte("{}")) }, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.frames(&b)
			got, err := io.ReadAll(&frameReader{r: &b})
			if string(got) != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSyncStreamNeedsProto(t *testing.T) {
	c := &Client{proto: [2]int{ProtoPorts, minProto}}
	if _, err := c.SyncStream(context.Background(), "/"); err != ErrNoSyncStream {
		t.Fatalf("got %v, want ErrNoSyncStream", err)
	}
}
