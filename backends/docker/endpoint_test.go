package docker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/docker"
)

// writeContext stores a docker CLI context under cfgDir as `docker context
// create` does, with TLS files when tls is set.
func writeContext(t *testing.T, cfgDir, name, host string, tls bool) string {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	meta := filepath.Join(cfgDir, "contexts", "meta", id)
	if err := os.MkdirAll(meta, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := `{"Name":"` + name + `","Metadata":{},"Endpoints":{"docker":{"Host":"` + host + `","SkipTLSVerify":false}}}`
	if err := os.WriteFile(filepath.Join(meta, "meta.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cfgDir, "contexts", "tls", id, "docker")
	if tls {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestResolveEndpoint(t *testing.T) {
	cfg := t.TempDir()
	tlsDir := writeContext(t, cfg, "remote", "tcp://10.0.0.5:2376", true)
	writeContext(t, cfg, "over-ssh", "ssh://dev@build-box", false)
	current := t.TempDir()
	if err := os.WriteFile(filepath.Join(current, "config.json"), []byte(`{"auths":{},"currentContext":"over-ssh"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeContext(t, current, "over-ssh", "ssh://dev@build-box", false)
	tests := []struct {
		name   string
		env    map[string]string
		want   docker.Endpoint
		remote bool
	}{
		{"nothing set", map[string]string{"DOCKER_CONFIG": t.TempDir()},
			docker.Endpoint{Host: "unix:///var/run/docker.sock", From: "default"}, false},
		{"DOCKER_HOST unix", map[string]string{"DOCKER_HOST": "unix:///run/user/1000/docker.sock"},
			docker.Endpoint{Host: "unix:///run/user/1000/docker.sock", From: "DOCKER_HOST"}, false},
		{"DOCKER_HOST tcp, no TLS", map[string]string{"DOCKER_HOST": "tcp://127.0.0.1:2375"},
			docker.Endpoint{Host: "tcp://127.0.0.1:2375", From: "DOCKER_HOST"}, true},
		{"DOCKER_HOST tcp with TLS verify", map[string]string{"DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"},
			docker.Endpoint{Host: "tcp://127.0.0.1:2376", From: "DOCKER_HOST", TLS: &docker.TLSFiles{CA: "/certs/ca.pem", Cert: "/certs/cert.pem", Key: "/certs/key.pem"}}, true},
		{"TLS verify defaults the cert path to the config dir", map[string]string{"DOCKER_HOST": "tcp://h:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CONFIG": "/cfg"},
			docker.Endpoint{Host: "tcp://h:2376", From: "DOCKER_HOST", TLS: &docker.TLSFiles{CA: "/cfg/ca.pem", Cert: "/cfg/cert.pem", Key: "/cfg/key.pem"}}, true},
		{"cert path without verify", map[string]string{"DOCKER_HOST": "tcp://h:2376", "DOCKER_CERT_PATH": "/c"},
			docker.Endpoint{Host: "tcp://h:2376", From: "DOCKER_HOST", TLS: &docker.TLSFiles{CA: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem", SkipVerify: true}}, true},
		{"DOCKER_HOST ssh", map[string]string{"DOCKER_HOST": "ssh://root@127.0.0.1:2222"},
			docker.Endpoint{Host: "ssh://root@127.0.0.1:2222", From: "DOCKER_HOST"}, true},
		{"DOCKER_HOST wins over DOCKER_CONTEXT", map[string]string{"DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "remote", "DOCKER_CONFIG": cfg},
			docker.Endpoint{Host: "unix:///x.sock", From: "DOCKER_HOST"}, false},
		{"DOCKER_CONTEXT with TLS files", map[string]string{"DOCKER_CONTEXT": "remote", "DOCKER_CONFIG": cfg},
			docker.Endpoint{Host: "tcp://10.0.0.5:2376", From: "context remote", TLS: &docker.TLSFiles{CA: filepath.Join(tlsDir, "ca.pem"), Cert: filepath.Join(tlsDir, "cert.pem"), Key: filepath.Join(tlsDir, "key.pem")}}, true},
		{"DOCKER_CONTEXT default", map[string]string{"DOCKER_CONTEXT": "default", "DOCKER_CONFIG": cfg},
			docker.Endpoint{Host: "unix:///var/run/docker.sock", From: "default"}, false},
		{"currentContext in config.json", map[string]string{"DOCKER_CONFIG": current},
			docker.Endpoint{Host: "ssh://dev@build-box", From: "context over-ssh"}, true},
		{"currentContext under HOME", map[string]string{"HOME": filepath.Dir(current + "/x")},
			docker.Endpoint{Host: "unix:///var/run/docker.sock", From: "default"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := docker.ResolveEndpoint(envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(docker.Endpoint{})); diff != "" {
				t.Errorf("endpoint (-want +got):\n%s", diff)
			}
			if got.Remote() != tt.remote {
				t.Errorf("Remote() = %v, want %v", got.Remote(), tt.remote)
			}
		})
	}
}

func TestResolveEndpointBadContext(t *testing.T) {
	cfg := t.TempDir()
	_, err := docker.ResolveEndpoint(envOf(map[string]string{"DOCKER_CONTEXT": "nope", "DOCKER_CONFIG": cfg}))
	if err == nil || !strings.Contains(err.Error(), `context "nope"`) || !strings.Contains(err.Error(), "docker context ls") {
		t.Fatalf("err = %v, want one naming the context and `docker context ls`", err)
	}
}

// TestRemoteBadInput: an unreachable endpoint, bad TLS material and an ssh
// host key mismatch each fail Ping quickly with backends.ErrUnavailable
// (-32010 on the wire), naming the endpoint and what to fix.
func TestRemoteBadInput(t *testing.T) {
	noFiles := t.TempDir()
	tests := []struct {
		name  string
		ep    docker.Endpoint
		wants []string
		bed   bool // needs the test bed to be up
	}{
		{"unreachable tcp", docker.Endpoint{Host: "tcp://127.0.0.1:1", From: "DOCKER_HOST"},
			[]string{"tcp://127.0.0.1:1", "DOCKER_HOST", "is the daemon listening there"}, false},
		{"unroutable tcp", docker.Endpoint{Host: "tcp://192.0.2.254:2376", From: "DOCKER_HOST"},
			[]string{"tcp://192.0.2.254:2376", "is the daemon listening there"}, false},
		{"missing TLS files", docker.Endpoint{Host: bedTLSHost, From: "DOCKER_HOST", TLS: &docker.TLSFiles{CA: noFiles + "/ca.pem", Cert: noFiles + "/cert.pem", Key: noFiles + "/key.pem"}},
			[]string{bedTLSHost, "TLS material can't be used", "DOCKER_CERT_PATH"}, false},
		{"TLS without a client certificate", docker.Endpoint{Host: bedTLSHost, From: "DOCKER_HOST", TLS: &docker.TLSFiles{CA: bedCertPath + "/ca.pem"}},
			[]string{bedTLSHost, "TLS handshake failed"}, true},
		{"plain HTTP to a TLS daemon", docker.Endpoint{Host: bedTLSHost, From: "DOCKER_HOST"},
			[]string{bedTLSHost, "speaks TLS", "DOCKER_TLS_VERIFY=1"}, true},
		{"ssh host key mismatch", docker.Endpoint{Host: bedSSHBadKey, From: "DOCKER_HOST"},
			[]string{bedSSHBadKey, "host key", "known_hosts"}, true},
		{"ssh nobody listening", docker.Endpoint{Host: "ssh://root@127.0.0.1:1", From: "DOCKER_HOST"},
			[]string{"ssh://root@127.0.0.1:1", "sshd"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.bed {
				bed(t, docker.Name, tlsEndpoint(t)) // skips or fails as the bed rules say
			}
			b, err := docker.NewAt(quiet(), "test", docker.Name, tt.ep)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err = b.Ping(ctx)
			took := time.Since(start)
			if !errors.Is(err, backends.ErrUnavailable) {
				t.Fatalf("Ping = %v, want ErrUnavailable", err)
			}
			t.Logf("%v (%v)", err, took.Round(time.Millisecond))
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q doesn't say %q", err, w)
				}
			}
			if took > 15*time.Second {
				t.Errorf("Ping took %v: a bad endpoint must fail fast", took)
			}
		})
	}
}

// TestNewBadContext: a context that doesn't resolve still makes a
// backend, whose Ping says what to fix.
func TestNewBadContext(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONTEXT", "nope")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	b, err := docker.New(quiet(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Ping(context.Background())
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), `context "nope"`) || !strings.Contains(err.Error(), "docker context ls") {
		t.Fatalf("Ping = %v, want ErrUnavailable naming the context and how to fix it", err)
	}
}
