package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus"
	"github.com/berthdev/berth/devcontainer"
	"github.com/berthdev/berth/session"
)

func configCmd(g *globalFlags) *cobra.Command {
	var list bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the workspace's configuration as berth reads it, as JSON",
		Long: `Print the workspace's configuration as one JSON document on stdout:
{configuration, mergedConfiguration, unsupported}. configuration is the
devcontainer.json with its variables substituted, as the devcontainer CLI's
read-configuration gives it; mergedConfiguration adds Features and image
metadata; unsupported names what berth leaves out, or could not resolve.
It reads files only: no engine, no network. With --list, it prints the
devcontainer.json files --config may choose from, one a line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ws := g.workspace
			if ws == "" {
				wd, err := os.Getwd()
				if err != nil {
					return err
				}
				ws = wd
			}
			ws, err := filepath.Abs(ws)
			if err != nil {
				return err
			}
			if list {
				files, err := devcontainer.Candidates(ws)
				if err != nil {
					return err
				}
				for _, f := range files {
					fmt.Fprintln(cmd.OutOrStdout(), f)
				}
				return nil
			}
			if ws, err = session.ResolveWorkspace(ws); err != nil {
				return err
			}
			// The backend's own judgement, without a connection to it.
			var check func(backends.Spec) []string
			if g.backend == incus.Name {
				check = incus.Unsupported
			}
			c, err := session.ReadConfiguration(ws, g.config, g.image, check)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), c)
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the configuration files to choose from")
	return cmd
}
