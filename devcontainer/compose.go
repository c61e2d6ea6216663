package devcontainer

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Compose is a Docker Compose configuration: dockerComposeFile, service
// and runServices. berth reads the compose files only to name the project
// and to check that the services exist; Compose itself runs them.
type Compose struct {
	// Files are the compose files' absolute host paths, in the order
	// given: later files override earlier ones.
	Files []string
	// Service is the service berth works in (the dev service).
	Service string
	// RunServices are the services to start; nil starts every service.
	RunServices []string
	// Dir is the project directory: the first file's folder, where Compose
	// reads .env.
	Dir string
	// Project is the Compose project name: $COMPOSE_PROJECT_NAME, else
	// COMPOSE_PROJECT_NAME in the project's .env, else the files' name:,
	// else <workspace basename>_devcontainer for files in the workspace's
	// .devcontainer folder and the folder's name otherwise, as the
	// devcontainer CLI names it, lowercased and sanitised as Compose does.
	Project string
	// Dockerfiles are the host paths of the Dockerfiles of services with a
	// local build section, which Discover reads into the hash.
	Dockerfiles []string
}

// composeKey reads one of the Compose keys of devcontainer.json.
func (p *parser) composeKey(m member) error {
	var err error
	switch m.key {
	case "dockerComposeFile":
		p.composeNode = m.val
		switch v := m.val; {
		case v.isNull():
		case v.kind == '"':
			p.composeFiles = []string{v.str}
		default:
			p.composeFiles, err = p.names(v, m.key, "a file name or an array of file names")
		}
	case "service":
		p.service, err = p.str(m.val, m.key)
	case "runServices":
		if !m.val.isNull() {
			p.runServices, err = p.names(m.val, m.key, "an array of service names")
			if p.runServices == nil {
				p.runServices = []string{}
			}
		}
	}
	return err
}

// names reads an array of strings, wanting what want says.
func (p *parser) names(n *node, field, want string) ([]string, error) {
	if n.kind != '[' {
		return nil, p.wrongType(n, field, want)
	}
	return p.strList(n, field)
}

// compose settles Config.Compose once the top level is read. A Compose
// configuration wins over image and build, as in the devcontainer CLI.
func (p *parser) compose() (bool, error) {
	c := p.c
	if p.composeNode.isNull() {
		if p.service != "" {
			p.unknown("service")
		}
		if p.runServices != nil {
			p.unknown("runServices")
		}
		return false, nil
	}
	var files []string
	for _, f := range p.composeFiles {
		if strings.TrimSpace(f) != "" {
			files = append(files, hostPath(p.dir, f))
		}
	}
	if len(files) == 0 {
		return true, p.errorf(p.composeNode, "dockerComposeFile", "names no compose file")
	}
	if p.service == "" {
		return true, p.errorf(p.composeNode, "service", "a Docker Compose configuration needs \"service\": the service to work in")
	}
	c.Compose = &Compose{Files: files, Service: p.service, RunServices: p.runServices, Dir: filepath.Dir(files[0])}
	if p.image != "" {
		p.unknown("image")
	}
	if !p.build.isNull() {
		p.unknown("build")
	}
	return true, nil
}

// composeFile is what berth reads of one compose file.
type composeFile struct {
	name     string
	services map[string]bool
	include  bool // it includes other files, whose services berth doesn't read
	// dockerfiles are the services' Dockerfiles, relative to the project
	// directory, when they are plain paths.
	dockerfiles []string
}

// dockerfileOf returns the Dockerfile of a service's build section, a
// path relative to the project directory (or absolute); "" when it has
// none or it isn't a plain local path (a URL, a variable).
func dockerfileOf(build any) string {
	context, dockerfile := "", "Dockerfile"
	switch b := build.(type) {
	case string:
		context = b
	case map[string]any:
		context = "."
		if c, ok := b["context"].(string); ok {
			context = c
		}
		if d, ok := b["dockerfile"].(string); ok {
			dockerfile = d
		}
	default:
		return ""
	}
	for _, p := range []string{context, dockerfile} {
		if p == "" || strings.Contains(p, "$") || strings.Contains(p, "://") || strings.HasPrefix(p, "git@") {
			return ""
		}
	}
	if filepath.IsAbs(filepath.FromSlash(dockerfile)) {
		return filepath.FromSlash(dockerfile)
	}
	return filepath.Join(filepath.FromSlash(context), filepath.FromSlash(dockerfile))
}

// yamlLine matches the line yaml reports in its errors.
var (
	yamlLine     = lazyRegexp(`^yaml: line (\d+): `)
	yamlTypeLine = lazyRegexp(`^line (\d+): `)
)

