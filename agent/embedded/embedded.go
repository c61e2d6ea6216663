// Package embedded holds the agent builds berth carries in itself, one per
// Linux platform, compressed, so that a plain `go install` gives a complete
// berth. `make agents` writes them (internal/buildagents), and `make test`
// checks that the source still builds exactly them.
//
// Only berth imports this package: the agent itself must not carry its
// predecessors.
package embedded

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/berthdev/berth/agent"
)

// Manifest is the file that lists the builds, one a line: the sha256 of the
// executable, its platform and its compressed file. Lines starting with #
// are comments.
const Manifest = "agents.txt"

//go:embed agents.txt *.zst
var files embed.FS

// Agents returns the builds berth carries, by platform. Nothing is
// decompressed until a build's bytes are first read.
func Agents() (agent.Set, error) {
	set, err := parsed()
	if err != nil {
		return nil, err
	}
	out := make(agent.Set, len(set))
	for p, b := range set {
		out[p] = b
	}
	return out, nil
}

var parsed = sync.OnceValues(func() (agent.Set, error) {
	m, err := files.ReadFile(Manifest)
	if err != nil {
		return nil, fmt.Errorf("embedded agents: %w", err)
	}
	entries, err := ParseManifest(m)
	if err != nil {
		return nil, err
	}
	set := agent.Set{}
	for _, e := range entries {
		goos, goarch, _ := strings.Cut(e.Platform, "/")
		set[e.Platform] = agent.Lazy(goos, goarch, e.Hash, agent.SourceEmbedded, func() ([]byte, error) {
			return decompress(e.File)
		})
	}
	return set, nil
})

// Entry is one line of the manifest.
type Entry struct {
	Hash     string // sha256 of the executable, hex
	Platform string // GOOS/GOARCH
	File     string // the compressed executable, beside the manifest
}

// ParseManifest reads a manifest's entries.
func ParseManifest(data []byte) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[0]) != 64 || strings.Count(f[1], "/") != 1 {
			return nil, fmt.Errorf("embedded agents: %s:%d: want \"SHA256 GOOS/GOARCH FILE\", got %q", Manifest, n, line)
		}
		out = append(out, Entry{Hash: f[0], Platform: f[1], File: f[2]})
	}
	return out, sc.Err()
}

// decompress returns the executable in the named file.
func decompress(name string) ([]byte, error) {
	z, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("embedded agents: %w", err)
	}
	return Decompress(z)
}

// Decompress returns the executable compressed in z.
func Decompress(z []byte) ([]byte, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	var h zstd.Header
	var dst []byte
	if h.Decode(z) == nil && h.HasFCS && h.FrameContentSize < 1<<30 {
		dst = make([]byte, 0, h.FrameContentSize)
	}
	out, err := d.DecodeAll(z, dst)
	if err != nil {
		return nil, fmt.Errorf("embedded agents: decompress: %w", err)
	}
	return out, nil
}
