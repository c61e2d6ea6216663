package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/backendtest"
	"github.com/berthdev/berth/backends/docker"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/backends/incus/rest"
)

// engine is one backend with its peers.
type engine struct {
	title   string
	version string
	image   string
	b       backends.Backend
	close   func()

	cliName     string
	cliCommand  func(id string, argv ...string) *exec.Cmd
	apiExecName string
	apiExec     func(ctx context.Context, id string) error
	relayName   string
	relay       func(ctx context.Context, id, addr string) (io.ReadWriteCloser, error)
}

func newEngine(ctx context.Context, name string) (*engine, error) {
	quiet := slog.New(slog.DiscardHandler)
	switch name {
	case docker.Name:
		d, err := docker.New(quiet, "bench")
		if err != nil {
			return nil, err
		}
		if err := d.Ping(ctx); err != nil {
			return nil, err
		}
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, err
		}
		v, _ := cli.ServerVersion(ctx)
		return &engine{
			title: "Docker", version: "Docker " + v.Version, image: backendtest.Image(), b: d,
			close:   func() { cli.Close(); d.Close() },
			cliName: "`docker exec` CLI",
			cliCommand: func(id string, argv ...string) *exec.Cmd {
				return exec.Command("docker", append([]string{"exec", "-i", id}, argv...)...)
			},
			apiExecName: "Docker API exec from Go (create, attach, inspect)",
			apiExec:     func(ctx context.Context, id string) error { return dockerAPIExec(ctx, cli, id) },
			relayName:   "bare relay over one `docker exec -i` stream (Docker API)",
			relay: func(ctx context.Context, id, addr string) (io.ReadWriteCloser, error) {
				return dockerRelay(ctx, cli, id, addr)
			},
		}, nil
	case incus.Name:
		b, err := incus.New(quiet, "bench")
		if err != nil {
			return nil, err
		}
		if err := b.Ping(ctx); err != nil {
			return nil, err
		}
		srv := rest.Unix("", rest.Options{UserAgent: "berth-bench"})
		version := "Incus"
		if info, err := srv.Server(ctx); err == nil {
			version += " " + info.Environment.ServerVersion
		}
		nameOf := func(id string) string { n, _, _ := strings.Cut(id, "."); return n }
		return &engine{
			title: "Incus", version: version, image: backendtest.IncusImage(), b: b,
			close:   func() { srv.CloseIdleConnections(); b.Close() },
			cliName: "`incus exec` CLI",
			cliCommand: func(id string, argv ...string) *exec.Cmd {
				return exec.Command("incus", append([]string{"exec", nameOf(id), "--"}, argv...)...)
			},
			apiExecName: "Incus API exec from Go (operation, websockets, wait)",
			apiExec:     func(ctx context.Context, id string) error { return incusAPIExec(ctx, srv, nameOf(id)) },
			relayName:   "bare relay over one `incus exec` stream (CLI pipes)",
			relay: func(ctx context.Context, id, addr string) (io.ReadWriteCloser, error) {
				return cmdRelay(exec.Command("incus", "exec", nameOf(id), "--", "/tmp/echoserver", "relay", addr))
			},
		}, nil
	}
	return nil, fmt.Errorf("unknown backend %q", name)
}

func dockerAPIExec(ctx context.Context, cli *client.Client, id string) error {
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"true"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return err
	}
	hj, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, hj.Reader)
	hj.Close()
	for {
		ins, err := cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return err
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return fmt.Errorf("exit %d", ins.ExitCode)
			}
			return nil
		}
	}
}

func incusAPIExec(ctx context.Context, srv *rest.Client, name string) error {
	done := make(chan bool)
	op, err := srv.Exec(ctx, name, rest.ExecPost{Command: []string{"true"}, WaitForWS: true},
		&rest.ExecStreams{Stdout: io.Discard, Stderr: io.Discard, DataDone: done})
	if err != nil {
		return err
	}
	if op, err = srv.Wait(ctx, op.ID); err != nil {
		return err
	}
	<-done
	if code, ok := op.Metadata["return"].(float64); !ok || code != 0 {
		return fmt.Errorf("exit %v", op.Metadata["return"])
	}
	return nil
}

// dockerRelay opens one `docker exec -i` stream running the fixture's relay
// to addr, and returns it as a connection.
func dockerRelay(ctx context.Context, cli *client.Client, id, addr string) (io.ReadWriteCloser, error) {
	created, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: []string{"/tmp/echoserver", "relay", addr}, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, err
	}
	hj, err := cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, io.Discard, hj.Reader)
		pw.CloseWithError(err)
	}()
	return &relayConn{w: hj.Conn, r: pr, closeWrite: hj.CloseWrite, close: func() error { pr.Close(); return hj.Conn.Close() }}, nil
}

// cmdRelay runs a relay command and uses its stdin and stdout as the
// connection.
func cmdRelay(cmd *exec.Cmd) (io.ReadWriteCloser, error) {
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &relayConn{w: in, r: out, closeWrite: in.Close, close: func() error {
		in.Close()
		cmd.Process.Kill()
		return cmd.Wait()
	}}, nil
}

type relayConn struct {
	w          io.Writer
	r          io.Reader
	closeWrite func() error
	close      func() error
}

func (c *relayConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *relayConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *relayConn) CloseWrite() error           { return c.closeWrite() }
func (c *relayConn) Close() error                { return c.close() }
