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
	f.Add([]byte(`{"dockerComposeFile": ["../a.yml", "b.yml",], "service": "app", "runServices": ["db"], "overrideCommand": false}`))

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

// FuzzReadComposeFile checks that reading a compose file never panics and
// that its errors are *ConfigErrors naming the file.
func FuzzReadComposeFile(f *testing.F) {
	f.Add([]byte("x-base: &base\n  image: a\nservices:\n  app:\n    <<: *base\n"))
	f.Add([]byte("name: shop\nservices:\n  app: {}\ninclude: [other.yml]\n"))
	f.Add([]byte("services:\n  - app\n"))
	f.Add([]byte("services: [\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := readComposeFile("/ws/compose.yml", data)
		if err == nil {
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || !errors.Is(err, ErrBadConfig) || ce.File != "/ws/compose.yml" || ce.Line < 0 {
			t.Fatalf("error %v (%T) is not a *ConfigError naming the file", err, err)
		}
	})
}
