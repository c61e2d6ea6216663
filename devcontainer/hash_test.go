package devcontainer

import (
	"maps"
	"testing"
	"testing/fstest"
)

const hashConfig = `{
	"name": "svc",
	"build": { "dockerfile": "Dockerfile", "context": "..", "args": { "V": "${localEnv:V:1}" } },
	"forwardPorts": [8080],
	"remoteUser": "dev",
}`

// Same values, other formatting, other comments, keys in another order.
const hashConfigReformatted = `// Service dev container.
{
  /* build */ "build": {"args": {"V": "${localEnv:V:1}",}, "context": "..",
                        "dockerfile": "Dockerfile"},
  "remoteUser": "dev", // who runs things
  "forwardPorts": [ 8080 ], "name": "svc"
}
`

func TestHash(t *testing.T) {
	base := fstest.MapFS{
		fDevcontainer:                 file(hashConfig),
		"ws/.devcontainer/Dockerfile": file("FROM golang:1.26\n"),
		fContainerfile:                file("FROM debian\n"),
	}
	with := func(name, data string) fstest.MapFS {
		f := maps.Clone(base)
		f[name] = file(data)
		return f
	}
	hash := func(t *testing.T, fsys fstest.MapFS, env map[string]string) string {
		t.Helper()
		c, err := discover(fsys, "/ws", "", "", mapEnv(env))
		if err != nil {
			t.Fatalf("discover: %v", err)
		}
		return c.Hash
	}
	baseHash := hash(t, base, nil)
	if again := hash(t, base, nil); again != baseHash {
		t.Fatalf("hash not stable: %s then %s", baseHash, again)
	}

	tests := []struct {
		name string
		fsys fstest.MapFS
		env  map[string]string
		same bool
	}{
		{name: "reformatted, comments changed, keys reordered", fsys: with(fDevcontainer, hashConfigReformatted), same: true},
		{name: "unknown key added", fsys: with(fDevcontainer, hashConfig[:len(hashConfig)-1]+`"fancyNewKey": {"x": {}}}`), same: true},
		{name: "a Feature added", fsys: with(fDevcontainer, hashConfig[:len(hashConfig)-1]+`"features": {"./x": {}}}`)},
		{name: "variable resolving to the same value", fsys: base, env: map[string]string{"V": "1"}, same: true},
		{name: "an unrelated file changes", fsys: with(fContainerfile, "FROM alpine\n"), same: true},
		{name: "Dockerfile changes", fsys: with("ws/.devcontainer/Dockerfile", "FROM golang:1.26\nRUN true\n")},
		{name: "a config value changes", fsys: with(fDevcontainer, `{
			"name": "svc",
			"build": { "dockerfile": "Dockerfile", "context": "..", "args": { "V": "${localEnv:V:1}" } },
			"forwardPorts": [8081],
			"remoteUser": "dev",
		}`)},
		{name: "a variable's value changes", fsys: base, env: map[string]string{"V": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := hash(t, tt.fsys, tt.env)
			if same := got == baseHash; same != tt.same {
				t.Errorf("hash %s vs base %s: same = %v, want %v", got, baseHash, same, tt.same)
			}
		})
	}
}

func TestHashOtherSources(t *testing.T) {
	hash := func(fsys fstest.MapFS, image string) string {
		t.Helper()
		c, err := discover(fsys, "/ws", "", image, nil)
		if err != nil {
			t.Fatalf("discover: %v", err)
		}
		return c.Hash
	}
	cf1 := hash(fstest.MapFS{fContainerfile: file("FROM debian\n")}, "")
	cf2 := hash(fstest.MapFS{fContainerfile: file("FROM debian:bookworm\n")}, "")
	df1 := hash(fstest.MapFS{fDockerfile: file("FROM debian\n")}, "")
	img1 := hash(fstest.MapFS{}, "alpine:3")
	img2 := hash(fstest.MapFS{}, "alpine:3.20")
	hashes := map[string]string{"containerfile": cf1, "containerfile edited": cf2, "dockerfile": df1, "image": img1, "other image": img2}
	seen := map[string]string{}
	for name, h := range hashes {
		if other, ok := seen[h]; ok {
			t.Errorf("%s and %s hash the same: %s", name, other, h)
		}
		seen[h] = name
	}
	if again := hash(fstest.MapFS{}, "alpine:3"); again != img1 {
		t.Errorf("image hash not stable: %s then %s", img1, again)
	}
}

// A local Feature's files are build inputs: editing one makes the
// container stale, and so does nothing else there.
func TestHashLocalFeatures(t *testing.T) {
	base := fstest.MapFS{
		fDevcontainer:                         file(`{"image": "debian", "features": {"./tools": {}}}`),
		"ws/.devcontainer/tools/install.sh":   file("#!/bin/sh\necho one\n"),
		"ws/.devcontainer/tools/feature.json": file(`{"id": "tools"}`),
		"ws/.devcontainer/other/install.sh":   file("#!/bin/sh\n"),
	}
	hash := func(fsys fstest.MapFS) string {
		t.Helper()
		c, err := discover(fsys, "/ws", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash
	}
	with := func(name, data string) fstest.MapFS {
		f := maps.Clone(base)
		f[name] = file(data)
		return f
	}
	h := hash(base)
	if hash(with("ws/.devcontainer/tools/install.sh", "#!/bin/sh\necho two\n")) == h {
		t.Error("editing the Feature's install.sh kept the hash")
	}
	if hash(with("ws/.devcontainer/other/install.sh", "#!/bin/sh\necho two\n")) != h {
		t.Error("editing a folder no Feature names changed the hash")
	}
}
