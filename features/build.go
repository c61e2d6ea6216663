package features

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// InstallDir is where Features' files go in the image or instance while
// they install.
const InstallDir = "/tmp/berth-features"

// Marker starts each install's output: "berth: installing Feature ID",
// so that a failed build's log tells which Feature failed.
const Marker = "berth: installing Feature "

// Users are the users the install scripts are told about.
type Users struct {
	// Container is _CONTAINER_USER: containerUser, else the image's user,
	// else root.
	Container string
	// Remote is _REMOTE_USER: remoteUser, else Container.
	Remote string
}

func (u Users) fill() Users {
	if u.Container == "" {
		u.Container = "root"
	}
	if u.Remote == "" {
		u.Remote = u.Container
	}
	return u
}

// Step is one Feature's install in an instance: its folder there and the
// script that runs it as root.
type Step struct {
	Feature *Feature
	Script  string   // container path of the script; run it with /bin/sh
	Env     []string // containerEnv of the Features installed before it, KEY=VALUE
}

// WriteContext writes a Docker build context into dir, an empty folder:
// a Dockerfile that adds one layer per Feature onto base, in install
// order, and each Feature's files. imageUser is the base image's own user,
// which the result keeps; labels go on the result, in one step. It returns
// the Dockerfile's path.
func (s *Set) WriteContext(dir, base, imageUser string, u Users, labels map[string]string) (string, error) {
	u = u.fill()
	var df strings.Builder
	// One COPY of every Feature and one RUN each: every step of the
	// engine's builder costs a container.
	fmt.Fprintf(&df, "# Features of berth: %s\nFROM %s\nUSER root\nCOPY features/ %s/\n", strings.Join(s.Refs(), ", "), base, InstallDir)
	for i, f := range s.Features {
		name := fmt.Sprintf("f%d", i)
		if err := copyTree(f.Dir, filepath.Join(dir, "features", name)); err != nil {
			return "", fmt.Errorf("features: build context: %w", err)
		}
		if err := writeInstallFiles(filepath.Join(dir, "features", name), f, u); err != nil {
			return "", fmt.Errorf("features: build context: %w", err)
		}
		fmt.Fprintf(&df, "RUN /bin/sh %s/berth-install.sh\n", path.Join(InstallDir, name))
		// After its install, as the devcontainer CLI does: the variables
		// often point at what install.sh put in place.
		if env := f.Meta.ContainerEnv; len(env) > 0 {
			df.WriteString("ENV")
			for _, k := range slices.Sorted(maps.Keys(env)) {
				fmt.Fprintf(&df, " %s=%s", k, strconv.Quote(env[k]))
			}
			df.WriteString("\n")
		}
	}
	if len(labels) > 0 {
		df.WriteString("LABEL")
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			fmt.Fprintf(&df, " %s=%s", dockerQuote(k), dockerQuote(labels[k]))
		}
		df.WriteString("\n")
	}
	if imageUser != "" && imageUser != "root" {
		fmt.Fprintf(&df, "USER %s\n", imageUser)
	}
	p := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(p, []byte(df.String()), 0o644); err != nil {
		return "", fmt.Errorf("features: build context: %w", err)
	}
	return p, nil
}

// Tar is what installs the Features in a running instance that was not
// built with them: a tar stream to extract at / and one Step per Feature,
// in install order.
func (s *Set) Tar(u Users) (io.Reader, []Step, error) {
	u = u.fill()
	tmp, err := os.MkdirTemp("", "berth-features-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var steps []Step
	env := map[string]string{}
	for i, f := range s.Features {
		name := fmt.Sprintf("f%d", i)
		local := filepath.Join(tmp, name)
		if err := copyTree(f.Dir, local); err != nil {
			return nil, nil, err
		}
		if err := writeInstallFiles(local, f, u); err != nil {
			return nil, nil, err
		}
		rel := strings.TrimPrefix(path.Join(InstallDir, name), "/")
		if err := tarTree(tw, local, rel); err != nil {
			return nil, nil, err
		}
		steps = append(steps, Step{Feature: f, Script: "/" + rel + "/berth-install.sh", Env: envList(env)})
		maps.Copy(env, ExpandEnv(f.Meta.ContainerEnv))
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	return &buf, steps, nil
}

// DefaultPath is the PATH that ExpandEnv assumes of an image.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExpandEnv expands ${VAR} in containerEnv values the way an image's ENV
// would, for instances that are not built: only PATH is known, as the
// usual default.
func ExpandEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = os.Expand(v, func(name string) string {
			if name == "PATH" {
				return DefaultPath
			}
			return ""
		})
	}
	return out
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

// dockerQuote quotes s for a Dockerfile instruction, where double-quoted
// strings take backslash escapes and expand $variables.
func dockerQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// writeInstallFiles adds the options' env file and the wrapper that runs
// install.sh with the spec's environment to a copy of f's folder.
func writeInstallFiles(dir string, f *Feature, u Users) error {
	var env strings.Builder
	for _, k := range slices.Sorted(maps.Keys(f.Env)) {
		fmt.Fprintf(&env, "%s=%s\n", k, shellQuote(f.Env[k]))
	}
	if err := os.WriteFile(filepath.Join(dir, "berth-feature.env"), []byte(env.String()), 0o644); err != nil {
		return err
	}
	id := f.ID
	if id == "" {
		id = f.Ref
	}
	script := fmt.Sprintf(`#!/bin/sh
# Runs the Feature's install.sh as the dev container spec says: as root,
# with its options and the _*_USER variables in the environment.
set -e
cd "$(dirname "$0")"
echo %s
home_of() { (getent passwd "$1" 2>/dev/null || grep "^$1:" /etc/passwd || true) | head -n 1 | cut -d: -f6; }
_CONTAINER_USER=%s
_REMOTE_USER=%s
_CONTAINER_USER_HOME=$(home_of "$_CONTAINER_USER")
_REMOTE_USER_HOME=$(home_of "$_REMOTE_USER")
export _CONTAINER_USER _REMOTE_USER _CONTAINER_USER_HOME _REMOTE_USER_HOME
set -a
. ./berth-feature.env
set +a
chmod +x ./install.sh
./install.sh
`, shellQuote(Marker+id+" ("+f.Ref+")"), shellQuote(u.Container), shellQuote(u.Remote))
	return os.WriteFile(filepath.Join(dir, "berth-install.sh"), []byte(script), 0o755)
}

// copyTree copies the regular files and folders of src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm()|0o644)
	})
}

// tarTree adds the folder local to tw under the name prefix, with its
// parent folders.
func tarTree(tw *tar.Writer, local, prefix string) error {
	var parents []string
	for dir := path.Dir(prefix); dir != "." && dir != "/"; dir = path.Dir(dir) {
		parents = append([]string{dir}, parents...)
	}
	for _, d := range parents {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o1777}); err != nil {
			return err
		}
	}
	return filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(local, p)
		name := path.Join(prefix, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
}
