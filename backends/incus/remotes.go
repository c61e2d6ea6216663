package incus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ClientConfig is the incus client's configuration, as `incus remote add`
// and `incus remote switch` leave it: config.yml in $INCUS_CONF, else in
// ~/.config/incus, beside client.crt, client.key and servercerts/NAME.crt.
type ClientConfig struct {
	Dir           string                  `yaml:"-"`
	DefaultRemote string                  `yaml:"default-remote"`
	Remotes       map[string]RemoteConfig `yaml:"remotes"`
}

// RemoteConfig is one remote of the client's configuration.
type RemoteConfig struct {
	Addr     string `yaml:"addr"`      // unix://[PATH] or https://host[:port]
	Protocol string `yaml:"protocol"`  // incus, or simplestreams for image servers
	AuthType string `yaml:"auth_type"` // tls (the default) or oidc
	Project  string `yaml:"project"`
	Public   bool   `yaml:"public"`
}

// ErrUnknownRemote means a remote name the client's configuration lacks.
var ErrUnknownRemote = errors.New("unknown incus remote")

// ConfigDir is the incus client's configuration directory: $INCUS_CONF,
// else incus under the user's configuration directory.
func ConfigDir() (string, error) {
	if d := os.Getenv("INCUS_CONF"); d != "" {
		return d, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "incus"), nil
}

// LoadClientConfig reads the configuration in dir, as the incus client
// does: a missing file is the built-in one (remote local, the default),
// and local is there even when the file doesn't name it.
func LoadClientConfig(dir string) (*ClientConfig, error) {
	cfg := &ClientConfig{Dir: dir}
	data, err := os.ReadFile(filepath.Join(dir, "config.yml"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := yaml.Unmarshal(data, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.yml"), err)
		}
	}
	if cfg.Remotes == nil {
		cfg.Remotes = map[string]RemoteConfig{}
	}
	if _, ok := cfg.Remotes["local"]; !ok {
		cfg.Remotes["local"] = RemoteConfig{Addr: "unix://", Protocol: "incus"}
	}
	if cfg.DefaultRemote == "" {
		cfg.DefaultRemote = "local"
	}
	return cfg, nil
}

// Remote returns the named remote, or the default one when name is "".
func (c *ClientConfig) Remote(name string) (string, RemoteConfig, error) {
	if name == "" {
		name = c.DefaultRemote
	}
	r, ok := c.Remotes[name]
	if !ok {
		names := make([]string, 0, len(c.Remotes))
		for n := range c.Remotes {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", RemoteConfig{}, fmt.Errorf("%w %q in %s (it has %s; add one with `incus remote add`)",
			ErrUnknownRemote, name, filepath.Join(c.Dir, "config.yml"), strings.Join(names, ", "))
	}
	return name, r, nil
}

// ClientCert and ClientKey are the client's own TLS certificate and key
// (PEM file paths), the ones `incus remote add` made and the servers trust.
func (c *ClientConfig) ClientCert() string { return filepath.Join(c.Dir, "client.crt") }
func (c *ClientConfig) ClientKey() string  { return filepath.Join(c.Dir, "client.key") }

// ServerCert is the certificate `incus remote add` accepted for remote
// name, or "" when there is none (a server with a certificate from a
// CA the system trusts).
func (c *ClientConfig) ServerCert(name string) string {
	p := filepath.Join(c.Dir, "servercerts", name+".crt")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// splitRemote splits an image reference "remote:alias" when remote names
// one of cfg's remotes; otherwise the reference is all alias.
func splitRemote(cfg *ClientConfig, ref string) (remote, alias string) {
	if cfg == nil {
		return "", ref
	}
	r, a, ok := strings.Cut(ref, ":")
	if !ok || r == "" {
		return "", ref
	}
	if _, known := cfg.Remotes[r]; !known {
		return "", ref
	}
	return r, a
}
