// Package rest is a small typed client for the parts of Incus's REST API
// (https://linuxcontainers.org/incus/docs/main/rest-api/) that berth uses:
// the server, instances and their state, exec with its websockets, files
// (plain and over SFTP), operations, images, aliases and the events
// websocket.
//
// It speaks HTTP over the local unix socket, or HTTPS with a client
// certificate to a remote server. Every call takes a context that bounds
// its request; streams that outlive the call (exec websockets, events,
// SFTP) say how they end. A request the daemon refused comes back as a
// *StatusError.
package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client talks to one Incus daemon. It is safe for concurrent use.
type Client struct {
	hc        *http.Client
	base      url.URL // http://unix.socket or https://host[:port]
	dial      func(ctx context.Context) (net.Conn, error)
	ws        wsDialer
	userAgent string
	project   string // added to every request when set (incus-user's socket)
	where     string // the socket path or the URL, for messages
}

// Options are what every connection takes.
type Options struct {
	UserAgent string
	// Project is the Incus project of every request, when set (a
	// remote's project in the client's configuration).
	Project string
}

// DefaultSocket returns the socket the incus CLI would use, and the project
// that goes with it: $INCUS_SOCKET, else $INCUS_DIR/unix.socket, else
// /run/incus/unix.socket when it exists, else /var/lib/incus/unix.socket.
// When that socket is not writable but incus-user's unix.socket.user beside
// it is, that one, with the caller's user-<euid> project.
func DefaultSocket() (path, project string) {
	if p := os.Getenv("INCUS_SOCKET"); p != "" {
		return p, ""
	}
	dir := os.Getenv("INCUS_DIR")
	if dir == "" {
		dir = "/var/lib/incus"
		if _, err := os.Lstat("/run/incus/unix.socket"); err == nil {
			dir = "/run/incus"
		}
	}
	path = filepath.Join(dir, "unix.socket")
	user := filepath.Join(dir, "unix.socket.user")
	if !writable(path) && writable(user) {
		return user, fmt.Sprintf("user-%d", os.Geteuid())
	}
	return path, ""
}

func writable(p string) bool { return syscall.Access(p, 2 /* W_OK */) == nil }

// Unix returns a client of the daemon on the unix socket at path, or at
// DefaultSocket's when path is empty. It does not contact the daemon.
func Unix(path string, opts Options) *Client {
	project := ""
	if path == "" {
		path, project = DefaultSocket()
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}
	if opts.Project != "" {
		project = opts.Project
	}
	c := &Client{
		base:      url.URL{Scheme: "http", Host: "unix.socket"},
		dial:      dial,
		userAgent: opts.UserAgent,
		project:   project,
		where:     path,
	}
	c.hc = newHTTPClient(&http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
	})
	c.ws = wsDialer{netDial: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	return c
}

// TLS is what a remote connection needs, each a PEM text.
type TLS struct {
	ClientCert, ClientKey string
	// ServerCert, when set, is trusted as a CA besides the system's, and
	// its first DNS name is the name the server must present.
	ServerCert string
}

// Remote returns a client of the daemon at rawURL (https://host[:port])
// that authenticates with a client certificate. It does not contact the
// daemon.
func Remote(rawURL string, t TLS, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(rawURL, "/"))
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("remote %q: want https://host[:port]", rawURL)
	}
	conf, err := tlsConfig(t)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443") // as net/http dials it
	}
	dialTLS := func(ctx context.Context, _, a string) (net.Conn, error) { return dialTLS(ctx, conf, a) }
	c := &Client{
		base:      url.URL{Scheme: "https", Host: u.Host},
		dial:      func(ctx context.Context) (net.Conn, error) { return dialTLS(ctx, "tcp", addr) },
		userAgent: opts.UserAgent,
		project:   opts.Project,
		where:     u.String(),
	}
	c.hc = newHTTPClient(&http.Transport{
		DialTLSContext:  dialTLS,
		TLSClientConfig: conf, // for the TLS net/http does itself, through a proxy
		Proxy:           http.ProxyFromEnvironment,
	})
	c.ws = wsDialer{netDialTLS: dialTLS, tls: conf, proxy: http.ProxyFromEnvironment}
	return c, nil
}

