package incus_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/backends/incus/rest"
)

// The conformance suite on the two-member cluster of
// testdata/setup/incus-cluster.sh, reached over HTTPS at m1, with every
// instance placed on m2: exec, signals, copies, events and the rest work
// through the member berth didn't create them on.
//
// It takes minutes (every stop waits out the clean-stop timeout on m2), so
// `make test` leaves it to BERTH_TEST_CLUSTER_CONFORMANCE=1;
// cmd/berth's TestIncusRemotes covers the cluster end to end.
func TestClusterConformance(t *testing.T) {
	if os.Getenv("BERTH_TEST_CLUSTER_CONFORMANCE") != "1" {
		t.Skip("minutes long: set BERTH_TEST_CLUSTER_CONFORMANCE=1")
	}
	const conf = "/var/lib/berth-incus-cluster/client"
	if _, err := os.Stat(filepath.Join(conf, "config.yml")); err != nil {
		if backendtest.Required(incus.Name) {
			t.Fatalf("Incus cluster bed missing (make deps sets it up): %v", err)
		}
		t.Skipf("Incus cluster bed missing: %v", err)
	}
	t.Setenv("INCUS_CONF", conf)
	t.Setenv("BERTH_INCUS_REMOTE", "")
	t.Setenv("BERTH_INCUS_TARGET", "m2")
	b, err := incus.NewRemote(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "test", "berth-cluster")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	if b.Local() {
		t.Fatal("a cluster over HTTPS is local")
	}
	read := func(f string) string {
		data, err := os.ReadFile(filepath.Join(conf, f))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	cli, err := rest.Remote("https://198.18.0.1:8443", rest.TLS{
		ClientCert: read("client.crt"), ClientKey: read("client.key"), ServerCert: read("servercerts/berth-cluster.crt"),
	}, rest.Options{UserAgent: "berth-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.CloseIdleConnections)
	backendtest.Run(t, harness(b, cli, "m2"))
}
