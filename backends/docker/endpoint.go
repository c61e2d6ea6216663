package docker

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/connhelper"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/tlsconfig"
)

// Endpoint is where an engine is reached, resolved the way the docker CLI
// resolves it (see ResolveEndpoint).
type Endpoint struct {
	// Host is the engine's address: unix://, tcp://, ssh:// or https://.
	Host string
	// From says where Host came from: "DOCKER_HOST", "context NAME",
	// "CONTAINER_HOST", "podman socket" or "default".
	From string
	// TLS, for tcp:// and https://, names the client's certificate files;
	// nil for plain TCP.
	TLS *TLSFiles

	broken error // why resolving failed: every call fails with it
}

// TLSFiles are the PEM files of a TLS connection to an engine. Empty
// names are not used.
type TLSFiles struct {
	CA, Cert, Key string
	SkipVerify    bool // DOCKER_TLS_VERIFY unset, or the context says so
}

// Remote reports whether the endpoint reaches an engine that may be on
// another machine. Only a unix socket (or a Windows named pipe) is known
// to be this host's: tcp, ssh and https are remote even on 127.0.0.1.
func (e Endpoint) Remote() bool {
	scheme, _, _ := strings.Cut(e.Host, "://")
	return scheme != "unix" && scheme != "npipe"
}

// Engine-resolution errors.
var (
	// errBadEndpoint means DOCKER_HOST or a context names no usable
	// endpoint.
	errBadEndpoint = errors.New("bad Docker endpoint")
	// errBadTLS means the TLS material of a tcp endpoint can't be used.
	errBadTLS = errors.New("bad TLS material")
)

// defaultHost is the engine's socket when nothing else is set.
const defaultHost = "unix:///var/run/docker.sock"

// ResolveEndpoint finds the engine as the docker CLI does: DOCKER_HOST
// (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), else the context named
// by DOCKER_CONTEXT, else the config's currentContext (in DOCKER_CONFIG
// or ~/.docker), else the default socket. getenv reads the environment.
func ResolveEndpoint(getenv func(string) string) (Endpoint, error) {
	cfgDir := getenv("DOCKER_CONFIG")
	if cfgDir == "" {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		cfgDir = filepath.Join(home, ".docker")
	}
	if h := getenv("DOCKER_HOST"); h != "" {
		// As the docker CLI: DOCKER_HOST wins over DOCKER_CONTEXT.
		ep := Endpoint{Host: h, From: "DOCKER_HOST"}
		if tlsWanted(h, getenv) {
			dir := getenv("DOCKER_CERT_PATH")
			if dir == "" {
				dir = cfgDir
			}
			ep.TLS = &TLSFiles{
				CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"),
				SkipVerify: getenv("DOCKER_TLS_VERIFY") == "",
			}
		}
		return ep, nil
	}
	name := getenv("DOCKER_CONTEXT")
	if name == "" {
		var cfg struct {
			CurrentContext string `json:"currentContext"`
		}
		data, err := os.ReadFile(filepath.Join(cfgDir, "config.json"))
		if err == nil {
			if err := json.Unmarshal(data, &cfg); err != nil {
				return Endpoint{}, fmt.Errorf("docker: %s: %w: %v", filepath.Join(cfgDir, "config.json"), errBadEndpoint, err)
			}
		}
		name = cfg.CurrentContext
	}
	if name == "" || name == "default" {
		return Endpoint{Host: defaultHost, From: "default"}, nil
	}
	return contextEndpoint(cfgDir, name)
}

// tlsWanted says whether the docker CLI would speak TLS to host.
func tlsWanted(host string, getenv func(string) string) bool {
	if strings.HasPrefix(host, "https://") {
		return true
	}
	if !strings.HasPrefix(host, "tcp://") {
		return false
	}
	return getenv("DOCKER_TLS_VERIFY") != "" || getenv("DOCKER_TLS") != "" || getenv("DOCKER_CERT_PATH") != ""
}

// contextEndpoint reads a context from the docker CLI's store:
// contexts/meta/<sha256(name)>/meta.json, and its TLS files under
// contexts/tls/<sha256(name)>/docker.
func contextEndpoint(cfgDir, name string) (Endpoint, error) {
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	metaPath := filepath.Join(cfgDir, "contexts", "meta", id, "meta.json")
	data, err := os.ReadFile(metaPath)
	if errors.Is(err, os.ErrNotExist) {
		return Endpoint{}, fmt.Errorf("docker: context %q: %w: it does not exist (%s); `docker context ls` lists them", name, errBadEndpoint, metaPath)
	} else if err != nil {
		return Endpoint{}, fmt.Errorf("docker: context %q: %w: %v", name, errBadEndpoint, err)
	}
	var meta struct {
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return Endpoint{}, fmt.Errorf("docker: context %q: %w: %s: %v", name, errBadEndpoint, metaPath, err)
	}
	d, ok := meta.Endpoints["docker"]
	if !ok || d.Host == "" {
		return Endpoint{}, fmt.Errorf("docker: context %q: %w: it has no docker endpoint", name, errBadEndpoint)
	}
	ep := Endpoint{Host: d.Host, From: "context " + name}
	tlsDir := filepath.Join(cfgDir, "contexts", "tls", id, "docker")
	if files := (TLSFiles{CA: existing(tlsDir, "ca.pem"), Cert: existing(tlsDir, "cert.pem"), Key: existing(tlsDir, "key.pem"), SkipVerify: d.SkipTLSVerify}); files.CA != "" || files.Cert != "" || d.SkipTLSVerify || strings.HasPrefix(d.Host, "https://") {
		ep.TLS = &files
	}
	return ep, nil
}

