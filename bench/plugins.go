package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/berthdev/berth/rpc"
)

var pluginsOnly = flag.Bool("plugins", false, "run only the plugin figures: a call in exec and in rpc mode, beside running the same program (plugins test image)")

// pluginsImage is the image testdata/images/plugins.sh builds.
func pluginsImage() string {
	if *engineArg == "docker" {
		return envOr("BERTH_TEST_PLUGINS_IMAGE", "berth-test/plugins:1")
	}
	return envOr("BERTH_TEST_PLUGINS_INCUS_IMAGE", "berth-test/plugins-1")
}

// pluginsBench times a berth/plugin call of the plugins image's exec-mode
// plugin (hello, a shell script) and of its rpc-mode one (counter, a Go
// program kept running), beside berth/run of the same script and the
// engine's CLI exec of it.
func pluginsBench(r *report, eng *engine, b *berthProc, id string) error {
	ctx := context.Background()
	call := func(method, want string) func() error {
		return func() error {
			var res json.RawMessage
			if err := b.call(ctx, "berth/plugin", rpc.PluginParams{Method: method}, &res); err != nil {
				return err
			}
			if want != "" && string(res) != want {
				return fmt.Errorf("%s = %s, want %s", method, res, want)
			}
			return nil
		}
	}
	// The first call of each reads the plugin files; the first rpc call
	// also starts the plugin.
	t0 := time.Now()
	if err := call("hello.version", `"1.0.0"`)(); err != nil {
		return err
	}
	firstExec := time.Since(t0)
	t0 = time.Now()
	if err := call("counter.count", "")(); err != nil {
		return err
	}
	firstRPC := time.Since(t0)

	r.printf("## Plugin call: `berth/plugin` of a method the image exports\n\n| path | p50 | p90 | n |\n|---|---|---|---|\n")
	ds, err := measure(*samples, call("counter.count", ""))
	if err != nil {
		return err
	}
	latencyRow(r, "**berth** `berth/plugin`, rpc mode (`counter.count`, kept running)", ds, ms)
	n := max(*samples/5, 20)
	if ds, err = measure(n, call("hello.version", `"1.0.0"`)); err != nil {
		return err
	}
	latencyRow(r, "**berth** `berth/plugin`, exec mode (`hello.version`, a shell script)", ds, ms)
	script := []string{"/usr/lib/berth-test/hello", "version"}
	if ds, err = measure(n, func() error {
		var res rpc.RunResult
		if err := b.call(ctx, "berth/run", rpc.ExecParams{Argv: script}, &res); err != nil {
			return err
		}
		if res.Code != 0 {
			return fmt.Errorf("hello version exited %d: %s", res.Code, res.Stderr)
		}
		return nil
	}); err != nil {
		return err
	}
	latencyRow(r, "berth `berth/run` of the same script", ds, ms)
	if ds, err = measure(n, func() error {
		cmd := eng.cliCommand(id, script...)
		cmd.Stdin = nil
		return cmd.Run()
	}); err != nil {
		return err
	}
	latencyRow(r, eng.cliName+" of the same script", ds, ms)
	r.printf("\nFirst calls, which read the plugin files (and start the rpc plugin): exec mode %s, rpc mode %s.\n\n", ms(firstExec), ms(firstRPC))
	return nil
}
