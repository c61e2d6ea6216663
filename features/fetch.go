package features

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/berthdev/berth/devcontainer"
)

// Media types of a Feature published as an OCI artifact.
const (
	MediaTypeLayer  = "application/vnd.devcontainers.layer.v1+tar"
	MediaTypeConfig = "application/vnd.devcontainers"
)

// maxFeatureSize bounds a Feature's download and its unpacked files.
const maxFeatureSize = 256 << 20

// fetch finds the Feature ref names, from the cache when it can.
func (r *resolver) fetch(ctx context.Context, ref string, user *devcontainer.FeatureRef) (*Feature, error) {
	var f *Feature
	var err error
	switch {
	case strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../"):
		f, err = r.local(ref)
	case strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "http://"):
		f, err = r.tarball(ctx, ref)
	case strings.HasPrefix(ref, "/"):
		err = fmt.Errorf("%w: an absolute path is not a Feature reference: write it relative to the configuration, as ./path", ErrUnresolved)
	default:
		f, err = r.oci(ctx, ref)
	}
	if err != nil {
		if user == nil {
			return nil, fmt.Errorf("features: dependency %s: %w", ref, err)
		}
		kind := ErrUnresolved
		if errors.Is(err, ErrBadFeature) {
			kind = ErrBadFeature
		}
		return nil, r.configErr(user, "", kind, "%v", err)
	}
	f.Ref = ref
	if err := load(f); err != nil {
		return nil, r.configErr(user, "", ErrBadFeature, "%s: %v", ref, err)
	}
	return f, nil
}

// local is a Feature in a folder relative to the configuration.
func (r *resolver) local(ref string) (*Feature, error) {
	dir := filepath.Join(r.dir, filepath.FromSlash(ref))
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: no Feature folder at %s", ErrUnresolved, dir)
	}
	sum, err := dirHash(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnresolved, err)
	}
	return &Feature{Kind: KindLocal, Resource: ref, Resolved: dir, Integrity: sum, Dir: dir}, nil
}

// dirHash is "sha256:…" of a folder's files: names, modes and contents.
func dirHash(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00", filepath.ToSlash(rel), info.Mode())
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// refIndex remembers what a mutable reference last resolved to, so that it
// works offline afterwards.
type refIndex struct {
	Resolved  string `json:"resolved"`
	Integrity string `json:"integrity"`
}

func (r *resolver) indexPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(r.opts.CacheDir, "refs", hex.EncodeToString(sum[:])+".json")
}

func (r *resolver) readIndex(ref string) (refIndex, bool) {
	var ix refIndex
	data, err := os.ReadFile(r.indexPath(ref))
	if err != nil || json.Unmarshal(data, &ix) != nil || ix.Integrity == "" {
		return ix, false
	}
	return ix, true
}

func (r *resolver) writeIndex(ref string, ix refIndex) {
	data, _ := json.Marshal(ix)
	if err := writeAtomic(r.indexPath(ref), data); err != nil {
		r.opts.Log.Warn("could not cache a Feature reference", "ref", ref, "err", err)
	}
}

// contentDir is where the files of the content with integrity live.
func (r *resolver) contentDir(integrity string) string {
	return filepath.Join(r.opts.CacheDir, "content", strings.ReplaceAll(integrity, ":", "-"))
}

// cached returns the Feature already unpacked for integrity, if it is.
func (r *resolver) cached(kind, resource, resolved, integrity string) (*Feature, bool) {
	if integrity == "" {
		return nil, false
	}
	dir := r.contentDir(integrity)
	if _, err := os.Stat(filepath.Join(dir, "devcontainer-feature.json")); err != nil {
		return nil, false
	}
	return &Feature{Kind: kind, Resource: resource, Resolved: resolved, Integrity: integrity, Dir: dir}, true
}

// pinned is what the lock file or, failing that, the cache's index says
// ref resolves to.
func (r *resolver) pinned(ref string) (refIndex, bool) {
	if e, ok := r.lock.entry(ref); ok {
		return refIndex{Resolved: e.Resolved, Integrity: e.Integrity}, true
	}
	return r.readIndex(ref)
}

