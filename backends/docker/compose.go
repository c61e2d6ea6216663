package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"go.yaml.in/yaml/v3"

	"github.com/berthdev/berth/backends"
)

// A Compose instance is the dev service's container of a Compose project
// that the user's own Compose CLI runs. berth adds an override file, kept
// in ComposeSpec.StateDir, that gives the dev service berth's labels,
// mounts, environment and main process, so Find, Exec and the rest work on
// it as on any instance; Compose's own labels (project, config files,
// working dir) let Down reach the whole project later.

// Labels of Compose on its containers.
const (
	composeProjectLabel = "com.docker.compose.project"
	composeServiceLabel = backends.LabelComposeService
	composeFilesLabel   = "com.docker.compose.project.config_files"
	composeDirLabel     = "com.docker.compose.project.working_dir"
)

const labelCompose = backends.LabelCompose

// overrideName is berth's override file in ComposeSpec.StateDir.
const overrideName = "docker-compose.berth.yml"

// composeTail bounds the Compose output an error carries.
const composeTail = 2048

// errNoCompose says how to get a Compose CLI.
var errNoCompose = fmt.Errorf("docker: Docker Compose configurations need the Compose CLI, and neither `docker compose` nor `docker-compose` works here: install one (for example apt-get install docker-compose), or point BERTH_COMPOSE at one: %w", backends.ErrNotSupported)

// composeCLI finds the user's Compose CLI once: BERTH_COMPOSE (a command
// line), else the docker compose plugin, else docker-compose.
type composeCLI struct {
	once sync.Once
	argv []string
	err  error
}

func (c *composeCLI) get(ctx context.Context) ([]string, error) {
	c.once.Do(func() {
		if v := strings.Fields(os.Getenv("BERTH_COMPOSE")); len(v) > 0 {
			c.argv = v
			return
		}
		if docker, err := exec.LookPath("docker"); err == nil {
			cmd := exec.CommandContext(ctx, docker, "compose", "version")
			if cmd.Run() == nil {
				c.argv = []string{docker, "compose"}
				return
			}
		}
		if dc, err := exec.LookPath("docker-compose"); err == nil {
			c.argv = []string{dc}
			return
		}
		c.err = errNoCompose
	})
	return c.argv, c.err
}

// compose runs the Compose CLI on a project: files are the -f files in
// order. Its stderr goes out as progress, and its last lines go into the
// error. It returns stdout.
func (b *Backend) compose(ctx context.Context, project, dir string, files, env []string, args ...string) ([]byte, error) {
	base, err := b.composeCLI.get(ctx)
	if err != nil {
		return nil, err
	}
	argv := append(slices.Clone(base), "--ansi", "never", "-p", project, "--project-directory", dir)
	for _, f := range files {
		argv = append(argv, "-f", f)
	}
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if b.name == PodmanName {
		// The Compose CLI finds Docker, not Podman, on its own.
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+b.ep.Host)
	}
	setDeathSignal(cmd)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	tail := &tailBuffer{max: composeTail}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			tail.add(line)
			if strings.TrimSpace(line) != "" {
				backends.Report(ctx, "compose %s: %s", args[0], line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	b.log.Debug("compose", "argv", argv)
	err = cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("docker: compose %s: %w", args[0], ctx.Err())
		}
		return nil, &composeError{op: args[0], err: err, tail: tail.String()}
	}
	return stdout.Bytes(), nil
}

// composeError is a failed Compose command with the end of its output.
type composeError struct {
	op   string
	err  error
	tail string
}

func (e *composeError) Error() string {
	msg := fmt.Sprintf("docker: compose %s: %v", e.op, e.err)
	if t := strings.TrimSpace(e.tail); t != "" {
		msg += ":\n" + t
	}
	return msg
}

// Unwrap says a failed config is the files' fault, and anything else
// Compose's.
func (e *composeError) Unwrap() error {
	if e.op == "config" {
		return backends.ErrComposeConfig
	}
	return backends.ErrCompose
}

