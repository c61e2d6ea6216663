package docker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
)

// The beds testdata/setup/remote-docker.sh starts.
const (
	bedTLSHost   = "tcp://127.0.0.1:2386"
	bedCertPath  = "/var/lib/berth-remote/client"
	bedSSHHost   = "ssh://berth-ssh@127.0.0.1:2222"
	bedSSHBadKey = "ssh://berth-ssh@localhost:2222" // known_hosts pins a wrong key
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// bed connects to one test bed as berth would, from the environment env.
func bed(t *testing.T, name string, ep docker.Endpoint) *docker.Backend {
	t.Helper()
	b, err := docker.NewAt(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "test", name, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 60e9)
	backendtest.Sweep(ctx, b)
	cancel()
	return b
}

func tlsEndpoint(t *testing.T) docker.Endpoint {
	ep, err := docker.ResolveEndpoint(envOf(map[string]string{"DOCKER_HOST": bedTLSHost, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": bedCertPath}))
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func sshEndpoint(t *testing.T) docker.Endpoint {
	ep, err := docker.ResolveEndpoint(envOf(map[string]string{"DOCKER_HOST": bedSSHHost}))
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// harness is the conformance harness for b; behind-the-back actions go
// through b's own client.
func harness(b *docker.Backend, remote bool) backendtest.Harness {
	cli := b.Client()
	return backendtest.Harness{
		Backend: b,
		Kernel:  true,
		Remote:  remote,
		Image:   backendtest.Image(),
		RemoveBehind: func(ctx context.Context, id string) error {
			return cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		},
		CreateForeign: func(ctx context.Context, name string) (func(), error) {
			_, err := cli.ContainerCreate(ctx, &container.Config{Image: backendtest.Image(), Cmd: []string{"true"}}, nil, nil, nil, name)
			if err != nil {
				return nil, fmt.Errorf("create foreign: %w", err)
			}
			return func() { _ = cli.ContainerRemove(context.Background(), name, container.RemoveOptions{Force: true}) }, nil
		},
	}
}

// TestConformanceTLS runs the suite against the second dockerd, reached
// over TCP with TLS on 127.0.0.1: remote, so nothing is bind-mounted.
func TestConformanceTLS(t *testing.T) {
	b := bed(t, docker.Name, tlsEndpoint(t))
	if b.Local() {
		t.Fatal("a tcp:// engine on 127.0.0.1 is local; want remote")
	}
	backendtest.Run(t, harness(b, true))
}

// TestConformanceSSH runs the suite against Docker over ssh://.
func TestConformanceSSH(t *testing.T) {
	b := bed(t, docker.Name, sshEndpoint(t))
	if b.Local() {
		t.Fatal("an ssh:// engine is local; want remote")
	}
	backendtest.Run(t, harness(b, true))
}

// TestConformancePodman runs the suite against rootful Podman's
// Docker-compatible API.
func TestConformancePodman(t *testing.T) {
	b := bed(t, docker.PodmanName, docker.PodmanEndpoint(envOf(nil)))
	h := harness(b, false)
	h.NoUlimits = !capSysResource()
	backendtest.Run(t, h)
}

// TestConformancePodmanRootless runs the suite against rootless Podman,
// served by a dedicated user, with workspaces that user can reach.
func TestConformancePodmanRootless(t *testing.T) {
	u, err := user.Lookup(backendtest.PodmanUser)
	if err != nil {
		if backendtest.Required(docker.PodmanName) {
			t.Fatalf("rootless Podman's user: %v (testdata/setup/podman.sh makes it)", err)
		}
		t.Skipf("rootless Podman's user: %v", err)
	}
	b := bed(t, docker.PodmanName, docker.PodmanEndpoint(envOf(map[string]string{"XDG_RUNTIME_DIR": "/run/user/" + u.Uid})))
	h := harness(b, false)
	h.NoUlimits = !capSysResource()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	h.WorkspaceDir = func(t *testing.T) string { return backendtest.PodmanWorkspace(t, uid, gid) }
	backendtest.Run(t, h)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// capSysResource reports whether this process may raise resource limits
// past their hard limit, as Podman's defaults need.
func capSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			const capSysResource = 24
			return err == nil && caps&(1<<capSysResource) != 0
		}
	}
	return false
}
