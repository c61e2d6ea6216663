package features_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/features"
	"github.com/berthdev/berth/features/featuretest"
)

// testFeatures is testdata/features, the test Features.
var testFeatures, _ = filepath.Abs("../testdata/features")

// workspace writes a devcontainer.json (and copies the named test
// Features next to it, under features/) and parses it.
func workspace(t *testing.T, config string, local ...string) *devcontainer.Config {
	t.Helper()
	ws := t.TempDir()
	dir := filepath.Join(ws, ".devcontainer")
	for _, name := range local {
		copyDir(t, filepath.Join(testFeatures, name), filepath.Join(dir, "features", name))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "devcontainer.json")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := devcontainer.Discover(ws, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func resolve(t *testing.T, cfg *devcontainer.Config, opts features.Options) (*features.Set, error) {
	t.Helper()
	if opts.CacheDir == "" {
		opts.CacheDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return features.Resolve(ctx, cfg, opts)
}

func TestLocalOptions(t *testing.T) {
	cfg := workspace(t, `{
	"image": "x",
	// options as real configs write them
	"features": {
		"./features/hello": {"greeting": "hi there", "loud": true},
	},
}`, "hello")
	set, err := resolve(t, cfg, features.Options{WriteLock: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Features) != 1 {
		t.Fatalf("features = %v", set.Refs())
	}
	f := set.Features[0]
	want := map[string]string{"GREETING": "hi there", "LOUD": "true"}
	if diff := cmp.Diff(want, f.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if f.ID != "hello" || f.Version != "1.2.0" || f.Kind != features.KindLocal {
		t.Errorf("feature = %+v", f)
	}
	// Local Features have nothing to lock.
	if _, err := os.Stat(set.LockFile); !os.IsNotExist(err) {
		t.Errorf("lock file written for local Features only: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg := workspace(t, `{"image": "x", "features": {"./features/hello": {}}}`, "hello")
	set, err := resolve(t, cfg, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"GREETING": "hello", "LOUD": "false"}
	if diff := cmp.Diff(want, set.Features[0].Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name, config string
		local        []string
		sentinel     error
		want         string // in the message, after the file's name
	}{
		{
			name:     "boolean option given a word",
			config:   "{\"image\": \"x\",\n\"features\": {\"./features/hello\": {\n\t\"loud\": \"very\"}}}",
			local:    []string{"hello"},
			sentinel: features.ErrBadFeature,
			want:     `devcontainer.json:3:10: features["./features/hello"].loud: option "loud" of ./features/hello is a boolean, got "very"`,
		},
		{
			name:     "string option given a boolean",
			config:   `{"image": "x", "features": {"./features/hello": {"greeting": false}}}`,
			local:    []string{"hello"},
			sentinel: features.ErrBadFeature,
			want:     `devcontainer.json:1:62: features["./features/hello"].greeting: option "greeting" of ./features/hello is a string`,
		},
		{
			name:     "missing folder",
			config:   "{\"image\": \"x\",\n  \"features\": {\"./features/nope\": {}}}",
			sentinel: features.ErrUnresolved,
			want:     `devcontainer.json:2:16: features["./features/nope"]: feature not resolved: no Feature folder at`,
		},
		{
			name:     "unreachable registry",
			config:   `{"image": "x", "features": {"127.0.0.1:1/nobody/feature:1": {}}}`,
			sentinel: features.ErrUnresolved,
			want:     `devcontainer.json:1:29: features["127.0.0.1:1/nobody/feature:1"]: feature not resolved: 127.0.0.1:1/nobody/feature:1`,
		},
		{
			name:     "enum",
			config:   `{"image": "x", "features": {"./features/envcap": {"flavor": "sour"}}}`,
			local:    []string{"envcap"},
			sentinel: features.ErrBadFeature,
			want:     `option "flavor" of ./features/envcap must be one of plain, mint, got "sour"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := workspace(t, tt.config, tt.local...)
			_, err := resolve(t, cfg, features.Options{})
			if !errors.Is(err, tt.sentinel) || !errors.Is(err, devcontainer.ErrBadConfig) {
				t.Fatalf("err = %v, want %v and ErrBadConfig", err, tt.sentinel)
			}
			var ce *devcontainer.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, not a ConfigError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %s", err, tt.want)
			}
		})
	}
}

// writeFeature makes a local Feature with the given extra
// devcontainer-feature.json keys.
func writeFeature(t *testing.T, dir, id, extra string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "devcontainer-feature.json"), []byte(fmt.Sprintf(`{"id": %q, "version": "1.0.0"%s}`, id, extra)), 0o644)
	os.WriteFile(filepath.Join(dir, "install.sh"), []byte("#!/bin/sh\n"), 0o755)
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name     string
		feats    map[string]string // id -> extra keys
		override string
		want     []string
		cycle    string
	}{
		{name: "alphabetical in one round", feats: map[string]string{"b": "", "a": "", "c": ""}, want: []string{"./a", "./b", "./c"}},
		{name: "installsAfter", feats: map[string]string{"a": `, "installsAfter": ["c"]`, "b": "", "c": ""}, want: []string{"./b", "./c", "./a"}},
		{name: "override", feats: map[string]string{"a": "", "b": "", "c": ""}, override: `["./c", "./b"]`, want: []string{"./c", "./b", "./a"}},
		{name: "override cannot break installsAfter", feats: map[string]string{"a": "", "b": `, "installsAfter": ["a"]`}, override: `["./b"]`, want: []string{"./a", "./b"}},
		{name: "cycle", feats: map[string]string{"a": `, "installsAfter": ["b"]`, "b": `, "installsAfter": ["c"]`, "c": `, "installsAfter": ["a"]`}, cycle: "./a -> ./b -> ./c -> ./a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := t.TempDir()
			var entries []string
			for _, id := range slices.Sorted(maps.Keys(tt.feats)) {
				extra := tt.feats[id]
				writeFeature(t, filepath.Join(ws, ".devcontainer", id), id, extra)
				entries = append(entries, fmt.Sprintf("%q: {}", "./"+id))
			}
			cfgText := `{"image": "x", "features": {` + strings.Join(entries, ",") + `}`
			if tt.override != "" {
				cfgText += `, "overrideFeatureInstallOrder": ` + tt.override
			}
			os.WriteFile(filepath.Join(ws, ".devcontainer", "devcontainer.json"), []byte(cfgText+"}"), 0o644)
			cfg, err := devcontainer.Discover(ws, "", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			set, err := resolve(t, cfg, features.Options{})
			if tt.cycle != "" {
				if !errors.Is(err, features.ErrBadFeature) || !strings.Contains(err.Error(), "cycle: "+tt.cycle) {
					t.Fatalf("err = %v, want the cycle %s", err, tt.cycle)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, set.Refs()); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFetchAndCache fetches from the loopback registry (with a dependency)
// and from an https tarball, writes the lock file, and then works offline
// from the cache: through the lock file, and without it.
func TestFetchAndCache(t *testing.T) {
	featuretest.NeedRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	repo := fmt.Sprintf("berth-test/unit-%d", time.Now().UnixNano())
	for _, f := range []struct{ dir, repo string }{{"base", "berth-test/base"}, {"needs-base", repo}} {
		if _, err := featuretest.Push(ctx, filepath.Join(testFeatures, f.dir), f.repo, "1"); err != nil {
			t.Fatal(err)
		}
	}
	tb := featuretest.ServeTarballs(t, filepath.Join(testFeatures, "envcap"))
	ref := featuretest.Registry + "/" + repo + ":1"
	cfg := workspace(t, fmt.Sprintf(`{"image": "x", "features": {%q: {}, %q: {"flavor": "mint"}}}`, ref, tb.URL("envcap")))
	cache := t.TempDir()
	opts := features.Options{CacheDir: cache, HTTP: tb.Server.Client(), WriteLock: true}
	set, err := resolve(t, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{featuretest.Registry + "/berth-test/base:1", ref, tb.URL("envcap")}
	if diff := cmp.Diff(want, set.Refs()); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	envcap := set.Features[2]
	if envcap.Env["FLAVOR"] != "mint" || envcap.Meta.PostCreate == nil || len(envcap.Meta.CapAdd) != 1 {
		t.Errorf("envcap = %+v", envcap)
	}
	data, err := os.ReadFile(set.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Features map[string]struct{ Version, Resolved, Integrity string }
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	if e := lock.Features[ref]; e.Version != "1.0.0" || !strings.HasPrefix(e.Resolved, featuretest.Registry+"/"+repo+"@sha256:") || e.Integrity != strings.TrimPrefix(e.Resolved, featuretest.Registry+"/"+repo+"@") {
		t.Errorf("lock entry %s = %+v", ref, e)
	}
	if e := lock.Features[tb.URL("envcap")]; e.Resolved != tb.URL("envcap") || !strings.HasPrefix(e.Integrity, "sha256:") {
		t.Errorf("lock entry of the tarball = %+v", e)
	}
	hash := set.Hash()

	// Offline, through the lock file, and then through the cache alone.
	tb.Server.Close()
	for _, withLock := range []bool{true, false} {
		if !withLock {
			os.Remove(set.LockFile)
		}
		again, err := resolve(t, cfg, features.Options{CacheDir: cache, Offline: true})
		if err != nil {
			t.Fatalf("offline (lock file %v): %v", withLock, err)
		}
		if len(again.Unresolved) != 0 || again.Hash() != hash {
			t.Errorf("offline (lock file %v): unresolved %v, hash changed %v", withLock, again.Unresolved, again.Hash() != hash)
		}
	}
	// A cold cache offline lists what it lacks.
	cold, err := resolve(t, cfg, features.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(cold.Unresolved) != 2 {
		t.Errorf("unresolved = %v, want both", cold.Unresolved)
	}
}
