package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berthdev/berth/agent"
	"github.com/berthdev/berth/rpc"
)

func statusCmd(g *globalFlags) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the workspace's container, its engine and the agent build that serves it",
		Long: `Show the workspace's container, without starting or creating anything; its
engine: where berth reaches it, whether it is remote (then the workspace
is synced, not mounted, and the agent's fast path and network-namespace
dialling are off); and the agent build berth runs in it: its hash, its
platform and where it came from ($BERTH_AGENT, a berth-agent beside berth,
or embedded in berth), or why processes use the engine's plain exec
instead. A running container's memory, CPU and process use, measured over
a second, come with its limits.

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
			if err := s.c.Call(cmd.Context(), "berth/status", rpc.StatusParams{Usage: true}, &inst); err != nil {
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
	if inst.Health != "" {
		if inst.HealthError != "" {
			line("health", "%s: %s", inst.Health, inst.HealthError)
		} else {
			line("health", "%s", inst.Health)
		}
	}
	if inst.Usage == nil && inst.State == "running" {
		line("usage", "unknown: the engine can't measure this container")
	}
	if u := inst.Usage; u != nil {
		l := u.Limits
		line("memory", "%s of %s", units.BytesSize(float64(u.Memory)), orUnlimited(l.Memory > 0, units.BytesSize(float64(l.Memory))))
		line("cpu", "%.1f%% of %s", u.CPUPercent, orUnlimited(l.CPUs > 0, strconv.FormatFloat(l.CPUs, 'f', -1, 64)+" CPUs"))
		line("processes", "%d of %s", u.Processes, orUnlimited(l.Pids > 0, strconv.FormatInt(l.Pids, 10)))
	}
	switch {
	case inst.Sync && inst.Engine != nil && inst.Engine.Remote:
		line("workspace files", "synced (a remote engine can't bind-mount host folders)")
	case inst.Sync:
		line("workspace files", "synced (workspaceMount type copy)")
	default:
		line("workspace files", "bind-mounted")
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

func orUnlimited(limited bool, limit string) string {
	if !limited {
		return "unlimited"
	}
	return limit
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

func limitsCmd(g *globalFlags) *cobra.Command {
	var (
		memory     string
		cpus, pids float64
		jsonOut    bool
	)
	cmd := &cobra.Command{
		Use:   "limits [--memory SIZE] [--cpus N] [--pids N]",
		Short: "Change the running container's resource limits, or show them",
		Long: `Change the memory, CPU and process limits of the workspace's running
container in place, without restarting it, and print the limits now in
effect; without flags, print them. SIZE is bytes or a size such as 512m
or 2g. Limits set here last until the container is recreated; to keep
them, set customizations.berth.limits in devcontainer.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSession(cmd, g, cliOptions{})
			if err != nil {
				return err
			}
			defer s.close()
			var p rpc.LimitsParams
			if memory != "" {
				p.Memory, _ = json.Marshal(memory)
			}
			if cmd.Flags().Changed("cpus") {
				p.CPUs = &cpus
			}
			if cmd.Flags().Changed("pids") {
				p.Pids = &pids
			}
			var got rpc.Limits
			if err := s.c.Call(cmd.Context(), "berth/limits", p, &got); err != nil {
				return cliErr(err)
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), got)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "memory\t%s\n", orUnlimited(got.Memory > 0, units.BytesSize(float64(got.Memory))))
			fmt.Fprintf(tw, "cpus\t%s\n", orUnlimited(got.CPUs > 0, strconv.FormatFloat(got.CPUs, 'f', -1, 64)))
			fmt.Fprintf(tw, "pids\t%s\n", orUnlimited(got.Pids > 0, strconv.FormatInt(got.Pids, 10)))
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&memory, "memory", "", "memory limit, such as 512m or 2g")
	cmd.Flags().Float64Var(&cpus, "cpus", 0, "CPU limit in CPUs, such as 1.5")
	cmd.Flags().Float64Var(&pids, "pids", 0, "limit on the number of processes")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print berth/limits' answer")
	return cmd
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
