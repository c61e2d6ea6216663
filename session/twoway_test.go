package session

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/agent"
	"github.com/google/go-cmp/cmp"
)

// Two-way sync's rules, one case each: which side wins, and when a
// conflict copy is kept.
func TestPlanPull(t *testing.T) {
	f := func(size, mtime int64) fileState { return fileState{typ: 'f', perm: 0o644, size: size, mtime: mtime} }
	dir := fileState{typ: 'd', perm: 0o755}
	base := map[string]fileState{
		"same":                     f(1, 10),
		"ctr-changed":              f(1, 10),
		"both-changed":             f(1, 10),
		"host-removed":             f(1, 10),
		"ctr-removed":              f(1, 10),
		"ctr-removed-host-changed": f(1, 10),
		"d":                        dir,
	}
	host := map[string]fileState{
		"same":                     f(1, 10),
		"ctr-changed":              f(1, 10),
		"both-changed":             f(2, 20),
		"ctr-removed":              f(1, 10),
		"ctr-removed-host-changed": f(3, 30),
		"alike":                    f(5, 50),
		"built-both-host-newer":    f(1, 90),
		"built-both-ctr-newer":     f(1, 10),
		"d":                        dir,
		"ignored/x":                f(1, 1),
	}
	cur := map[string]fileState{
		"same":                  f(1, 10),
		"ctr-changed":           f(2, 11),
		"both-changed":          f(3, 12),
		"host-removed":          f(1, 10),
		"new":                   f(4, 40),
		"alike":                 f(5, 50),
		"built-both-host-newer": f(1, 80),
		"built-both-ctr-newer":  f(1, 80),
		"d":                     dir,
		"d/y":                   f(1, 10),
		"ignored/y":             f(1, 1),
	}
	got := planPull(cur, base,
		func(rel string) (fileState, bool) { st, ok := host[rel]; return st, ok },
		func(rel string, _ bool) bool { return !strings.HasPrefix(rel, "ignored/") })
	want := pullPlan{
		alike:     map[string]fileState{"alike": f(5, 50)},
		pulls:     []string{"built-both-ctr-newer", "ctr-changed", "d/y", "new"},
		conflicts: []string{"both-changed"},
		pushes:    []string{"both-changed", "built-both-host-newer"},
		gone:      []string{"ctr-removed"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(pullPlan{}, fileState{})); diff != "" {
		t.Errorf("planPull (-want +got):\n%s", diff)
	}
}

// The agent's scan is read with suspicion: it runs in the container.
func TestParseScan(t *testing.T) {
	got, err := parseScan("f644 3 100\x00a/b.txt\x00\x00d755 0 5\x00a\x00\x00l777 0 7\x00a/l\x00b.txt\x00")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]fileState{
		"a/b.txt": {typ: 'f', perm: 0o644, size: 3, mtime: 100},
		"a":       {typ: 'd', perm: 0o755},
		"a/l":     {typ: 'l', link: "b.txt"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(fileState{})); diff != "" {
		t.Errorf("parseScan (-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		"f644 3 100\x00../x\x00\x00",
		"f644 3 100\x00/etc/passwd\x00\x00",
		"f644 3 100\x00a/../../x\x00\x00",
		"x644 3 100\x00a\x00\x00",
		"f644 -3 100\x00a\x00\x00",
		"f644 3 100\x00a\x00",
		"\x00a\x00\x00",
	} {
		if _, err := parseScan(bad); err == nil {
			t.Errorf("parseScan(%q) accepted", bad)
		}
	}
}

// A file's state as berth sends it in a batch must read as the agent
// states the same file, or every two-way edit would look like a conflict.
func TestAgentStateMatchesAgent(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		body string
		perm os.FileMode
		mt   time.Time
	}{
		{"empty", "", 0o644, time.Unix(1_700_000_000, 0)},
		{"executable", "#!/bin/sh\n", 0o755, time.Unix(1_600_000_123, 0)},
		{"odd bits", strings.Repeat("x", 70000), 0o4711, time.Unix(12, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tt.perm)
			os.Chtimes(p, tt.mt, tt.mt)
			st, ok := hostState(p)
			fi, err := os.Lstat(p)
			if !ok || err != nil {
				t.Fatal(err)
			}
			if got, want := st.agentState(), agent.FileState(fi); got != want {
				t.Errorf("berth says %q, the agent %q", got, want)
			}
		})
	}
}

func TestScanLimit(t *testing.T) {
	tests := []struct {
		maxFiles int64
		want     int64
	}{
		{DefaultSyncMaxFiles, 51_200_000},
		{10, MaxRunOutput}, // never below Run's cap
	}
	for _, tt := range tests {
		s := &syncer{opts: syncOptions{maxFiles: tt.maxFiles}}
		if got := s.scanLimit(); got != tt.want {
			t.Errorf("maxFiles %d: scanLimit = %d, want %d", tt.maxFiles, got, tt.want)
		}
	}
}
