package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"flag"
	"fmt"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthdev/berth/features/featuretest"
)

var (
	featuresOnly = flag.Bool("features", false, "only time a cold and a warm `berth up` of a Features config, beside `devcontainer up` (Docker, with the loopback registry of testdata/setup/registry.sh)")
	featureRuns  = flag.Int("feature-runs", 3, "runs of each cold and warm `up` in -features")
)

// featuresBench times `berth up` of a configuration with two Features (a
// local folder, and one from the loopback registry that depends on a
// third), cold (nothing cached or built) and warm (the container removed,
// the image and the Features kept), beside the devcontainer CLI's `up` of
// the same configuration.
func featuresBench(r *report, bin, image string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	feats, err := filepath.Abs("testdata/features")
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "berth-bench-features-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The devcontainer CLI reaches registries over https only: both tools
	// get the loopback registry through a TLS proxy whose certificate they
	// are told to trust.
	target, _ := url.Parse("http://" + featuretest.Registry)
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	proxy.StartTLS()
	defer proxy.Close()
	ca := filepath.Join(tmp, "ca.pem")
	var caPEM []byte
	for _, der := range proxy.TLS.Certificates[0].Certificate {
		caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		return err
	}
	registry := strings.TrimPrefix(proxy.URL, "https://")
	if _, err := featuretest.Push(ctx, filepath.Join(feats, "base"), "berth-test/base", "1"); err != nil {
		return fmt.Errorf("push to %s (is testdata/setup/registry.sh running?): %w", featuretest.Registry, err)
	}
	// needs-base, with its dependency through the proxy too.
	nb := filepath.Join(tmp, "needs-base")
	if err := os.CopyFS(nb, os.DirFS(filepath.Join(feats, "needs-base"))); err != nil {
		return err
	}
	meta, err := os.ReadFile(filepath.Join(nb, "devcontainer-feature.json"))
	if err != nil {
		return err
	}
	meta = bytes.ReplaceAll(meta, []byte(featuretest.Registry), []byte(registry))
	if err := os.WriteFile(filepath.Join(nb, "devcontainer-feature.json"), meta, 0o644); err != nil {
		return err
	}
	if _, err := featuretest.Push(ctx, nb, "berth-test/bench-needs-base", "1"); err != nil {
		return err
	}

	// A workspace per run: each cold run starts from nothing the last one
	// built, for berth and the devcontainer CLI alike.
	newWS := func(name string) (string, error) {
		ws := filepath.Join(tmp, name)
		dc := filepath.Join(ws, ".devcontainer")
		if err := os.CopyFS(filepath.Join(dc, "features", "hello"), os.DirFS(filepath.Join(feats, "hello"))); err != nil {
			return "", err
		}
		cfg := fmt.Sprintf(`{
	"image": %q,
	"features": {
		"./features/hello": {"greeting": "hi"},
		"%s/berth-test/bench-needs-base:1": {}
	}
}`, image, registry)
		return ws, os.WriteFile(filepath.Join(dc, "devcontainer.json"), []byte(cfg), 0o644)
	}
	timeCmd := func(env []string, name string, args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		err := cmd.Run()
		d := time.Since(t0)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(out.String(), 1500))
		}
		return d, nil
	}
	quiet := func(name string, args ...string) { _ = exec.CommandContext(ctx, name, args...).Run() }

	type row struct {
		name       string
		cold, warm []time.Duration
		err        error
	}
	var rows []row

	// berth: a fresh Features cache per cold run; warm keeps it and the image.
	berthRow := row{name: "**berth** `berth up`"}
	for i := range *featureRuns {
		ws, err := newWS(fmt.Sprintf("berth-%d", i))
		if err != nil {
			return err
		}
		env := []string{"XDG_CACHE_HOME=" + filepath.Join(tmp, fmt.Sprintf("cache-%d", i)), "SSL_CERT_FILE=" + ca}
		up := []string{"--backend", "docker", "--workspace", ws, "up", "--trust"}
		d, err := timeCmd(env, bin, up...)
		if err != nil {
			berthRow.err = err
			break
		}
		berthRow.cold = append(berthRow.cold, d)
		quiet(bin, "--backend", "docker", "--workspace", ws, "down", "--rm")
		if d, err = timeCmd(env, bin, up...); err != nil {
			berthRow.err = err
			break
		}
		berthRow.warm = append(berthRow.warm, d)
		quiet(bin, "--backend", "docker", "--workspace", ws, "down", "--rm")
		removeImages(ctx, "berth-features/*")
	}
	rows = append(rows, berthRow)

	dcRow := row{name: "`devcontainer up` (devcontainer CLI)"}
	if dc, err := devcontainerCLI(); err != nil {
		dcRow.err = err
	} else {
		for i := range *featureRuns {
			ws, err := newWS(fmt.Sprintf("dc-%d", i))
			if err != nil {
				return err
			}
			up := []string{"up", "--workspace-folder", ws}
			env := []string{"NODE_EXTRA_CA_CERTS=" + ca}
			d, err := timeCmd(env, dc, up...)
			if err != nil {
				dcRow.err = err
				break
			}
			dcRow.cold = append(dcRow.cold, d)
			removeContainers(ctx, "devcontainer.local_folder="+ws)
			if d, err = timeCmd(env, dc, up...); err != nil {
				dcRow.err = err
				break
			}
			dcRow.warm = append(dcRow.warm, d)
			removeContainers(ctx, "devcontainer.local_folder="+ws)
			removeImages(ctx, "vsc-dc-"+fmt.Sprint(i)+"-*")
		}
	}
	rows = append(rows, dcRow)

	r.printf("## Features: `up` cold and warm\n\n| command | cold p50 | warm p50 | runs |\n|---|---|---|---|\n")
	var notes []string
	for _, rw := range rows {
		if len(rw.cold) == 0 || len(rw.warm) == 0 {
			notes = append(notes, fmt.Sprintf("%s: no figure: %v", rw.name, rw.err))
			continue
		}
		r.printf("| %s | %s | %s | %d |\n", rw.name, ms(pct(rw.cold, 0.5)), ms(pct(rw.warm, 0.5)), len(rw.cold))
		if rw.err != nil {
			notes = append(notes, fmt.Sprintf("%s: stopped early: %v", rw.name, rw.err))
		}
	}
	for _, n := range notes {
		r.printf("\n%s\n", n)
	}
	return nil
}

// removeImages removes the images whose reference matches pattern.
func removeImages(ctx context.Context, pattern string) {
	out, err := exec.CommandContext(ctx, "docker", "images", "-q", "--filter", "reference="+pattern).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.CommandContext(ctx, "docker", append([]string{"rmi", "-f"}, ids...)...).Run()
	}
}

// removeContainers removes the containers with the label label.
func removeContainers(ctx context.Context, label string) {
	out, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label="+label).Output()
	if err != nil {
		return
	}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
