package devcontainer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tailscale/hujson"
)

// FuzzParse checks that Parse never panics, that every error it returns is a
// *ConfigError wrapping ErrBadConfig with a position inside the file, and
// that the hash ignores comments and layout.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		names, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"image": "a", "workspaceMount": "copy", "forwardPorts": ["[::1]:1", 2]}`))
	f.Add([]byte("\ufeff{\"image\": \"${localEnv:A:${b}}\"} //"))

	env := mapEnv(map[string]string{"HOME": "/home/u", "EMPTY": ""})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, testFile, testWS, env)
		if err != nil {
			var ce *ConfigError
			if !errors.Is(err, ErrBadConfig) || !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *ConfigError wrapping ErrBadConfig", err, err)
			}
			if ce.Line < 0 || ce.Column < 0 || (ce.Line == 0) != (ce.Column == 0) {
				t.Fatalf("bad position %d:%d in %v", ce.Line, ce.Column, err)
			}
			return
		}
		if len(c.Hash) != 64 {
			t.Fatalf("Hash = %q", c.Hash)
		}
		c.ResolveRemoteEnv(map[string]string{"PATH": "/bin"})

		// The same config without comments, trailing commas and layout
		// must hash the same.
		min, err := hujson.Minimize(data)
		if err != nil {
			return // a BOM, which Parse strips and hujson rejects
		}
		c2, err := Parse(min, testFile, testWS, env)
		if err != nil {
			t.Fatalf("Parse of the minimized config: %v\n%s", err, min)
		}
		if c2.Hash != c.Hash {
			t.Fatalf("minimizing changed the hash\n%s\n%s", data, min)
		}
	})
}