// readComposeFile parses one compose file for its name and services.
func readComposeFile(file string, data []byte) (composeFile, error) {
	var doc struct {
		Name     string         `yaml:"name"`
		Services map[string]any `yaml:"services"`
		Include  any            `yaml:"include"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		e := &ConfigError{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = err.Error()[len(m[0]):]
		}
		if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
			e.Msg = strings.Join(te.Errors, "; ")
			if m := yamlTypeLine().FindStringSubmatch(te.Errors[0]); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Msg = strings.TrimPrefix(e.Msg, m[0])
			}
		}
		return composeFile{}, e
	}
	cf := composeFile{name: doc.Name, services: map[string]bool{}, include: doc.Include != nil}
	for s, v := range doc.Services {
		cf.services[s] = true
		if m, ok := v.(map[string]any); ok {
			if df := dockerfileOf(m["build"]); df != "" {
				cf.dockerfiles = append(cf.dockerfiles, df)
			}
		}
	}
	return cf, nil
}

// finishCompose reads the compose files and the project's .env: it checks
// the services, names the project and returns the contents that go into
// the hash.
func finishCompose(fsys fs.FS, c *Config, ws string, env func(string) (string, bool)) ([][]byte, error) {
	cc := c.Compose
	var inputs [][]byte
	services := map[string]bool{}
	checkable := true
	name := ""
	var dockerfiles []string
	for i, f := range cc.Files {
		data, found, err := readIfExists(fsys, f)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, &ConfigError{File: c.File, Field: fmt.Sprintf("dockerComposeFile[%d]", i), Msg: f + " does not exist"}
		}
		cf, err := readComposeFile(f, data)
		if err != nil {
			return nil, err
		}
		if cf.name != "" {
			name = cf.name
		}
		for s := range cf.services {
			services[s] = true
		}
		checkable = checkable && !cf.include
		inputs = append(inputs, data)
		dockerfiles = append(dockerfiles, cf.dockerfiles...)
	}
	// The services' Dockerfiles count too, so that a changed one makes
	// the instance stale; a missing one is Compose's to report.
	slices.Sort(dockerfiles)
	for _, df := range slices.Compact(dockerfiles) {
		if !filepath.IsAbs(df) {
			df = filepath.Join(cc.Dir, df)
		}
		data, _, err := readIfExists(fsys, df)
		if err != nil {
			return nil, err
		}
		cc.Dockerfiles = append(cc.Dockerfiles, df)
		inputs = append(inputs, []byte(df), data)
	}
	if checkable {
		if !services[cc.Service] {
			return nil, &ConfigError{File: c.File, Field: "service", Msg: fmt.Sprintf("no service %q in %s", cc.Service, strings.Join(cc.Files, ", "))}
		}
		for i, s := range cc.RunServices {
			if !services[s] {
				return nil, &ConfigError{File: c.File, Field: fmt.Sprintf("runServices[%d]", i), Msg: fmt.Sprintf("no service %q in %s", s, strings.Join(cc.Files, ", "))}
			}
		}
	}
	dotenv, _, err := readIfExists(fsys, filepath.Join(cc.Dir, ".env"))
	if err != nil {
		return nil, err
	}
	inputs = append(inputs, dotenv)
	cc.Project = composeProject(ws, cc.Dir, name, dotenv, env)
	return inputs, nil
}

// composeProject names the project as the devcontainer CLI does, so that
// the user's own docker compose commands in that folder see it too.
func composeProject(ws, dir, name string, dotenv []byte, env func(string) (string, bool)) string {
	if env != nil {
		if v, ok := env("COMPOSE_PROJECT_NAME"); ok {
			if p := ProjectName(v); p != "" {
				return p
			}
		}
	}
	if v, ok := dotenvValue(dotenv, "COMPOSE_PROJECT_NAME"); ok {
		if p := ProjectName(v); p != "" {
			return p
		}
	}
	if p := ProjectName(name); p != "" && !strings.Contains(name, "$") {
		return p
	}
	if dir == filepath.Join(ws, ".devcontainer") {
		return ProjectName(filepath.Base(ws) + "_devcontainer")
	}
	return ProjectName(filepath.Base(dir))
}

// ProjectName lowercases s and drops what Compose doesn't allow in a
// project name.
func ProjectName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	return strings.TrimLeft(b.String(), "-_")
}

// dotenvValue finds KEY=value in a .env file's bytes.
func dotenvValue(data []byte, key string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	val, found := "", false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) != key {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		val, found = v, true
	}
	return val, found
}
