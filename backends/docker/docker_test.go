package docker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
)

func TestMain(m *testing.M) {
	if b, err := docker.New(slog.New(slog.DiscardHandler), "test"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		backendtest.Sweep(ctx, b)
		cancel()
		b.Close()
	}
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	b, err := docker.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	backendtest.Run(t, backendtest.Harness{
		Backend: b,
		Kernel:  true,
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
	})
}
