// Command buildagents builds cmd/berth-agent for every platform berth
// carries it for, reproducibly, and writes the compressed builds and their
// manifest into agent/embedded. `make agents` runs it.
//
// With -check it writes nothing, and fails when what is committed is not
// what the source builds; `make test` runs that.
//
// The builds are reproducible: one pinned Go toolchain, no cgo, no file
// paths, no VCS stamp, no build id, and every build setting that the
// environment could change set here.
package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/berthdev/berth/agent"
)

// manifest is manifestName. This command doesn't import package
// embedded, which doesn't compile until this command has made its files.
const manifestName = "agents.txt"

// toolchain is the Go that builds the embedded agents, whatever go runs
// this command; go fetches it when it is not the local one. It must be at
// least go.mod's go line. Changing it changes the builds: run `make agents`
// after.
const toolchain = "go1.26.8"

// platforms are those berth carries an agent for.
var platforms = []string{"linux/amd64", "linux/arm64"}

// buildFlags are go build's flags for an agent; with the environment in
// buildEnv they make the same bytes on any host.
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

func main() {
	check := flag.Bool("check", false, "build into a temporary directory and fail if the committed builds differ")
	flag.Parse()
	if err := run(context.Background(), *check); err != nil {
		fmt.Fprintln(os.Stderr, "buildagents:", err)
		os.Exit(1)
	}
}

// build is one fresh agent build.
type build struct {
	platform string
	file     string // base name of the compressed file
	data     []byte
	hash     string
}

func run(ctx context.Context, check bool) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "agent", "embedded")
	tmp, err := os.MkdirTemp("", "berth-agents-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var builds []build
	for _, p := range platforms {
		b, err := buildOne(ctx, root, tmp, p)
		if err != nil {
			return err
		}
		builds = append(builds, b)
	}
	manifest := manifestOf(builds)
	if check {
		return checkCommitted(dir, builds, manifest)
	}
	return write(dir, builds, manifest)
}

// moduleRoot finds the directory of berth's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run me inside berth's module")
	}
	return filepath.Dir(gomod), nil
}

func buildOne(ctx context.Context, root, tmp, platform string) (build, error) {
	goos, goarch, _ := strings.Cut(platform, "/")
	name := "berth-agent-" + goos + "-" + goarch
	out := filepath.Join(tmp, name)
	args := append([]string{"build"}, buildFlags...)
	args = append(args, "-o", out, "./cmd/berth-agent")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = buildEnv(goos, goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return build{}, fmt.Errorf("build %s: %w", platform, err)
	}
	bi, err := buildinfo.ReadFile(out)
	if err != nil {
		return build{}, fmt.Errorf("build %s: %w", platform, err)
	}
	if bi.GoVersion != toolchain {
		return build{}, fmt.Errorf("build %s: built by %s, want %s", platform, bi.GoVersion, toolchain)
	}
	bin, err := agent.Open(out) // also checks that it is static
	if err != nil {
		return build{}, fmt.Errorf("build %s: %w", platform, err)
	}
	if bin.Platform() != platform {
		return build{}, fmt.Errorf("build %s: got an executable for %s", platform, bin.Platform())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return build{}, err
	}
	return build{platform: platform, file: name + ".zst", data: data, hash: bin.Hash}, nil
}

// buildEnv is the environment of an agent build: the caller's, minus
// whatever changes the output, plus the pinned settings. Go reads its
// settings from the environment before its go env file, so setting them
// here wins over both.
func buildEnv(goos, goarch string) []string {
	keep := func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOPATH", "GOCACHE", "GOMODCACHE", "GOTMPDIR", "GOPROXY", "GOSUMDB", "GONOSUMDB",
			"GOPRIVATE", "GONOPROXY", "GOINSECURE", "GOVCS", "GOAUTH":
			return true
		}
		return !strings.HasPrefix(k, "GO") && !strings.HasPrefix(k, "CGO_")
	}
	var env []string
	for _, kv := range os.Environ() {
		if keep(kv) {
			env = append(env, kv)
		}
	}
	return append(env,
		"GOTOOLCHAIN="+toolchain, "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0",
		"GOFLAGS=-mod=readonly", "GOWORK=off", "GOAMD64=v1", "GOARM64=v8.0", "GOFIPS140=off",
	)
}

func manifestOf(builds []build) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# The agent builds berth carries; `make agents` writes this file and them.\n")
	fmt.Fprintf(&b, "# %s, GOOS=linux CGO_ENABLED=0 GOAMD64=v1 GOARM64=v8.0, go build %s ./cmd/berth-agent\n", toolchain, strings.Join(quoted(buildFlags), " "))
	fmt.Fprintf(&b, "# sha256 of the executable, platform, compressed file\n")
	for _, bd := range builds {
		fmt.Fprintf(&b, "%s %s %s\n", bd.hash, bd.platform, bd.file)
	}
	return b.Bytes()
}

func quoted(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " '") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

// committed returns the executable in a committed compressed file, or nil
// when there is none.
func committed(dir, file string) ([]byte, error) {
	z, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.DecodeAll(z, nil)
}

// stale lists the compressed files in dir that no build makes.
func stale(dir string, builds []build) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.zst"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		if !slices.ContainsFunc(builds, func(b build) bool { return b.file == filepath.Base(f) }) {
			out = append(out, f)
		}
	}
	return out, nil
}

func checkCommitted(dir string, builds []build, manifest []byte) error {
	var problems []string
	for _, b := range builds {
		old, err := committed(dir, b.file)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", b.file, err))
		case old == nil:
			problems = append(problems, fmt.Sprintf("%s is missing", b.file))
		case !bytes.Equal(old, b.data):
			problems = append(problems, fmt.Sprintf("%s is not what the source builds for %s (sha256 %.12s, %d bytes); the committed one is %d bytes", b.file, b.platform, b.hash, len(b.data), len(old)))
		default:
			fmt.Fprintf(os.Stderr, "buildagents: %s: %s matches the source (%d bytes)\n", b.platform, b.file, len(b.data))
		}
	}
	if old, err := os.ReadFile(filepath.Join(dir, manifestName)); err != nil || !bytes.Equal(old, manifest) {
		problems = append(problems, manifestName+" is out of date")
	}
	extra, err := stale(dir, builds)
	if err != nil {
		return err
	}
	for _, f := range extra {
		problems = append(problems, filepath.Base(f)+" is a build for no platform berth carries")
	}
	if len(problems) > 0 {
		return fmt.Errorf("the embedded agents in %s are not what the source builds:\n  %s\nrun `make agents` and commit agent/embedded", dir, strings.Join(problems, "\n  "))
	}
	return nil
}

func write(dir string, builds []build, manifest []byte) error {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return err
	}
	defer enc.Close()
	for _, b := range builds {
		path := filepath.Join(dir, b.file)
		// An unchanged build keeps its file, whatever the compressor does.
		if old, err := committed(dir, b.file); err == nil && bytes.Equal(old, b.data) {
			fi, _ := os.Stat(path)
			fmt.Fprintf(os.Stderr, "buildagents: %s: unchanged, %d bytes, %d compressed\n", b.platform, len(b.data), fi.Size())
			continue
		}
		z := enc.EncodeAll(b.data, nil)
		if err := writeFile(path, z); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "buildagents: %s: wrote %s, %d bytes, %d compressed\n", b.platform, b.file, len(b.data), len(z))
	}
	extra, err := stale(dir, builds)
	if err != nil {
		return err
	}
	for _, f := range extra {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(dir, manifestName), manifest)
}

// writeFile replaces path with data, never leaving half a file.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
