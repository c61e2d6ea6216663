package incus

import (
	"context"
	"errors"
	"log/slog"
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
	if err != nil || b.EndpointName() != "/run/other/unix.socket" {
		t.Fatalf("NewRemote(sock) = %v, endpoint %q", err, b.EndpointName())
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
	if b.RemoteName() != "berth-https" || b.Local() || !strings.HasPrefix(b.EndpointName(), "berth-https (https://127.0.0.1:8443") {
		t.Errorf("default remote %q, local %v, endpoint %q", b.RemoteName(), b.Local(), b.EndpointName())
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
