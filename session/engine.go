package session

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// engineSpec copies the configuration's engine settings (its own keys and
// runArgs) into spec. --env-file files are read here, on the host, and
// lose to containerEnv and -e as they do on docker's command line.
func engineSpec(spec *backends.Spec, cfg *devcontainer.Config) error {
	spec.CapAdd = cfg.CapAdd
	spec.SecurityOpt = cfg.SecurityOpt
	spec.Privileged = cfg.Privileged
	spec.Entrypoint = cfg.Entrypoints
	spec.KeepCommand = !cfg.OverridesCommand()
	spec.User = cfg.ContainerUser
	r := cfg.Run
	spec.Devices, spec.GPUs, spec.ExtraHosts = r.Devices, r.GPUs, r.ExtraHosts
	spec.Network, spec.ShmSize, spec.Hostname = r.Network, r.ShmSize, r.Hostname
	for _, u := range r.Ulimits {
		spec.Ulimits = append(spec.Ulimits, backends.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, p := range cfg.AppPort {
		pb, err := devcontainer.ParsePublish(p)
		if err != nil {
			return fmt.Errorf("%w: appPort: %v", ErrBadConfig, err)
		}
		spec.Publish = append(spec.Publish, backends.PortPublish{HostIP: pb.HostIP, HostPort: pb.HostPort, ContainerPort: pb.ContainerPort, Proto: pb.Proto})
	}
	if len(r.Labels) > 0 {
		// berth's own labels win: they are how it finds its instance.
		labels := maps.Clone(r.Labels)
		maps.Copy(labels, spec.Labels)
		spec.Labels = labels
	}
	if len(r.EnvFiles) > 0 {
		env := map[string]string{}
		for _, f := range r.EnvFiles {
			if err := readEnvFile(f, env); err != nil {
				return err
			}
		}
		maps.Copy(env, cfg.ContainerEnv)
		spec.Env = envList(env)
	}
	return nil
}

// readEnvFile reads docker's --env-file format into env: KEY=VALUE lines,
// # comments, and a bare KEY taking the host's value if it has one.
func readEnvFile(path string, env map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: runArgs --env-file: %v", ErrBadConfig, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if k = strings.TrimSpace(k); k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("%w: %s:%d: %q is not KEY=VALUE", ErrBadConfig, path, n, line)
		}
		if !ok {
			if hv, set := os.LookupEnv(k); set {
				env[k] = hv
			}
			continue
		}
		env[k] = v
	}
	return sc.Err()
}
