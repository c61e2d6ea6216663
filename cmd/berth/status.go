package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/rpc"
)

func statusCmd(g *globalFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the workspace's container and the agent build that serves it",
		Long: `Show the workspace's container, without starting or creating anything, and
the agent build berth runs in it: its hash, its platform and where it came
from ($BERTH_AGENT, a berth-agent beside berth, or embedded in berth), or
why processes use the engine's plain exec instead.

With --json, print berth/status's answer: the Instance object, or null
when the workspace has no container.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, cliOptions{})
			if err != nil {
				return err
			}
			defer s.close()
			var inst *rpc.Instance
			if err := s.c.Call(cmd.Context(), "berth/status", rpc.WorkspaceParams{}, &inst); err != nil {
				return cliErr(err)
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), inst)
			}
			return printStatus(cmd.OutOrStdout(), s.ws, inst, s.init.Capabilities.Berth)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print the Instance object (null when there is no container)")
	return cmd
}

// printStatus writes the status as aligned lines for people.
func printStatus(w io.Writer, ws string, inst *rpc.Instance, caps rpc.BerthCapabilities) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	if inst == nil {
		line("workspace", "%s", ws)
		line("container", "none (`berth up` creates it)")
		line("engine", "%s", describeEngine(caps.Engine))
		switch {
		case !caps.Agent:
			line("agent", "none: %s", caps.AgentReason)
		default:
			for _, b := range caps.Agents {
				line("agent", "%s", describeBuild(b))
			}
		}
		return tw.Flush()
	}
	line("workspace", "%s", inst.Workspace)
	line("container", "%s (%s, %s)", inst.Name, inst.State, inst.Backend)
	if inst.Engine != nil {
		line("engine", "%s", describeEngine(*inst.Engine))
	}
	line("image", "%s", inst.Image)
	line("workdir", "%s", inst.Workdir)
	if inst.ConfigFile != "" {
		line("config", "%s (%s)", inst.ConfigFile, inst.ConfigSource)
	} else if inst.ConfigSource != "" {
		line("config", "%s", inst.ConfigSource)
	}
	if inst.Stale {
		line("stale", "the configuration changed since the container was made; `berth up --recreate` rebuilds it")
	}
	if inst.HookError != "" {
		line("hooks", "failed: %s", inst.HookError)
	}
	a := inst.Agent
	switch {
	case !a.Enabled:
		line("agent", "none, plain exec: %s", a.Reason)
	case a.Build == "":
		line("agent", "enabled")
	case a.Connected:
		line("agent", "%s, running", describeBuild(a.AgentBuild))
	default:
		line("agent", "%s", describeBuild(a.AgentBuild))
	}
	return tw.Flush()
}

// describeBuild names a build and where it came from.
func describeBuild(b rpc.AgentBuild) string {
	from := map[string]string{
		string(agent.SourceEnv):      "from $" + agent.EnvBinary,
		string(agent.SourceBeside):   "from the berth-agent beside berth",
		string(agent.SourceEmbedded): "embedded in berth",
		string(agent.SourceInstance): "another berth's build, which this one uses",
	}[b.Source]
	if from == "" {
		from = b.Source
	}
	return fmt.Sprintf("build %.12s for %s, %s", b.Build, b.Platform, from)
}

// describeEngine names the engine's endpoint, whether it is remote, and
// the three capabilities that follow.
func describeEngine(e rpc.Engine) string {
	where := "local"
	if e.Remote {
		where = "remote"
	}
	ep := e.Endpoint
	if ep == "" {
		ep = "(endpoint unknown)"
	}
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprintf("%s, %s: bind mounts %s, fast path %s, netns %s", ep, where, yes(e.BindMounts), yes(e.FastPath), yes(e.NetNS))
}
