package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/spf13/cobra"

	"github.com/berthdev/berth/rpc"
)

func pluginCmd(g *globalFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "plugin PLUGIN.METHOD [JSON|-]",
		Short: "Call a method of a plugin the workspace's image exports; print its JSON result",
		Long: `Call a method of a plugin the workspace's image exports (see berth plugins),
starting the container if needed, and print the JSON result on stdout.
JSON, or stdin when it is -, is the call's params; none means null. Host
paths in it reach the plugin as container paths, and container paths in the
result come back as host paths.

berth exits 127 when the image exports no such method, with the plugin's
own exit code when it exits non-zero (its stderr is printed), and 125 for
anything else, timeouts and non-JSON output included.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := rpc.PluginParams{Method: args[0], TimeoutMs: timeout.Milliseconds()}
			if len(args) == 2 {
				raw := []byte(args[1])
				if args[1] == "-" {
					var err error
					if raw, err = io.ReadAll(cmd.InOrStdin()); err != nil {
						return err
					}
				}
				if !json.Valid(raw) {
					return usageErr(cmd, fmt.Errorf("params: not JSON: %q", abbrev(string(raw))))
				}
				p.Params = raw
			}
			if timeout < 0 {
				return usageErr(cmd, errors.New("--timeout must not be negative"))
			}
			s, err := openSession(cmd, g, cliOptions{progress: true})
			if err != nil {
				return err
			}
			defer s.close()
			var res json.RawMessage
			if err := s.c.Call(cmd.Context(), "berth/plugin", p, &res); err != nil {
				return pluginErr(err)
			}
			return printJSON(cmd.OutOrStdout(), json.RawMessage(res))
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "kill the plugin if it hasn't answered by then (default 30s)")
	return cmd
}

func abbrev(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// pluginErr is cliErr for plugin calls: a missing method exits 127, as a
// missing command does, and a plugin that exited non-zero passes its code
// on, as docker run does.
func pluginErr(err error) error {
	var re *jsonrpc2.Error
	if !errors.As(err, &re) {
		return err
	}
	switch re.Code {
	case rpc.CodeNoSuchPlugin:
		return exitError{code: exitNotFound, msg: re.Message}
	case rpc.CodePluginFailed:
		var d struct {
			ExitCode *int `json:"exitCode"`
		}
		if re.Data != nil && json.Unmarshal(*re.Data, &d) == nil && d.ExitCode != nil && *d.ExitCode > 0 && *d.ExitCode < 256 {
			return exitError{code: *d.ExitCode, msg: re.Message}
		}
	}
	return cliErr(err)
}

func pluginsCmd(g *globalFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List the plugins the workspace's image exports",
		Long: `List the plugins the workspace's image declares in /.plugin.toml and
/etc/berth/plugins.d/*.toml, starting the container if needed. Files or
plugins berth skipped are reported on stderr with their position; the others
are listed. With --json, print berth/plugins's answer.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, cliOptions{progress: true})
			if err != nil {
				return err
			}
			defer s.close()
			var res rpc.PluginsResult
			if err := s.c.Call(cmd.Context(), "berth/plugins", rpc.WorkspaceParams{}, &res); err != nil {
				return cliErr(err)
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), res)
			}
			for _, e := range res.Errors {
				fmt.Fprintln(cmd.ErrOrStderr(), "berth: skipped:", e.Message)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMODE\tEXPORTS\tPATH\tSOURCE")
			for _, p := range res.Plugins {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Mode, strings.Join(p.Exports, ","), p.Path, p.Source)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print berth/plugins's answer as JSON")
	return cmd
}
