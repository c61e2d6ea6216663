package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/features/featuretest"
)

// These tests hold berth to README's "Features": Features from a local
// folder, the loopback OCI registry and an https tarball, with options,
// dependsOn and installsAfter, built as layers on the base image; their
// containerEnv and hooks; the lock file; no rebuild for an unchanged
// configuration; offline from the cache.

// testFeatures is testdata/features.
var testFeatures, _ = filepath.Abs("../../testdata/features")

// featuresEnv gives the test's berth processes a Features cache of their
// own, and trust in the tarball server's certificate.
func featuresEnv(t *testing.T, caFile string) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	if caFile != "" {
		t.Setenv("SSL_CERT_FILE", caFile)
	}
}

// registryProxy forwards to the loopback registry from an address of its
// own, which the test can make unreachable by closing it.
func registryProxy(t *testing.T) *httptest.Server {
	t.Helper()
	target, _ := url.Parse("http://" + featuretest.Registry)
	srv := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(srv.Close)
	return srv
}

// copyFeature copies the test Feature name into ws's .devcontainer/features.
func copyFeature(t *testing.T, ws, name string) {
	t.Helper()
	if err := os.CopyFS(filepath.Join(ws, ".devcontainer", "features", name), os.DirFS(filepath.Join(testFeatures, name))); err != nil {
		t.Fatal(err)
	}
}

