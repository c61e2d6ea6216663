package incus_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	incusclient "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/incus"
)

// testImage is the busybox image testdata/images/busybox.sh imports for
// Incus. Incus reads "a:b" as remote a, image b, so the alias differs from
// Docker's tag.
func testImage() string {
	if img := os.Getenv("BERTH_TEST_INCUS_IMAGE"); img != "" {
		return img
	}
	return "berth-test/busybox-1"
}

func TestMain(m *testing.M) {
	if b, err := incus.New(slog.New(slog.DiscardHandler), "test"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		backendtest.Sweep(ctx, b)
		cancel()
		b.Close()
	}
	os.Exit(m.Run())
}

func newBackend(t *testing.T) *incus.Backend {
	t.Helper()
	b, err := incus.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	backendtest.Need(t, b)
	return b
}

// rawClient talks to incusd directly, as a user would.
func rawClient(t *testing.T) incusclient.InstanceServer {
	t.Helper()
	cli, err := incusclient.ConnectIncusUnix("", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Disconnect)
	return cli
}

func TestConformance(t *testing.T) {
	b := newBackend(t)
	cli := rawClient(t)
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Image:   testImage(),
		RemoveBehind: func(ctx context.Context, id string) error {
			name, _, _ := strings.Cut(id, ".")
			return forceDelete(cli, name)
		},
		CreateForeign: func(ctx context.Context, name string) (func(), error) {
			op, err := cli.CreateInstance(api.InstancesPost{
				Name:   name,
				Type:   api.InstanceTypeContainer,
				Source: api.InstanceSource{Type: "image", Alias: testImage()},
			})
			if err == nil {
				err = op.Wait()
			}
			if err != nil {
				return nil, fmt.Errorf("create foreign: %w", err)
			}
			return func() { _ = forceDelete(cli, name) }, nil
		},
	})
}

func forceDelete(cli incusclient.InstanceServer, name string) error {
	if op, err := cli.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Force: true}, ""); err == nil {
		_ = op.Wait() // fails when already stopped
	}
	op, err := cli.DeleteInstance(name)
	if err != nil {
		return err
	}
	return op.Wait()
}
