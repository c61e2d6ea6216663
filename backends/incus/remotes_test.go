package incus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
)

const testConfig = `default-remote: far
remotes:
  far:
    addr: https://127.0.0.1:18443
    protocol: incus
    auth_type: tls
    project: dev
  images:
    addr: https://images.example
    protocol: simplestreams
    public: true
  sso:
    addr: https://sso.example:8443
    protocol: incus
    auth_type: oidc
  sock:
    addr: unix:///run/other/unix.socket
aliases: {}
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if text != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestClientConfig(t *testing.T) {
	cfg, err := LoadClientConfig(writeConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	if name, r, err := cfg.Remote(""); err != nil || name != "local" || r.Addr != "unix://" {
		t.Errorf("no config.yml: default remote %s %+v %v, want local on unix://", name, r, err)
	}

	cfg, err = LoadClientConfig(writeConfig(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		want     string
		wantAddr string
		wantErr  error
	}{
		{"", "far", "https://127.0.0.1:18443", nil},
		{"local", "local", "unix://", nil}, // built in, though the file lacks it
		{"sock", "sock", "unix:///run/other/unix.socket", nil},
		{"nowhere", "", "", ErrUnknownRemote},
	}
	for _, tt := range tests {
		name, r, err := cfg.Remote(tt.name)
		if !errors.Is(err, tt.wantErr) || name != tt.want || r.Addr != tt.wantAddr {
			t.Errorf("Remote(%q) = %s %+v %v, want %s at %s, err %v", tt.name, name, r, err, tt.want, tt.wantAddr, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "far, images, local, sock, sso") {
			t.Errorf("Remote(%q): %v, want the remotes named", tt.name, err)
		}
	}

	for _, tt := range []struct{ ref, remote, alias string }{
		{"far:berth-test/busybox-1", "far", "berth-test/busybox-1"},
		{"images:debian/12", "images", "debian/12"},
		{"berth-test/busybox-1", "", "berth-test/busybox-1"},
		{"other:thing", "", "other:thing"}, // no such remote: all alias
	} {
		if r, a := splitRemote(cfg, tt.ref); r != tt.remote || a != tt.alias {
			t.Errorf("splitRemote(%q) = %q, %q; want %q, %q", tt.ref, r, a, tt.remote, tt.alias)
		}
	}
}

func TestNewRemote(t *testing.T) {
	dir := writeConfig(t, testConfig)
	t.Setenv("INCUS_CONF", dir)
	t.Setenv("BERTH_INCUS_REMOTE", "")
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		remote  string
		wantErr string
		is      error
	}{
		{"images", "image server", backends.ErrNotSupported},
		{"sso", "oidc", backends.ErrNotSupported},
		{"nowhere", "unknown incus remote", ErrUnknownRemote},
		{"far", "client.crt", nil}, // no client certificate yet
	} {
		_, err := NewRemote(log, "test", tt.remote)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.is != nil && !errors.Is(err, tt.is)) {
			t.Errorf("NewRemote(%s) = %v, want an error about %q", tt.remote, err, tt.wantErr)
		}
	}
	b, err := NewRemote(log, "test", "sock")
	if err != nil || b.Endpoint() != "unix:///run/other/unix.socket" {
		t.Fatalf("NewRemote(sock) = %v, endpoint %q", err, b.Endpoint())
	}
}

// The HTTPS bed (testdata/setup/incus-https.sh): its default remote is
// berth-https, the main incusd over HTTPS. An image ref with that remote's
// prefix is the server's own; one on another private remote can't be
// pulled, and the error says how to copy it.
func TestHTTPSBedDefaultRemote(t *testing.T) {
	conf := "/var/lib/berth-incus-https/client"
	if _, err := os.Stat(filepath.Join(conf, "config.yml")); err != nil {
		if backendtest.Required(Name) {
			t.Fatalf("Incus HTTPS bed missing (make deps sets it up): %v", err)
		}
		t.Skipf("Incus HTTPS bed missing: %v", err)
	}
	t.Setenv("INCUS_CONF", conf)
	t.Setenv("BERTH_INCUS_REMOTE", "")
	b, err := NewRemote(slog.New(slog.DiscardHandler), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.Need(t, b)
	if b.RemoteName() != "berth-https" || b.Local() || b.Endpoint() != "https://127.0.0.1:8443 (incus remote berth-https)" {
		t.Errorf("default remote %q, local %v, endpoint %q", b.RemoteName(), b.Local(), b.Endpoint())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img := backendtest.IncusImage()
	if _, err := b.InspectImage(ctx, "berth-https:"+img); err != nil {
		t.Errorf("image with the remote's own prefix: %v", err)
	}
	_, err = b.InspectImage(ctx, "local:"+img)
	if !errors.Is(err, backends.ErrImageNotFound) || !strings.Contains(err.Error(), "incus image copy local:"+img+" berth-https:") {
		t.Errorf("image on another private remote: %v, want ErrImageNotFound saying how to copy it", err)
	}
}

// newClientCert writes a fresh self-signed client certificate and key into
// dir, as `incus remote generate-certificate` does.
func newClientCert(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "berth bad-input test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"berth-test.invalid"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"client.crt": {Type: "CERTIFICATE", Bytes: der},
		"client.key": {Type: "EC PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Bad input about a remote each gets ErrUnavailable (-32010) that names the
// remote and what to fix, and none hangs: a closed port, TLS material that
// doesn't parse, and (on the HTTPS bed) a server certificate that isn't
// the one pinned and a client certificate the server doesn't trust.
func TestRemoteBadInput(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	t.Setenv("BERTH_INCUS_REMOTE", "")
	ping := func(t *testing.T, remote string) error {
		t.Helper()
		b, err := NewRemote(log, "test", remote)
		if err != nil {
			return err
		}
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		err = b.Ping(ctx)
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("ping took %s", d)
		}
		return err
	}
	check := func(t *testing.T, err error, wants ...string) {
		t.Helper()
		if !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("err = %v, want it to say %q", err, w)
			}
		}
	}

	t.Run("closed port", func(t *testing.T) {
		dir := writeConfig(t, "default-remote: gone\nremotes:\n  gone:\n    addr: https://127.0.0.1:1\n    protocol: incus\n")
		newClientCert(t, dir)
		t.Setenv("INCUS_CONF", dir)
		check(t, ping(t, ""), "gone (https://127.0.0.1:1)", "not reachable")
	})
	t.Run("key that doesn't parse", func(t *testing.T) {
		dir := writeConfig(t, "remotes:\n  far:\n    addr: https://127.0.0.1:1\n    protocol: incus\n")
		newClientCert(t, dir)
		os.WriteFile(filepath.Join(dir, "client.key"), []byte("-----BEGIN EC PRIVATE KEY-----\nbm9wZQ==\n-----END EC PRIVATE KEY-----\n"), 0o600)
		t.Setenv("INCUS_CONF", dir)
		check(t, ping(t, "far"), "far (https://127.0.0.1:1)", "bad TLS material", "incus remote add")
	})

	bed := "/var/lib/berth-incus-https/client"
	if _, err := os.Stat(filepath.Join(bed, "config.yml")); err != nil {
		if backendtest.Required(Name) {
			t.Fatalf("Incus HTTPS bed missing (make deps sets it up): %v", err)
		}
		t.Skipf("Incus HTTPS bed missing: %v", err)
	}
	// copyBed is the bed's configuration with its own client certificate
	// and, when pinWrong, a server certificate that isn't the server's.
	copyBed := func(t *testing.T, freshClient, pinWrong bool) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "servercerts"), 0o700)
		for _, f := range []string{"config.yml", "client.crt", "client.key", "servercerts/berth-https.crt"} {
			data, err := os.ReadFile(filepath.Join(bed, f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, f), data, 0o600)
		}
		if freshClient {
			newClientCert(t, dir)
		}
		if pinWrong {
			other := t.TempDir()
			newClientCert(t, other)
			data, _ := os.ReadFile(filepath.Join(other, "client.crt"))
			os.WriteFile(filepath.Join(dir, "servercerts", "berth-https.crt"), data, 0o600)
		}
		t.Setenv("INCUS_CONF", dir)
	}
	t.Run("server certificate not the pinned one", func(t *testing.T) {
		copyBed(t, false, true)
		check(t, ping(t, ""), "berth-https (https://127.0.0.1:8443)", "TLS handshake", "servercerts")
	})
	t.Run("client certificate not trusted", func(t *testing.T) {
		copyBed(t, true, false)
		check(t, ping(t, ""), "berth-https (https://127.0.0.1:8443)", "does not trust", "incus config trust add-certificate")
	})
}

// A cluster member reached on its own unix socket is remote: the cluster
// may place the instance on another member.
func TestClusterMemberIsRemote(t *testing.T) {
	const m1 = "/var/lib/berth-incus-m1" // testdata/setup/incus-cluster.sh
	if _, err := os.Stat(filepath.Join(m1, "unix.socket")); err != nil {
		if backendtest.Required(Name) {
			t.Fatalf("Incus cluster bed missing (make deps sets it up): %v", err)
		}
		t.Skipf("Incus cluster bed missing: %v", err)
	}
	t.Setenv("INCUS_CONF", t.TempDir()) // no config.yml: remote local
	t.Setenv("INCUS_DIR", m1)
	t.Setenv("INCUS_SOCKET", "")
	t.Setenv("BERTH_INCUS_REMOTE", "")
	b, err := NewRemote(slog.New(slog.DiscardHandler), "test", "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backendtest.Need(t, b)
	if b.Local() || b.Endpoint() != "unix://"+filepath.Join(m1, "unix.socket") {
		t.Errorf("member m1 on its socket: local %v, endpoint %q; want remote", b.Local(), b.Endpoint())
	}
	if _, err := b.NetNS(context.Background(), "x"); !errors.Is(err, backends.ErrNotSupported) {
		t.Errorf("NetNS on a cluster member: %v, want ErrNotSupported", err)
	}
}