// tailBuffer keeps the last lines written, up to max bytes.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	n     int
	max   int
}

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	t.n += len(line) + 1
	for t.n > t.max && len(t.lines) > 1 {
		t.n -= len(t.lines[0]) + 1
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// composeConfig is what berth reads of `compose config`: the merged,
// normalised project.
type composeConfig struct {
	Version  string                    `yaml:"version"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Volumes []yaml.Node `yaml:"volumes"`
}

// upServices lists the services up starts: runServices and the dev
// service, or every service (none named).
func upServices(cs *backends.ComposeSpec) []string {
	if cs.RunServices == nil {
		return nil
	}
	out := slices.Clone(cs.RunServices)
	if !slices.Contains(out, cs.Service) {
		out = append(out, cs.Service)
	}
	return out
}

// remoteBinds fails for the first bind mount of a started service: a
// remote engine can't see the host's paths.
func remoteBinds(cfg composeConfig, started []string, host string) error {
	names := started
	if names == nil {
		for n := range cfg.Services {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	for _, name := range names {
		for _, v := range cfg.Services[name].Volumes {
			src, spec := "", ""
			switch v.Kind {
			case yaml.ScalarNode:
				// SOURCE:TARGET[:MODE] binds when SOURCE is a path; a lone
				// TARGET is an anonymous volume.
				spec = v.Value
				var ok bool
				src, _, ok = strings.Cut(v.Value, ":")
				if !ok || !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "~") {
					src = ""
				}
			case yaml.MappingNode:
				var m struct {
					Type   string `yaml:"type"`
					Source string `yaml:"source"`
					Target string `yaml:"target"`
				}
				if err := v.Decode(&m); err == nil && m.Type == "bind" {
					src, spec = m.Source, m.Source+":"+m.Target
				}
			}
			if src != "" {
				return fmt.Errorf("docker: compose service %q binds the host path %s (volume %q), but the engine at %s is remote and can't see this host's files: use a named volume, or a local engine: %w",
					name, src, spec, host, backends.ErrComposeConfig)
			}
		}
	}
	return nil
}

// initSupported reports whether a compose file version knows "init".
func initSupported(version string) bool {
	major, minor, _ := strings.Cut(version, ".")
	m, _ := strconv.Atoi(minor)
	switch major {
	case "":
		return true
	case "2":
		return m >= 2
	case "3":
		return m >= 7
	}
	return false
}

// override is berth's override file for the dev service: what create
// gives a container of its own. withInit says whether Init is the main
// process.
func (b *Backend) override(spec backends.Spec, version string, withInit bool) ([]byte, error) {
	cs := spec.Compose
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	labels[backends.LabelManaged] = "true"
	labels[backends.LabelWorkspace] = spec.Workspace
	labels[backends.LabelWorkdir] = spec.Workdir
	labels[backends.LabelVersion] = b.version
	labels[labelCompose] = cs.Project

	svc := map[string]any{"labels": labels}
	if !cs.KeepCommand {
		entry := keepAlive
		if withInit {
			entry = spec.Init
		}
		// Entrypoint and command both set: an empty command would not
		// clear the service's own in every Compose version.
		svc["entrypoint"] = entry[:1]
		svc["command"] = entry[1:]
		if initSupported(version) {
			svc["init"] = true
		}
	}
	if len(spec.Env) > 0 {
		env := map[string]string{}
		for _, kv := range spec.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		svc["environment"] = env
	}
	var vols, tmpfs []string
	named := map[string]any{}
	for _, m := range spec.Mounts {
		ro := ""
		if m.ReadOnly {
			ro = ":ro"
		}
		switch m.Type {
		case "tmpfs":
			tmpfs = append(tmpfs, m.Container)
		case "volume":
			if m.Host == "" {
				vols = append(vols, m.Container)
				continue
			}
			// A volume of its own name, as docker run makes it, not
			// one of the project's.
			named[m.Host] = map[string]any{"name": m.Host}
			vols = append(vols, m.Host+":"+m.Container+ro)
		default:
			vols = append(vols, m.Host+":"+m.Container+ro)
		}
	}
	if len(vols) > 0 {
		svc["volumes"] = vols
	}
	if len(tmpfs) > 0 {
		svc["tmpfs"] = tmpfs
	}
	doc := map[string]any{"services": map[string]any{cs.Service: svc}}
	if version != "" {
		doc["version"] = version
	}
	if len(named) > 0 {
		doc["volumes"] = named
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("docker: compose override: %w", err)
	}
	return append([]byte("# Written by berth for the workspace "+spec.Workspace+"; berth rewrites it.\n"), out...), nil
}

// writeOverride writes the override file and returns the -f files.
func (b *Backend) writeOverride(spec backends.Spec, version string, withInit bool) ([]string, error) {
	cs := spec.Compose
	data, err := b.override(spec, version, withInit)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cs.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("docker: compose override: %w", err)
	}
	p := filepath.Join(cs.StateDir, overrideName)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("docker: compose override: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return nil, fmt.Errorf("docker: compose override: %w", err)
	}
	return append(slices.Clone(cs.Files), p), nil
}

// ensureCompose is Ensure for a Compose dev service: up the project, with
// the agent copied into the dev service before its first start.
func (b *Backend) ensureCompose(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	cs := spec.Compose
	if cs.StateDir == "" || cs.Project == "" || cs.Service == "" || len(cs.Files) == 0 {
		return backends.Instance{}, false, errors.New("docker: compose: incomplete spec")
	}
	inst, err := b.Find(ctx, spec.Workspace)
	switch {
	case err == nil && inst.Labels[labelCompose] != cs.Project:
		// The workspace's instance predates this configuration: it is
		// used as it is, stale, until the user recreates it.
		inst, err = b.start(ctx, inst)
		return inst, false, err
	case err == nil && inst.State == backends.StateRunning:
		if err := b.startOthers(ctx, inst, cs); err != nil {
			// The dev service works without them; the user sees why
			// the others are missing in the log.
			b.log.Warn("could not start the Compose project's other services", "project", cs.Project, "err", err)
		}
		return inst, false, nil
	case err != nil && !errors.Is(err, backends.ErrNotFound):
		return backends.Instance{}, false, err
	}
	prior := ""
	if err == nil {
		prior = inst.ID
	}

	// One berth at a time per project on this host: two Compose runs on
	// one project race for its containers' names.
	unlock, err := lockFile(ctx, filepath.Join(cs.StateDir, "lock"))
	if err != nil {
		return backends.Instance{}, false, err
	}
	defer unlock()
	if inst, err := b.findDev(ctx, spec.Workspace, cs); err == nil && inst.State == backends.StateRunning {
		// Another berth brought it up while this one waited.
		inst, err := b.inspectManaged(ctx, inst.ID)
		return inst, err == nil && inst.ID != prior, err
	}

	out, err := b.compose(ctx, cs.Project, cs.Dir, cs.Files, cs.Env, "config")
	if err != nil {
		return backends.Instance{}, false, err
	}
	var cfg composeConfig
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		return backends.Instance{}, false, fmt.Errorf("docker: compose config: unreadable output: %v: %w", err, backends.ErrCompose)
	}
	if !b.Local() {
		if err := remoteBinds(cfg, upServices(cs), b.ep.Host); err != nil {
			return backends.Instance{}, false, err
		}
	}
	withInit := len(spec.Init) > 0 && !cs.KeepCommand
	inst, err = b.composeUp(ctx, spec, cfg.Version, withInit, prior)
	if err != nil {
		return backends.Instance{}, false, err
	}
	return inst, inst.ID != prior, nil
}

// composeUp creates the project's containers, puts spec.Files into a dev
// service that isn't running, and starts them all. A dev container it
// made is removed again when it fails: nothing half-made carries the
// workspace's labels.
func (b *Backend) composeUp(ctx context.Context, spec backends.Spec, version string, withInit bool, prior string) (inst backends.Instance, err error) {
	cs := spec.Compose
	services := upServices(cs)
	made := ""
	defer func() {
		if err != nil && made != "" && made != prior {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
			defer cancel()
			if rerr := b.cli.ContainerRemove(rctx, made, container.RemoveOptions{Force: true}); rerr != nil {
				b.log.Warn("could not remove the half-made dev service", "instance", made, "err", rerr)
			}
		}
	}()
	files, err := b.writeOverride(spec, version, withInit)
	if err != nil {
		return backends.Instance{}, err
	}
	backends.Report(ctx, "creating Compose project %s", cs.Project)
	create := []string{"up", "--no-start"}
	if prior == "" {
		// A new dev service (the first, or a recreate) gets its image
		// built anew, as the devcontainer CLI's rebuild does; the engine's
		// build cache keeps an unchanged one quick.
		create = append(create, "--build")
	}
	if _, err := b.compose(ctx, cs.Project, cs.Dir, files, cs.Env, append(create, services...)...); err != nil {
		return backends.Instance{}, err
	}
	dev, err := b.findDev(ctx, spec.Workspace, cs)
	if err != nil {
		return backends.Instance{}, err
	}
	made = dev.ID
	if dev.State != backends.StateRunning && spec.Files != nil && withInit {
		goos, arch, err := b.Platform(ctx, dev.ID)
		if err != nil {
			return backends.Instance{}, err
		}
		platform := goos + "/" + arch
		if !slices.Contains(spec.InitPlatforms, platform) {
			// No agent build for this image: back to the keep-alive.
			b.log.Info("no agent build for the dev service's platform; using the keep-alive", "platform", platform)
			return b.composeUp(ctx, spec, version, false, prior)
		}
		if err := b.copyFiles(ctx, dev.ID, spec.Files, platform); err != nil {
			return backends.Instance{}, err
		}
	}
	backends.Report(ctx, "starting Compose project %s", cs.Project)
	if _, err := b.compose(ctx, cs.Project, cs.Dir, files, cs.Env, append([]string{"up", "-d"}, services...)...); err != nil {
		return backends.Instance{}, err
	}
	inst, err = b.inspectManaged(ctx, dev.ID)
	if err != nil {
		return backends.Instance{}, err
	}
	if inst.State != backends.StateRunning {
		return backends.Instance{}, fmt.Errorf("docker: compose up: the service %q is not running: %w", cs.Service, backends.ErrCompose)
	}
	b.log.Info("compose project up", "instance", inst.Name, "workspace", spec.Workspace, "project", cs.Project)
	return inst, nil
}

// findDev finds the dev service's container among the workspace's
// instances by Compose's labels too.
func (b *Backend) findDev(ctx context.Context, ws string, cs *backends.ComposeSpec) (backends.Instance, error) {
	list, err := b.list(ctx, filters.Arg("label", backends.LabelWorkspace+"="+ws), filters.Arg("label", composeProjectLabel+"="+cs.Project),
		filters.Arg("label", composeServiceLabel+"="+cs.Service))
	if err != nil {
		return backends.Instance{}, err
	}
	for _, inst := range list {
		if inst.Workspace == ws {
			return inst, nil
		}
	}
	return backends.Instance{}, fmt.Errorf("docker: compose made no container of the service %q with berth's labels: %w", cs.Service, backends.ErrCompose)
}

// startOthers starts the project's other containers when some are
// stopped: up brings the whole project up, as the devcontainer CLI's does,
// without recreating the running dev service.
func (b *Backend) startOthers(ctx context.Context, dev backends.Instance, cs *backends.ComposeSpec) error {
	cs2, err := b.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", composeProjectLabel+"="+cs.Project))})
	if err != nil {
		return b.mapErr("list "+cs.Project, err, nil)
	}
	want := upServices(cs)
	var stopped []string
	for _, c := range cs2 {
		svc := c.Labels[composeServiceLabel]
		if c.State != "running" && (want == nil || slices.Contains(want, svc)) && !slices.Contains(stopped, svc) {
			stopped = append(stopped, svc)
		}
	}
	if len(stopped) == 0 {
		return nil
	}
	files := composeFiles(dev.Labels)
	if len(files) == 0 {
		return nil
	}
	backends.Report(ctx, "starting the Compose project's services %s", strings.Join(stopped, ", "))
	_, err = b.compose(ctx, cs.Project, cs.Dir, files, cs.Env, append([]string{"start"}, stopped...)...)
	return err
}

// forgetOverride deletes berth's override file, and its folder when
// nothing else is left there, once the project is gone.
func forgetOverride(files []string) {
	for _, f := range files {
		if filepath.Base(f) != overrideName {
			continue
		}
		dir := filepath.Dir(f)
		_ = os.Remove(f)
		_ = os.Remove(filepath.Join(dir, "lock"))
		_ = os.Remove(dir) // fails, harmlessly, when not empty
	}
}

// composeFiles are the -f files Compose recorded on a container.
func composeFiles(labels map[string]string) []string {
	var out []string
	for _, f := range strings.Split(labels[composeFilesLabel], ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Down implements backends.Downer. For a Compose dev service it stops
// every container of the project through the engine, at once, so that
// berth's exit (shutdownAction) is not held up by a Compose CLI's start;
// remove runs `down` with the files Compose recorded on the container,
// which also removes the project's networks, and falls back to removing
// the containers through the engine when those files are gone.
func (b *Backend) Down(ctx context.Context, id string, remove bool) error {
	c, err := b.cli.ContainerInspect(ctx, id)
	if err != nil {
		return b.mapErr("inspect "+id, err, backends.ErrNotFound)
	}
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	project := labels[labelCompose]
	if project == "" || labels[composeProjectLabel] != project {
		switch {
		case remove:
			return b.Remove(ctx, id)
		case c.State != nil && !c.State.Running:
			return nil
		}
		return b.Stop(ctx, id)
	}
	if remove {
		files, dir := composeFiles(labels), labels[composeDirLabel]
		readable := len(files) > 0 && dir != ""
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				readable = false
			}
		}
		if readable {
			_, err := b.compose(ctx, project, dir, files, nil, "down", "-t", strconv.Itoa(stopTimeout))
			if err == nil {
				forgetOverride(files)
			}
			if err == nil || ctx.Err() != nil {
				return err
			}
			b.log.Warn("compose down failed; removing the project's containers through the engine", "project", project, "err", err)
		}
	}
	list, err := b.cli.ContainerList(ctx, container.ListOptions{All: remove, Filters: filters.NewArgs(filters.Arg("label", composeProjectLabel+"="+project))})
	if err != nil {
		return b.mapErr("list "+project, err, nil)
	}
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, pc := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if remove {
				errs[i] = b.Remove(ctx, pc.ID)
			} else {
				errs[i] = b.Stop(ctx, pc.ID)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