// tlsConfig is TLS 1.3 (1.2 with INCUS_INSECURE_TLS, as the incus CLI
// allows), the client's certificate, and the server's certificate made a
// trusted CA.
func tlsConfig(t TLS) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS13}
	if v := strings.ToLower(os.Getenv("INCUS_INSECURE_TLS")); v != "" && v != "0" && v != "false" && v != "no" && v != "off" {
		conf.MinVersion = tls.VersionTLS12
	}
	if t.ClientCert != "" && t.ClientKey != "" {
		cert, err := tls.X509KeyPair([]byte(t.ClientCert), []byte(t.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if t.ServerCert != "" {
		block, _ := pem.Decode([]byte(t.ServerCert))
		if block == nil {
			return nil, errors.New("server certificate: no PEM block")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("server certificate: %w", err)
		}
		// Incus servers present self-signed certificates: trust this one
		// as a CA, under the name it carries.
		cert.IsCA = true
		cert.KeyUsage = x509.KeyUsageCertSign
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AddCert(cert)
		conf.RootCAs = pool
		if len(cert.DNSNames) > 0 {
			conf.ServerName = cert.DNSNames[0]
		}
	}
	return conf, nil
}

// dialTLS verifies the server under conf's ServerName (the trusted
// certificate's name) and, failing that, under the host dialed.
func dialTLS(ctx context.Context, conf *tls.Config, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	try := func(conf *tls.Config) (net.Conn, error) {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: conf}
		return d.DialContext(ctx, "tcp", addr)
	}
	if conf.ServerName != "" && conf.ServerName != host {
		if conn, err := try(conf); err == nil || ctx.Err() != nil {
			return conn, err
		}
	}
	conf = conf.Clone()
	conf.ServerName = host
	return try(conf)
}

func newHTTPClient(t *http.Transport) *http.Client {
	// A connection per request, as the incus CLI does: an idle connection
	// to a daemon that restarted would fail the next request.
	t.DisableKeepAlives = true
	t.ExpectContinueTimeout = 30 * time.Second
	t.TLSHandshakeTimeout = 5 * time.Second
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			req.Header = via[len(via)-1].Header
			return nil
		},
	}
}

// Where names the daemon for messages: a socket path or a URL.
func (c *Client) Where() string { return c.where }

// Remote reports whether the daemon is reached over HTTPS.
func (c *Client) Remote() bool { return c.base.Scheme == "https" }

// CloseIdleConnections closes the connections no request uses.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// StatusError is an error the daemon answered with.
type StatusError struct {
	Code int    // the HTTP status
	Msg  string // the daemon's message
}

func (e *StatusError) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return http.StatusText(e.Code)
}

// IsStatus reports whether err is a *StatusError with one of codes, or
// with any code when none is given.
func IsStatus(err error, codes ...int) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	if len(codes) == 0 {
		return true
	}
	for _, c := range codes {
		if se.Code == c {
			return true
		}
	}
	return false
}

// Response is the envelope of every answer but raw file contents.
type Response struct {
	Type       string          `json:"type"` // sync, async or error
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Operation  string          `json:"operation"`
	ErrorCode  int             `json:"error_code"`
	Error      string          `json:"error"`
	Metadata   json.RawMessage `json:"metadata"`

	ETag string `json:"-"` // the ETag header
}