func existing(dir, name string) string {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Short deadlines for reaching an engine: a remote one that doesn't
// answer must fail the call, not hang it.
const (
	dialTimeout = 5 * time.Second
	sshTimeout  = 5 // seconds, ssh's ConnectTimeout
)

// sshFlags make ssh fail instead of prompting: berth has no terminal to
// ask for a password or a host key on.
var sshFlags = []string{"-o BatchMode=yes", fmt.Sprintf("-o ConnectTimeout=%d", sshTimeout)}

// clientOpts are the Docker client's options for ep. A problem with ep's
// TLS material isn't returned: every call fails with it (errBadTLS), so
// that berth starts and says what to fix where the editor shows it.
func clientOpts(ep Endpoint) ([]client.Opt, error) {
	if ep.broken != nil {
		fail := func(context.Context, string, string) (net.Conn, error) { return nil, ep.broken }
		return []client.Opt{client.WithHost(ep.Host), client.WithDialContext(fail)}, nil
	}
	u, err := url.Parse(ep.Host)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("docker: %s %q: %w: want unix://, tcp://, ssh:// or https://", ep.From, ep.Host, errBadEndpoint)
	}
	switch u.Scheme {
	case "ssh":
		h, err := connhelper.GetConnectionHelperWithSSHOpts(ep.Host, sshFlags)
		if err != nil {
			return nil, fmt.Errorf("docker: %s %q: %w: %v", ep.From, ep.Host, errBadEndpoint, err)
		}
		return []client.Opt{
			client.WithHTTPClient(&http.Client{Transport: &http.Transport{DialContext: h.Dialer}}),
			client.WithHost(h.Host), client.WithDialContext(h.Dialer),
		}, nil
	case "tcp", "https", "http":
		tr := &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: dialTimeout,
		}
		if ep.TLS != nil {
			cfg, err := tlsconfig.Client(tlsconfig.Options{CAFile: ep.TLS.CA, CertFile: ep.TLS.Cert, KeyFile: ep.TLS.Key, InsecureSkipVerify: ep.TLS.SkipVerify})
			if err != nil {
				bad := fmt.Errorf("%w: %v", errBadTLS, err)
				tr.DialContext = func(context.Context, string, string) (net.Conn, error) { return nil, bad }
				cfg = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr.TLSClientConfig = cfg
		}
		host := ep.Host
		if u.Scheme == "https" || u.Scheme == "http" {
			host = "tcp://" + u.Host + u.Path
		}
		return []client.Opt{client.WithHost(host), client.WithHTTPClient(&http.Client{Transport: tr})}, nil
	case "unix", "npipe":
		return []client.Opt{client.WithHost(ep.Host)}, nil
	default:
		return nil, fmt.Errorf("docker: %s %q: %w: scheme %q; want unix://, tcp://, ssh:// or https://", ep.From, ep.Host, errBadEndpoint, u.Scheme)
	}
}

// hint says what to fix when ep doesn't answer with err.
func hint(ep Endpoint, err error) string {
	msg := err.Error()
	scheme, _, _ := strings.Cut(ep.Host, "://")
	where := ep.From
	switch {
	case errors.Is(err, errBadEndpoint):
		return "fix DOCKER_HOST, DOCKER_CONTEXT or the currentContext in ~/.docker/config.json (`docker context ls`)"
	case errors.Is(err, errBadTLS):
		return fmt.Sprintf("its TLS material can't be used: check the ca.pem, cert.pem and key.pem that %s names (DOCKER_CERT_PATH, or the context's TLS files)", where)
	case strings.Contains(msg, "HTTP request to an HTTPS server"):
		return fmt.Sprintf("the daemon speaks TLS: set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) beside %s, or use a docker context with TLS", where)
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "x509") || strings.Contains(msg, "tls:"):
		return fmt.Sprintf("the TLS handshake failed: the daemon's certificate and the CA, cert and key that %s names must belong together (DOCKER_CERT_PATH, DOCKER_TLS_VERIFY)", where)
	case scheme == "ssh" && strings.Contains(msg, "Host key verification failed"), scheme == "ssh" && strings.Contains(msg, "HOST IDENTIFICATION HAS CHANGED"):
		return "ssh refused the host key: it is unknown or doesn't match known_hosts; check the host, then fix known_hosts (ssh-keygen -R HOST, and connect once with ssh)"
	case scheme == "ssh" && strings.Contains(msg, "Permission denied"):
		return "ssh can't log in without a prompt (berth runs ssh with BatchMode=yes): add your key to ssh-agent or to ~/.ssh/config"
	case scheme == "ssh" && strings.Contains(msg, "command not found"):
		return "the docker CLI is not on the ssh host's PATH; berth runs `docker system dial-stdio` there"
	case scheme == "ssh":
		return "is sshd running there, and does `ssh HOST docker version` work?"
	case scheme == "unix":
		return "is the daemon running? Start it with `dockerd` (or `systemctl start docker`), or set DOCKER_HOST or a docker context"
	default:
		return "is the daemon listening there? Check DOCKER_HOST or the docker context (`docker context ls`)"
	}
}
