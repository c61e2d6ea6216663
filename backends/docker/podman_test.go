package docker

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestKeepIDMode(t *testing.T) {
	tests := []struct {
		user, network string
		rootless      bool
		uid, gid      int // as looked up in the image; -1 unknown
		want          string
	}{
		{"vscode", "", true, 1000, 1000, "keep-id:uid=1000,gid=1000"},
		{"1000:2000", "bridge", true, 1000, 2000, "keep-id:uid=1000,gid=2000"},
		{"vscode", "", true, -1, -1, "keep-id"}, // not in the image
		{"vscode", "", false, 1000, 1000, ""},   // rootful Podman or Docker
		{"root", "", true, 0, 0, ""},
		{"0:0", "", true, 0, 0, ""},
		{"toor", "", true, 0, 0, ""}, // a name for uid 0
		{"", "", true, -1, -1, ""},
		{"vscode", "host", true, 1000, 1000, ""},
	}
	for _, tt := range tests {
		if got := keepIDMode(tt.user, tt.network, tt.rootless, tt.uid, tt.gid); got != tt.want {
			t.Errorf("keepIDMode(%q, %q, %v, %d, %d) = %q, want %q", tt.user, tt.network, tt.rootless, tt.uid, tt.gid, got, tt.want)
		}
	}
}

func TestLookupIDs(t *testing.T) {
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n# a comment\nvscode:x:1000:1001::/home/vscode:/bin/bash\nshort:x\n")
	group := []byte("root:x:0:\nvscode:x:1001:\ndev:x:2000:vscode\n")
	tests := []struct {
		user     string
		uid, gid int
		err      bool
	}{
		{"vscode", 1000, 1001, false},
		{"1000", 1000, 1001, false}, // the entry's group
		{"vscode:dev", 1000, 2000, false},
		{"vscode:3000", 1000, 3000, false},
		{"4242", 4242, 4242, false}, // no entry: its own gid
		{"4242:dev", 4242, 2000, false},
		{"nobody", -1, -1, true},
		{"vscode:nogroup", -1, -1, true},
		{"short", -1, -1, true},
	}
	for _, tt := range tests {
		uid, gid, err := lookupIDs(tt.user, passwd, group)
		if uid != tt.uid || gid != tt.gid || (err != nil) != tt.err {
			t.Errorf("lookupIDs(%q) = %d, %d, %v; want %d, %d, error %v", tt.user, uid, gid, err, tt.uid, tt.gid, tt.err)
		}
	}
}

func TestPodmanEndpoint(t *testing.T) {
	run := t.TempDir()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := PodmanEndpoint(env(map[string]string{"CONTAINER_HOST": "ssh://me@box/run/podman/podman.sock"})); got.Host != "ssh://me@box/run/podman/podman.sock" || !got.Remote() {
		t.Errorf("CONTAINER_HOST: %+v", got)
	}
	// The rootless socket, when it exists, comes first.
	if err := os.MkdirAll(filepath.Join(run, "podman"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "podman", "podman.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := PodmanEndpoint(env(map[string]string{"XDG_RUNTIME_DIR": run})); got.Host != "unix://"+run+"/podman/podman.sock" || got.Remote() {
		t.Errorf("rootless: %+v", got)
	}
}

// TestPodmanInfoRetried: a failed ask of rootless Podman's info (as when
// it is slow under load) is asked again, not remembered as "rootful";
// the answer, once had, is.
func TestPodmanInfoRetried(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var asks atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("API-Version", "1.41")
		case strings.HasSuffix(r.URL.Path, "/libpod/info"):
			if asks.Add(1) == 1 {
				http.Error(w, "busy", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, `{"host":{"cgroupVersion":"v1","security":{"rootless":true}}}`)
		default:
			http.Error(w, "no", http.StatusInternalServerError)
		}
	})}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-served })

	b, err := NewAt(slog.New(slog.DiscardHandler), "test", PodmanName, Endpoint{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.MapsIDs() {
		t.Fatal("MapsIDs with no answer: want false")
	}
	if !b.MapsIDs() || !b.info().rootless || !b.info().cgroupV1 {
		t.Fatalf("after an answer: %+v, want rootless on cgroup v1", b.info())
	}
	if got := asks.Load(); got != 2 {
		t.Errorf("Podman's info asked %d times, want 2", got)
	}
}