// tarball is a Feature published as a .tgz at an https URL.
func (r *resolver) tarball(ctx context.Context, url string) (*Feature, error) {
	if strings.HasPrefix(url, "http://") && !loopbackURL(url) {
		return nil, fmt.Errorf("%w: %s: plain http is only for loopback addresses; use https", ErrUnresolved, url)
	}
	if e, ok := r.lock.entry(url); ok {
		if f, ok := r.cached(KindTarball, url, url, e.Integrity); ok {
			return f, nil
		}
	}
	if r.opts.Offline {
		if ix, ok := r.readIndex(url); ok {
			if f, ok := r.cached(KindTarball, url, url, ix.Integrity); ok {
				return f, nil
			}
		}
		return nil, fmt.Errorf("%w: %s is not in the cache (offline)", ErrUnresolved, url)
	}
	data, err := r.download(ctx, url)
	if err != nil {
		// Unreachable now: what was fetched before still works.
		if ix, ok := r.readIndex(url); ok {
			if f, ok := r.cached(KindTarball, url, url, ix.Integrity); ok {
				r.opts.Log.Warn("could not fetch a Feature; using the cached copy", "ref", url, "err", err)
				return f, nil
			}
		}
		return nil, err
	}
	sum := sha256.Sum256(data)
	integrity := "sha256:" + hex.EncodeToString(sum[:])
	if e, ok := r.lock.entry(url); ok && e.Integrity != "" && e.Integrity != integrity {
		return nil, fmt.Errorf("%w: %s has integrity %s, but devcontainer-lock.json says %s: the file changed since it was locked", ErrBadFeature, url, integrity, e.Integrity)
	}
	if err := r.unpack(integrity, data); err != nil {
		return nil, err
	}
	r.writeIndex(url, refIndex{Resolved: url, Integrity: integrity})
	return &Feature{Kind: KindTarball, Resource: url, Resolved: url, Integrity: integrity, Dir: r.contentDir(integrity)}, nil
}

func (r *resolver) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnresolved, url, err)
	}
	resp, err := r.opts.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnresolved, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnresolved, url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxFeatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnresolved, url, err)
	}
	if len(data) > maxFeatureSize {
		return nil, fmt.Errorf("%w: %s is larger than %d MiB", ErrBadFeature, url, maxFeatureSize>>20)
	}
	return data, nil
}

// oci is a Feature published to an OCI registry.
func (r *resolver) oci(ctx context.Context, ref string) (*Feature, error) {
	pr, err := registry.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not a local path (./…), an https URL or an OCI reference: %v", ErrUnresolved, ref, err)
	}
	resource := pr.Registry + "/" + pr.Repository
	if ix, ok := r.pinned(ref); ok {
		if f, ok := r.cached(KindOCI, resource, ix.Resolved, ix.Integrity); ok {
			if _, locked := r.lock.entry(ref); locked || r.opts.Offline {
				return f, nil
			}
		}
	}
	if r.opts.Offline {
		return nil, fmt.Errorf("%w: %s is not in the cache (offline)", ErrUnresolved, ref)
	}
	target := pr.Reference
	if target == "" {
		target = "latest"
	}
	if e, ok := r.lock.entry(ref); ok {
		if i := strings.LastIndex(e.Resolved, "@"); i >= 0 {
			target = e.Resolved[i+1:]
		}
	}
	f, err := r.pull(ctx, pr, resource, target)
	if err != nil {
		if ix, ok := r.readIndex(ref); ok {
			if f, ok := r.cached(KindOCI, resource, ix.Resolved, ix.Integrity); ok {
				r.opts.Log.Warn("could not reach the registry; using the cached Feature", "ref", ref, "err", err)
				return f, nil
			}
		}
		return nil, err
	}
	r.writeIndex(ref, refIndex{Resolved: f.Resolved, Integrity: f.Integrity})
	return f, nil
}