func TestFeaturesEndToEnd(t *testing.T) {
	e := needBackend(t, docker.Name)
	featuretest.NeedRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := fmt.Sprintf("berth-test/needs-base-%d", time.Now().UnixNano())
	if _, err := featuretest.Push(ctx, filepath.Join(testFeatures, "base"), "berth-test/base", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := featuretest.Push(ctx, filepath.Join(testFeatures, "needs-base"), repo, "1"); err != nil {
		t.Fatal(err)
	}
	tb := featuretest.ServeTarballs(t, filepath.Join(testFeatures, "envcap"))
	proxy := registryProxy(t)
	featuresEnv(t, tb.CAFile)
	ociRef := strings.TrimPrefix(proxy.URL, "http://") + "/" + repo + ":1"

	ws := workspace(t, e.b)
	copyFeature(t, ws, "hello")
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	// one Feature from each source, with options
	"features": {
		"./features/hello": {"greeting": "hi there"},
		"`+ociRef+`": {},
		"`+tb.URL("envcap")+`": {"flavor": "mint"},
	},
	"postCreateCommand": "echo config-postcreate >> /tmp/hooks.log",
}`)
	trustWorkspace(t, ws)

	out, errOut, code := cli(t, e, ws, "up")
	if code != 0 {
		t.Fatalf("up: code %d\n%s", code, errOut)
	}
	var inst struct{ Image string }
	if err := json.Unmarshal([]byte(out), &inst); err != nil || !strings.HasPrefix(inst.Image, "berth-features/") {
		t.Fatalf("up = %s (%v), want an image of berth-features", out, err)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", inst.Image).Run() })
	check := func(when string) {
		t.Helper()
		got, errOut, code := cli(t, e, ws, "exec", "--", "sh", "-c", "hello; envcap; echo $ENVCAP_HOME; cat /usr/local/share/berth-order /tmp/hooks.log /usr/local/share/berth-hello-users")
		want := "hi there\nenvcap mint\n/opt/envcap\nhello\nbase\nneeds-base\nenvcap\nfeature-postcreate\nconfig-postcreate\nhello remote=root home=/root container=root\n"
		if code != 0 || got != want {
			t.Errorf("%s: exec = %q (code %d, %s), want %q", when, got, code, errOut, want)
		}
	}
	check("first up")

	// The lock file pins the fetched Features, not the local one.
	var lock struct {
		Features map[string]struct{ Version, Resolved, Integrity string }
	}
	data, err := os.ReadFile(filepath.Join(ws, ".devcontainer", "devcontainer-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	baseRef := featuretest.Registry + "/berth-test/base:1"
	for _, ref := range []string{ociRef, tb.URL("envcap"), baseRef} {
		if e, ok := lock.Features[ref]; !ok || !strings.HasPrefix(e.Integrity, "sha256:") {
			t.Errorf("lock file: %s = %+v, %v", ref, e, ok)
		}
	}
	if len(lock.Features) != 3 {
		t.Errorf("lock file has %d entries, want 3:\n%s", len(lock.Features), data)
	}

	// The image says what it holds.
	label, err := exec.Command("docker", "image", "inspect", "-f", `{{index .Config.Labels "devcontainer.metadata"}}`, inst.Image).Output()
	if err != nil || !strings.Contains(string(label), `"id":"envcap"`) || !strings.Contains(string(label), `"capAdd":["SYS_PTRACE"]`) {
		t.Errorf("devcontainer.metadata label = %s (%v)", label, err)
	}

	// An unchanged configuration never rebuilds, and with the network
	// gone (and the lock file too) the cache serves.
	for _, offline := range []bool{false, true} {
		if offline {
			proxy.Close()
			tb.Server.Close()
			os.Remove(filepath.Join(ws, ".devcontainer", "devcontainer-lock.json"))
		}
		if _, errOut, code := cli(t, e, ws, "down", "--rm"); code != 0 {
			t.Fatalf("down --rm: %s", errOut)
		}
		out, errOut, code := cli(t, e, ws, "up")
		if code != 0 {
			t.Fatalf("up again (offline %v): code %d\n%s", offline, code, errOut)
		}
		var again struct{ Image string }
		json.Unmarshal([]byte(out), &again)
		if again.Image != inst.Image || strings.Contains(errOut, "berth: installing Feature") {
			t.Errorf("up again (offline %v) rebuilt: image %s, was %s\n%s", offline, again.Image, inst.Image, errOut)
		}
		check(fmt.Sprintf("up again (offline %v)", offline))
	}

	// That image, as another workspace's base: its label's hooks run, and
	// need trust first.
	other := workspace(t, e.b)
	writeFile(t, filepath.Join(other, ".devcontainer.json"), `{"image": "`+inst.Image+`"}`)
	if _, errOut, code := cli(t, e, other, "up"); code != 125 || !strings.Contains(errOut, "image metadata[3] (envcap) postCreateCommand") {
		t.Errorf("up of an image with hooks in its label, untrusted: code %d\n%s", code, errOut)
	}
	if _, errOut, code := cli(t, e, other, "up", "--trust"); code != 0 {
		t.Fatalf("up --trust: code %d\n%s", code, errOut)
	}
	got, errOut, code := cli(t, e, other, "exec", "--", "sh", "-c", "cat /tmp/hooks.log; echo $ENVCAP_HOME; envcap")
	if want := "feature-postcreate\n/opt/envcap\nenvcap mint\n"; code != 0 || got != want {
		t.Errorf("image metadata: exec = %q (code %d, %s), want %q", got, code, errOut, want)
	}
}

// A failed install names the Feature and ends with its output, and leaves
// no instance; an option of the wrong type is named at its line.
func TestFeaturesBadInput(t *testing.T) {
	e := needBackend(t, docker.Name)
	featuresEnv(t, "")
	ws := workspace(t, e.b)
	dir := filepath.Join(ws, ".devcontainer", "features", "broken")
	writeFile(t, filepath.Join(dir, "devcontainer-feature.json"), `{"id": "broken", "version": "0.1.0", "options": {"size": {"type": "boolean", "default": true}}}`)
	writeFile(t, filepath.Join(dir, "install.sh"), "#!/bin/sh\necho 'about to fail: no disk'\nexit 3\n")
	cfgFile := filepath.Join(ws, ".devcontainer", "devcontainer.json")
	writeFile(t, cfgFile, `{
	"image": "`+e.image+`",
	"features": {"./features/broken": {
		"size": "large"
	}}
}`)
	trustWorkspace(t, ws)
	_, errOut, code := cli(t, e, ws, "up")
	if code != 125 || !strings.Contains(errOut, cfgFile+`:4:11: features["./features/broken"].size: option "size" of ./features/broken is a boolean, got "large"`) {
		t.Errorf("up with a bad option: code %d, stderr:\n%s", code, errOut)
	}

	writeFile(t, cfgFile, `{"image": "`+e.image+`", "features": {"./features/broken": {}}}`)
	trustWorkspace(t, ws)
	_, errOut, code = cli(t, e, ws, "up")
	if code != 125 || !strings.Contains(errOut, "the Feature broken (./features/broken) failed to install") || !strings.Contains(errOut, "about to fail: no disk") {
		t.Errorf("up with a failing Feature: code %d, stderr:\n%s", code, errOut)
	}
	if _, err := find(t, e, ws); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("after a failed install: find = %v, want no instance", err)
	}
}

// Incus cannot build: the Features install in the new instance, before
// its hooks, with the same options.
func TestFeaturesIncus(t *testing.T) {
	e := needBackend(t, incus.Name)
	featuresEnv(t, "")
	ws := workspace(t, e.b)
	copyFeature(t, ws, "hello")
	writeFile(t, filepath.Join(ws, ".devcontainer", "devcontainer.json"), `{
	"image": "`+e.image+`",
	"features": {"./features/hello": {"greeting": "hi from incus", "loud": true}},
	"postCreateCommand": "hello > /tmp/hooks.log",
}`)
	trustWorkspace(t, ws)
	if _, errOut, code := cli(t, e, ws, "up"); code != 0 {
		t.Fatalf("up: code %d\n%s", code, errOut)
	}
	got, errOut, code := cli(t, e, ws, "exec", "--", "sh", "-c", "cat /tmp/hooks.log /usr/local/share/berth-order; ls /tmp/berth-features 2>&1 >/dev/null | wc -l")
	if want := "HI FROM INCUS\nhello\n1\n"; code != 0 || got != want {
		t.Errorf("exec = %q (code %d, %s), want %q", got, code, errOut, want)
	}
}
