// Package featuretest publishes test Features the ways berth fetches
// them: to the loopback OCI registry that testdata/setup/registry.sh
// starts, and as https tarballs from a server on loopback.
package featuretest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/features"
)

// Registry is the loopback registry of testdata/setup/registry.sh.
const Registry = "127.0.0.1:5000"

// NeedRegistry skips t when the registry does not answer, or fails it
// when the tests must not skip (CI=true, or BERTH_REQUIRE naming
// "registry" or "all").
func NeedRegistry(t testing.TB) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + Registry + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return
		}
		err = fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	if backendtest.Required("registry") {
		t.Fatalf("the loopback registry is required here but does not answer (run testdata/setup/registry.sh): %v", err)
	}
	t.Skipf("no registry on %s (testdata/setup/registry.sh starts one): %v", Registry, err)
}

// Tar is the tar of a Feature's folder, as the devcontainer CLI packs
// one: its files at the root, "./"-prefixed.
func Tar(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		name := "./" + filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Push publishes the Feature in dir to the loopback registry as
// repo:tag (an OCI artifact: a layer of the devcontainers layer type and a
// config of the devcontainers type) and returns its reference.
func Push(ctx context.Context, dir, repo, tag string) (string, error) {
	layer, err := Tar(dir)
	if err != nil {
		return "", err
	}
	store := memory.New()
	ldesc, err := oras.PushBytes(ctx, store, features.MediaTypeLayer, layer)
	if err != nil {
		return "", err
	}
	ldesc.Annotations = map[string]string{ocispec.AnnotationTitle: "devcontainer-feature-" + filepath.Base(dir) + ".tgz"}
	cdesc, err := oras.PushBytes(ctx, store, features.MediaTypeConfig, []byte("{}"))
	if err != nil {
		return "", err
	}
	meta, _ := os.ReadFile(filepath.Join(dir, "devcontainer-feature.json"))
	mdesc, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "", oras.PackManifestOptions{
		Layers:              []ocispec.Descriptor{ldesc},
		ConfigDescriptor:    &cdesc,
		ManifestAnnotations: map[string]string{"dev.containers.metadata": string(meta), ocispec.AnnotationCreated: "2026-01-01T00:00:00Z"},
	})
	if err != nil {
		return "", err
	}
	if err := store.Tag(ctx, mdesc, tag); err != nil {
		return "", err
	}
	dst, err := remote.NewRepository(Registry + "/" + repo)
	if err != nil {
		return "", err
	}
	dst.PlainHTTP = true
	if _, err := oras.Copy(ctx, store, tag, dst, tag, oras.DefaultCopyOptions); err != nil {
		return "", fmt.Errorf("push %s: %w", repo, err)
	}
	return Registry + "/" + repo + ":" + tag, nil
}

// Tarballs serves the Features in dirs as gzipped tarballs over https on
// loopback, at /NAME.tgz for each folder's base name. CAFile is a PEM file
// of the server's certificate, for SSL_CERT_FILE.
type Tarballs struct {
	Server *httptest.Server
	CAFile string
}

// URL is the tarball URL of the Feature folder named name.
func (s *Tarballs) URL(name string) string { return s.Server.URL + "/" + name + ".tgz" }

// ServeTarballs starts the server; t's cleanup stops it.
func ServeTarballs(t testing.TB, dirs ...string) *Tarballs {
	t.Helper()
	files := map[string][]byte{}
	for _, d := range dirs {
		raw, err := Tar(d)
		if err != nil {
			t.Fatal(err)
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		files["/"+filepath.Base(d)+".tgz"] = gz.Bytes()
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(data)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	cert := srv.TLS.Certificates[0]
	var pemData []byte
	for _, der := range cert.Certificate {
		pemData = append(pemData, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.WriteFile(ca, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Tarballs{Server: srv, CAFile: ca}
}