// pull fetches the manifest of target (a tag or digest) and the Feature's
// layer, verifying both.
func (r *resolver) pull(ctx context.Context, pr registry.Reference, resource, target string) (*Feature, error) {
	repo, err := remote.NewRepository(resource)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnresolved, resource, err)
	}
	client := &auth.Client{Client: r.opts.HTTP, Cache: auth.NewCache()}
	if store := dockerCredentials(); store != nil {
		client.Credential = func(ctx context.Context, host string) (auth.Credential, error) {
			return store.Get(ctx, host)
		}
	}
	repo.Client = client
	mdesc, rc, err := repo.FetchReference(ctx, target)
	if err != nil && loopbackHost(pr.Registry) && plainServer(err) {
		// A registry on loopback may speak plain HTTP, as docker allows.
		repo.PlainHTTP = true
		mdesc, rc, err = repo.FetchReference(ctx, target)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s:%s: %v", ErrUnresolved, resource, target, err)
	}
	mdata, err := content.ReadAll(rc, mdesc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: manifest: %v", ErrUnresolved, resource, err)
	}
	integrity := mdesc.Digest.String()
	resolved := resource + "@" + integrity
	if f, ok := r.cached(KindOCI, resource, resolved, integrity); ok {
		return f, nil
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(mdata, &man); err != nil {
		return nil, fmt.Errorf("%w: %s: manifest: %v", ErrBadFeature, resource, err)
	}
	i := slices.IndexFunc(man.Layers, func(d ocispec.Descriptor) bool { return d.MediaType == MediaTypeLayer })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s is not a Feature: its manifest has no layer of type %s", ErrBadFeature, resolved, MediaTypeLayer)
	}
	layer := man.Layers[i]
	if layer.Size > maxFeatureSize {
		return nil, fmt.Errorf("%w: %s is larger than %d MiB", ErrBadFeature, resolved, maxFeatureSize>>20)
	}
	lrc, err := repo.Fetch(ctx, layer)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: layer: %v", ErrUnresolved, resolved, err)
	}
	data, err := content.ReadAll(lrc, layer)
	lrc.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: layer: %v", ErrUnresolved, resolved, err)
	}
	if err := r.unpack(integrity, data); err != nil {
		return nil, err
	}
	return &Feature{Kind: KindOCI, Resource: resource, Resolved: resolved, Integrity: integrity, Dir: r.contentDir(integrity)}, nil
}

// plainServer reports whether err says the server answered TLS with
// plain HTTP.
func plainServer(err error) bool {
	var rh tls.RecordHeaderError
	return errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// dockerCredentials is the docker CLI's credential file, when there is one.
func dockerCredentials() *credentials.FileStore {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	p := filepath.Join(home, ".docker", "config.json")
	if dc := os.Getenv("DOCKER_CONFIG"); dc != "" {
		p = filepath.Join(dc, "config.json")
	}
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	fs, err := credentials.NewFileStore(p)
	if err != nil {
		return nil
	}
	return fs
}

// loopbackHost reports whether a registry host (with its port) is on this
// machine's loopback, the only place plain HTTP is used.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

func loopbackURL(u string) bool {
	rest := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, _ := strings.Cut(rest, "/")
	return loopbackHost(host)
}

// unpack extracts a Feature's tar (gzipped or not) into the cache, all at
// once: a half-written folder is never seen.
func (r *resolver) unpack(integrity string, data []byte) error {
	dst := r.contentDir(integrity)
	if _, err := os.Stat(filepath.Join(dst, "devcontainer-feature.json")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("features: cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-")
	if err != nil {
		return fmt.Errorf("features: cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := untar(data, tmp); err != nil {
		return fmt.Errorf("%w: %v", ErrBadFeature, err)
	}
	if err := os.Rename(tmp, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(dst); serr != nil {
			return fmt.Errorf("features: cache: %w", err)
		}
	}
	return nil
}

// untar extracts regular files and folders, refusing names that leave dst.
func untar(data []byte, dst string) error {
	var rd io.Reader = bytes.NewReader(data)
	br := bufio.NewReader(rd)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		rd = zr
	} else {
		rd = br
	}
	tr := tar.NewReader(rd)
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the Feature's tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("the Feature's tar holds %q, outside its folder", hdr.Name)
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			total += hdr.Size
			if total > maxFeatureSize {
				return fmt.Errorf("the Feature unpacks to more than %d MiB", maxFeatureSize>>20)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fs.FileMode(hdr.Mode&0o755|0o644))
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
	}
}

// writeAtomic writes a small file whole, or not at all.
func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}
