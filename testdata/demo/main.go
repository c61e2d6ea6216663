// Command demo shows berth's protocol end to end: it starts `berth --stdio`,
// brings testdata/workspaces/demo up in a container, runs a command there,
// and prints the container's paths as berth maps them back to the host.
// `make demo` runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/berthdev/berth/rpc"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type stdio struct {
	io.ReadCloser
	io.WriteCloser
}

func (s stdio) Close() error {
	s.WriteCloser.Close()
	return s.ReadCloser.Close()
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	berth := os.Getenv("BERTH")
	if berth == "" {
		berth = "bin/berth"
	}
	ws, err := filepath.Abs("testdata/workspaces/demo")
	if err != nil {
		return err
	}
	image := os.Getenv("BERTH_IMAGE")
	if image == "" {
		image = "berth-test/busybox:1"
	}

	cmd := exec.CommandContext(ctx, berth, "--stdio", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	exits := make(chan rpc.ExitParams, 4)
	c := rpc.NewClient(ctx, stdio{out, in}, slog.New(slog.DiscardHandler), func(method string, raw json.RawMessage) {
		switch method {
		case "berth/output":
			var o rpc.OutputParams
			json.Unmarshal(raw, &o)
			for _, line := range strings.SplitAfter(o.Text, "\n") {
				if line != "" {
					fmt.Printf("   %s| %s", o.Stream, line)
				}
			}
		case "berth/exit":
			var e rpc.ExitParams
			json.Unmarshal(raw, &e)
			exits <- e
		case "window/logMessage":
			var m struct{ Message string }
			json.Unmarshal(raw, &m)
			fmt.Println("   ..", m.Message)
		}
	})
	defer func() {
		c.Close()
		cmd.Wait()
	}()

	step := func(method string, params, result any) error {
		b, _ := json.Marshal(params)
		fmt.Printf("\n-> %s %s\n", method, b)
		return c.Call(ctx, method, params, result)
	}

	fmt.Printf("berth demo: workspace %s, image %s\n", ws, image)
	var init rpc.InitializeResult
	if err := step("initialize", rpc.InitializeParams{RootURI: "file://" + ws, InitializationOptions: &rpc.InitializationOptions{Image: image}}, &init); err != nil {
		return err
	}
	fmt.Printf("<- %s %s, backends %v, agent %v\n", init.ServerInfo.Name, init.ServerInfo.Version, init.Capabilities.Berth.Backends, init.Capabilities.Berth.Agent)
	c.Notify(ctx, "initialized", struct{}{})

	var inst rpc.Instance
	if err := step("berth/up", struct{}{}, &inst); err != nil {
		return err
	}
	fmt.Printf("<- container %s (%s, created now: %v): %s is %s inside\n", inst.Name, inst.State, inst.Created, ws, inst.Workdir)

	var st rpc.Instance
	if err := step("berth/status", struct{}{}, &st); err != nil {
		return err
	}
	if a := st.Agent; a.Enabled {
		fmt.Printf("<- agent: build %.12s for %s (%s)\n", a.Build, a.Platform, a.Source)
	} else {
		fmt.Printf("<- no agent, plain exec: %s\n", a.Reason)
	}

	script := `echo "working directory: $PWD"; ls -1 "$PWD"; "$PWD/src/hello.sh"`
	for _, mapPaths := range []bool{false, true} {
		var res rpc.ExecResult
		if err := step("berth/exec", rpc.ExecParams{Argv: []string{"sh", "-c", script}, MapPaths: &mapPaths}, &res); err != nil {
			return err
		}
		fmt.Printf("<- pid %s; its output (mapPaths %v):\n", res.PID, mapPaths)
		select {
		case e := <-exits:
			fmt.Printf("<- berth/exit code %d\n", e.Code)
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	var paths rpc.PathsResult
	if err := step("berth/toHost", rpc.PathsParams{Paths: []string{inst.Workdir + "/src/hello.sh", "/etc/passwd"}}, &paths); err != nil {
		return err
	}
	for i, p := range paths.Paths {
		in := []string{inst.Workdir + "/src/hello.sh", "/etc/passwd"}[i]
		if p == nil {
			fmt.Printf("<- %s: not under a mount (null)\n", in)
		} else {
			fmt.Printf("<- %s is %s on the host\n", in, *p)
		}
	}

	if err := step("shutdown", nil, nil); err != nil {
		return err
	}
	c.Notify(ctx, "exit", nil)
	fmt.Printf("\nThe container stays up for the next session: `bin/berth --workspace %s down --rm` removes it.\n", ws)
	return nil
}