// url makes the URL of path (which starts with /1.0, its elements
// escaped), with query and the client's project.
func (c *Client) url(scheme, path string, query url.Values) string {
	u := c.base
	if scheme != "" {
		u.Scheme = scheme
	}
	u.Path, u.RawPath = path, path
	if p, err := url.PathUnescape(path); err == nil {
		u.Path = p
	}
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if c.project != "" && q.Get("project") == "" {
		q.Set("project", c.project)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Do sends a request and decodes the envelope. body is JSON-encoded;
// etag, when set, goes in If-Match. An error envelope, or an answer that
// is no envelope, comes back as a *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body any, etag string) (*Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url("", path, query), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return decode(resp)
}

func (c *Client) send(req *http.Request) (*http.Response, error) {
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	return c.hc.Do(req)
}

// decode reads an envelope.
func decode(resp *http.Response) (*Response, error) {
	var r Response
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r); err != nil {
		if resp.StatusCode != http.StatusOK {
			return nil, &StatusError{Code: resp.StatusCode, Msg: fmt.Sprintf("%s %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)}
		}
		return nil, fmt.Errorf("%s %s: decode: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	if r.Type == "error" {
		return &r, &StatusError{Code: resp.StatusCode, Msg: r.Error}
	}
	r.ETag = resp.Header.Get("ETag")
	return &r, nil
}

// get decodes the metadata of a sync answer to GET path into v.
func (c *Client) get(ctx context.Context, path string, query url.Values, v any) (etag string, err error) {
	r, err := c.Do(ctx, http.MethodGet, path, query, nil, "")
	if err != nil {
		return "", err
	}
	return r.ETag, r.decodeMetadata(v)
}

func (r *Response) decodeMetadata(v any) error {
	if err := json.Unmarshal(r.Metadata, v); err != nil {
		return fmt.Errorf("decode metadata: %w", err)
	}
	return nil
}

// operation sends a request that starts an operation, and returns it.
func (c *Client) operation(ctx context.Context, method, path string, body any, etag string) (*Operation, error) {
	return c.operationQuery(ctx, method, path, nil, body, etag)
}

func (c *Client) operationQuery(ctx context.Context, method, path string, query url.Values, body any, etag string) (*Operation, error) {
	r, err := c.Do(ctx, method, path, query, body, etag)
	if err != nil {
		return nil, err
	}
	if r.Type != "async" {
		return nil, fmt.Errorf("%s %s: want an operation, got a %q answer", method, path, r.Type)
	}
	var op Operation
	if err := r.decodeMetadata(&op); err != nil {
		return nil, err
	}
	return &op, nil
}

func instancePath(name string, rest ...string) string {
	p := "/1.0/instances/" + url.PathEscape(name)
	for _, r := range rest {
		p += "/" + r
	}
	return p
}

// Server returns GET /1.0.
func (c *Client) Server(ctx context.Context) (*Server, error) {
	var s Server
	_, err := c.get(ctx, "/1.0", nil, &s)
	return &s, err
}

// Instances lists the instances of a type ("container", "virtual-machine",
// or "" for all), in full.
func (c *Client) Instances(ctx context.Context, typ string) ([]Instance, error) {
	q := url.Values{"recursion": {"1"}}
	if typ != "" {
		q.Set("instance-type", typ)
	}
	var list []Instance
	_, err := c.get(ctx, "/1.0/instances", q, &list)
	return list, err
}

// Instance returns an instance and its ETag, for UpdateInstance.
func (c *Client) Instance(ctx context.Context, name string) (*Instance, string, error) {
	var in Instance
	etag, err := c.get(ctx, instancePath(name), nil, &in)
	if err != nil {
		return nil, "", err
	}
	return &in, etag, nil
}

// InstanceState returns an instance's runtime state.
func (c *Client) InstanceState(ctx context.Context, name string) (*InstanceState, error) {
	var st InstanceState
	_, err := c.get(ctx, instancePath(name, "state"), nil, &st)
	return &st, err
}

// CreateInstance starts creating an instance.
func (c *Client) CreateInstance(ctx context.Context, req InstancesPost) (*Operation, error) {
	return c.operation(ctx, http.MethodPost, "/1.0/instances", req, "")
}

// CreateInstanceOn is CreateInstance on the cluster member target, or
// where the cluster places it when target is "".
func (c *Client) CreateInstanceOn(ctx context.Context, req InstancesPost, target string) (*Operation, error) {
	var q url.Values
	if target != "" {
		q = url.Values{"target": {target}}
	}
	return c.operationQuery(ctx, http.MethodPost, "/1.0/instances", q, req, "")
}

// UpdateInstance starts replacing an instance's configuration; etag, when
// set, makes it fail if the instance changed since it was read.
func (c *Client) UpdateInstance(ctx context.Context, name string, put InstancePut, etag string) (*Operation, error) {
	return c.operation(ctx, http.MethodPut, instancePath(name), put, etag)
}

// PatchInstance changes some of an instance's config keys, leaving the
// rest. incusd answers at once or with an operation, by version; op is
// nil when it answered at once.
func (c *Client) PatchInstance(ctx context.Context, name string, config map[string]string) (op *Operation, err error) {
	r, err := c.Do(ctx, http.MethodPatch, instancePath(name), nil, map[string]any{"config": config}, "")
	if err != nil || r.Type != "async" {
		return nil, err
	}
	op = &Operation{}
	if err := r.decodeMetadata(op); err != nil {
		return nil, err
	}
	return op, nil
}

// UpdateInstanceState starts a state change (start, stop, freeze...).
func (c *Client) UpdateInstanceState(ctx context.Context, name string, put InstanceStatePut) (*Operation, error) {
	return c.operation(ctx, http.MethodPut, instancePath(name, "state"), put, "")
}

// DeleteInstance starts deleting a stopped instance.
func (c *Client) DeleteInstance(ctx context.Context, name string) (*Operation, error) {
	return c.operation(ctx, http.MethodDelete, instancePath(name), nil, "")
}

// ImageAlias returns a local image alias.
func (c *Client) ImageAlias(ctx context.Context, name string) (*ImageAlias, error) {
	var a ImageAlias
	_, err := c.get(ctx, "/1.0/images/aliases/"+url.PathEscape(name), nil, &a)
	return &a, err
}

// Image returns a local image by its fingerprint or a unique prefix of it.
func (c *Client) Image(ctx context.Context, fingerprint string) (*Image, error) {
	var img Image
	_, err := c.get(ctx, "/1.0/images/"+url.PathEscape(fingerprint), nil, &img)
	return &img, err
}

// Resources returns what the server's host has: CPUs, memory, GPUs.
func (c *Client) Resources(ctx context.Context) (*Resources, error) {
	var r Resources
	_, err := c.get(ctx, "/1.0/resources", nil, &r)
	return &r, err
}

// Profile returns a profile.
func (c *Client) Profile(ctx context.Context, name string) (*Profile, error) {
	var p Profile
	_, err := c.get(ctx, "/1.0/profiles/"+url.PathEscape(name), nil, &p)
	return &p, err
}

// StoragePoolResources returns a storage pool's space.
func (c *Client) StoragePoolResources(ctx context.Context, pool string) (*StoragePoolResources, error) {
	var r StoragePoolResources
	_, err := c.get(ctx, "/1.0/storage-pools/"+url.PathEscape(pool)+"/resources", nil, &r)
	return &r, err
}

// Operation returns an operation as it is now.
func (c *Client) Operation(ctx context.Context, id string) (*Operation, error) {
	var op Operation
	_, err := c.get(ctx, "/1.0/operations/"+url.PathEscape(id), nil, &op)
	return &op, err
}

// WaitOperation waits up to timeout seconds for an operation to end, and
// returns it as it is then. incusd answers a wait for a failed operation
// with the operation's error alone, as a *StatusError.
func (c *Client) WaitOperation(ctx context.Context, id string, timeout int) (*Operation, error) {
	var op Operation
	_, err := c.get(ctx, "/1.0/operations/"+url.PathEscape(id)+"/wait", url.Values{"timeout": {strconv.Itoa(timeout)}}, &op)
	return &op, err
}

// File opens a file of an instance for reading (GET .../files?path=).
func (c *Client) File(ctx context.Context, name, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("", instancePath(name, "files"), url.Values{"path": {path}}), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		if _, err := decode(resp); err != nil {
			return nil, err
		}
		return nil, &StatusError{Code: resp.StatusCode}
	}
	if resp.Header.Get("X-Incus-Type") == "directory" {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: is a directory", path)
	}
	return resp.Body, nil
}

// Wait waits for an operation to end, and returns it. A failed operation
// comes back with its error.
func (c *Client) Wait(ctx context.Context, id string) (*Operation, error) {
	for {
		op, err := c.WaitOperation(ctx, id, 30)
		if IsStatus(err) {
			// The wait for a failed operation answers with the error alone;
			// incusd 6.0 answers a wait that timed out with an error too.
			if op, err = c.Operation(ctx, id); err == nil && !op.StatusCode.IsFinal() {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		if !op.StatusCode.IsFinal() {
			continue
		}
		if op.Err != "" {
			return op, errors.New(op.Err)
		}
		return op, nil
	}
}
