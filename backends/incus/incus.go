// Package incus implements backends.Backend on an Incus daemon through its
// REST API (package rest): one system container per workspace, found by
// berth's keys in the container's user.* config.
//
// It connects to the local unix socket (honouring INCUS_SOCKET and INCUS_DIR)
// or, when BERTH_INCUS_REMOTE is set, to a remote server over HTTPS with a
// client certificate (BERTH_INCUS_CLIENT_CERT, BERTH_INCUS_CLIENT_KEY and
// optionally BERTH_INCUS_SERVER_CERT, each a PEM file or PEM text).
//
// The image must be an Incus system-container image whose /sbin/init stays
// up. The instance gets no NIC unless the default profile has one, so its
// loopback is up only if the image's init brings it up.
//
// Instance names are Spec.Name made a valid hostname (see instanceName), and
// an Instance.ID is "<name>.<volatile.uuid>", so that an ID never names a
// later instance of the same name.
package incus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/backends/incus/rest"
)

// Name is the backend's name in berth's protocol and flags.
const Name = "incus"

// stopTimeout bounds a clean stop (SIGPWR to init) before a forced one.
const stopTimeout = 3 // seconds

// adoptTimeout bounds the wait for an instance another caller is creating.
const adoptTimeout = 2 * time.Minute

// Backend is an Incus daemon. Every request is bounded by its ctx, so that a
// frozen daemon can't hold a caller past its deadline; operations are
// awaited with waitOp, which bounds each poll even without a deadline.
type Backend struct {
	c          *rest.Client
	where      string // socket path or remote name and URL, for messages
	endpoint   string // a URL, and the remote's name (backends.Endpointer)
	remote     bool   // reached over HTTPS
	remoteName string // in the client's configuration; "" for BERTH_INCUS_REMOTE
	cfg        *ClientConfig
	target     string // cluster member new instances go to (BERTH_INCUS_TARGET); "": the cluster picks

	clusterOnce sync.Once
	clustered   bool // the daemon is a cluster member, so an instance may run on another host
	log         *slog.Logger
	version     string // berth version, recorded on instances

	locks keyedLocks // serialises Ensure per workspace within this process

	// stops records when this process last asked for each instance's
	// stop (name → time.Time), so that the watcher can tell its own stops
	// from an init that ended when incusd's event names no requestor.
	stops sync.Map
}

var (
	_ backends.Backend    = (*Backend)(nil)
	_ backends.Platformer = (*Backend)(nil)
	_ backends.Localer    = (*Backend)(nil)
	_ backends.NetNSer    = (*Backend)(nil)
	_ backends.Endpointer = (*Backend)(nil)
	_ backends.Checker    = (*Backend)(nil)
	_ backends.Resourcer  = (*Backend)(nil)
)

// New connects to the daemon named by the environment: BERTH_INCUS_REMOTE
// (an https URL), else the incus client configuration's default remote.
// It does not contact the daemon; call Ping for that.
func New(log *slog.Logger, berthVersion string) (*Backend, error) {
	return NewRemote(log, berthVersion, "")
}

// NewRemote connects to the remote the incus client's configuration names
// (see ClientConfig), or as New does when remote is "". A remote reached
// over HTTPS authenticates with the client's certificate and trusts the
// server's certificate `incus remote add` kept. It does not contact the
// daemon.
func NewRemote(log *slog.Logger, berthVersion, remote string) (*Backend, error) {
	opts := rest.Options{UserAgent: "berth/" + berthVersion}
	b := &Backend{log: log.With("backend", Name), version: berthVersion, target: os.Getenv("BERTH_INCUS_TARGET")}
	if url := os.Getenv("BERTH_INCUS_REMOTE"); remote == "" && url != "" {
		var t rest.TLS
		for _, v := range []struct {
			env string
			dst *string
		}{
			{"BERTH_INCUS_CLIENT_CERT", &t.ClientCert},
			{"BERTH_INCUS_CLIENT_KEY", &t.ClientKey},
			{"BERTH_INCUS_SERVER_CERT", &t.ServerCert},
		} {
			pem, err := readPEM(os.Getenv(v.env))
			if err != nil {
				return nil, fmt.Errorf("incus: %s: %w", v.env, err)
			}
			*v.dst = pem
		}
		c, err := rest.Remote(url, t, opts)
		if err != nil {
			return nil, fmt.Errorf("incus: connect to %s: %w", url, err)
		}
		b.c, b.where, b.endpoint, b.remote = c, url, url, true
		return b, nil
	}
	dir, err := ConfigDir()
	var cfg *ClientConfig
	if err == nil {
		cfg, err = LoadClientConfig(dir)
	}
	if err != nil {
		if remote != "" {
			return nil, fmt.Errorf("incus: remote %s: %w", remote, err)
		}
		b.log.Warn("incus client configuration unreadable; using the local daemon", "err", err)
		cfg = &ClientConfig{DefaultRemote: "local", Remotes: map[string]RemoteConfig{"local": {Addr: "unix://"}}}
	}
	b.cfg = cfg
	name, rc, err := cfg.Remote(remote)
	if err != nil {
		return nil, fmt.Errorf("incus: %w", err)
	}
	b.remoteName = name
	opts.Project = rc.Project
	switch {
	case rc.Protocol != "" && rc.Protocol != "incus":
		return nil, fmt.Errorf("incus: remote %s is an image server (%s), not an incus server: name one with protocol incus: %w",
			name, rc.Protocol, backends.ErrNotSupported)
	case rc.AuthType != "" && rc.AuthType != "tls":
		return nil, fmt.Errorf("incus: remote %s authenticates with %s; berth speaks only TLS client certificates (`incus remote add %s URL --auth-type tls`): %w",
			name, rc.AuthType, name, backends.ErrNotSupported)
	case strings.HasPrefix(rc.Addr, "unix:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rc.Addr, "unix:"), "//")
		b.c = rest.Unix(path, opts) // "": INCUS_SOCKET, INCUS_DIR or the default, as the incus CLI picks it
		b.where = b.c.Where()
		b.endpoint = "unix://" + b.where
		return b, nil
	case strings.HasPrefix(rc.Addr, "https://"):
		t := rest.TLS{}
		for _, v := range []struct {
			path string
			dst  *string
		}{{cfg.ClientCert(), &t.ClientCert}, {cfg.ClientKey(), &t.ClientKey}, {cfg.ServerCert(name), &t.ServerCert}} {
			if v.path == "" {
				continue
			}
			pem, err := os.ReadFile(v.path)
			if err != nil {
				return nil, fmt.Errorf("%w: incus remote %s (%s): %v (the incus client makes it on `incus remote add`)", backends.ErrUnavailable, name, rc.Addr, err)
			}
			*v.dst = string(pem)
		}
		c, err := rest.Remote(rc.Addr, t, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: incus remote %s (%s): bad TLS material in %s: %v (`incus remote add` makes client.crt and client.key, and keeps the server's certificate in servercerts/%s.crt)",
				backends.ErrUnavailable, name, rc.Addr, cfg.Dir, err, name)
		}
		b.c, b.where, b.remote = c, name+" ("+rc.Addr+")", true
		b.endpoint = rc.Addr + " (incus remote " + name + ")"
		return b, nil
	default:
		return nil, fmt.Errorf("incus: remote %s: address %q is neither unix:// nor https://", name, rc.Addr)
	}
}

// readPEM returns v itself when it holds PEM text, else the file it names.
func readPEM(v string) (string, error) {
	if v == "" || strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		return v, nil
	}
	data, err := os.ReadFile(v)
	return string(data), err
}

// Close releases the client's idle connections.
func (b *Backend) Close() error {
	b.c.CloseIdleConnections()
	return nil
}

// Name implements backends.Backend.
func (b *Backend) Name() string { return Name }

// Ping implements backends.Backend.
func (b *Backend) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	srv, err := b.c.Server(ctx)
	if err != nil {
		err = b.mapErr("ping", err, nil)
		if !errors.Is(err, backends.ErrUnavailable) {
			err = fmt.Errorf("%w: %s answered with an error: %w", backends.ErrUnavailable, b.where, err)
		}
		return err
	}
	if b.remote && srv.Auth != "" && srv.Auth != "trusted" {
		return fmt.Errorf("%w: incus server %s does not trust berth's client certificate (auth %q): add it there with `incus config trust add-certificate client.crt`, or add the remote again with `incus remote add NAME URL --token TOKEN`",
			backends.ErrUnavailable, b.where, srv.Auth)
	}
	return nil
}

func (b *Backend) unavailable(err error) error {
	if isTLSErr(err) {
		return fmt.Errorf("%w: the TLS handshake with incus server %s failed: check the server's certificate berth trusts (servercerts/NAME.crt in the incus client's configuration, or BERTH_INCUS_SERVER_CERT) and that the server trusts the client's (`incus config trust add-certificate` there) (%v)",
			backends.ErrUnavailable, b.where, err)
	}
	if b.remote {
		return fmt.Errorf("%w: incus server %s not reachable: check the remote's address (`incus remote list`), that the server trusts the client certificate (`incus config trust list` there) and BERTH_INCUS_REMOTE if set (%v)",
			backends.ErrUnavailable, b.where, err)
	}
	return fmt.Errorf("%w: incusd not reachable at %s: is incusd running, and may you use it (root or group incus-admin)? Start it with `systemctl start incus`, or as root `/usr/libexec/incus/incusd --group incus-admin &`, or set INCUS_SOCKET (%v)",
		backends.ErrUnavailable, b.where, err)
}

// mapErr translates an Incus API error into berth's sentinels; it is the
// one place that knows how Incus reports failures. notFound is the sentinel a
// 404 means in this call's context.
func (b *Backend) mapErr(op string, err error, notFound error) error {
	if err == nil {
		return nil
	}
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("incus: %s: %w", op, err)
	case isConnErr(err):
		return b.unavailable(err)
	case rest.IsStatus(err, http.StatusNotFound) && notFound != nil:
		return fmt.Errorf("incus: %s: %w: %v", op, notFound, err)
	case strings.Contains(msg, "not running"):
		return fmt.Errorf("incus: %s: %w: %v", op, backends.ErrNotRunning, err)
	case strings.Contains(msg, "command not found"), strings.Contains(msg, "executable file not found"):
		return fmt.Errorf("incus: %s: %w: %v", op, backends.ErrCommandNotFound, err)
	default:
		return fmt.Errorf("incus: %s: %w", op, err)
	}
}

// isTLSErr reports whether err is a failed TLS handshake: a server
// certificate not trusted, or a client certificate refused.
func isTLSErr(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		alert   tls.AlertError
		record  tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &host) ||
		errors.As(err, &alert) || errors.As(err, &record) || strings.Contains(err.Error(), "remote error: tls:")
}

// isConnErr reports whether err means the daemon did not answer at all
// or would not speak TLS with berth.
func isConnErr(err error) bool {
	if isTLSErr(err) {
		return true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// waitOp long-polls for pollSeconds at a time. incusd may take pollGrace
// longer to answer before waitOp calls it unresponsive (frozen, say), so
// that even a wait on a ctx without deadline ends. Tests shorten both.
var (
	pollSeconds = 3
	pollGrace   = 3 * time.Second
)

// waitOp waits for an operation to end by long-polling its wait endpoint,
// and returns it. A failed operation comes back as an error.
func (b *Backend) waitOp(ctx context.Context, id string) (*rest.Operation, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		timeout := pollSeconds
		if dl, ok := ctx.Deadline(); ok {
			timeout = max(1, min(timeout, int(time.Until(dl).Seconds())))
		}
		bound := time.Duration(timeout)*time.Second + pollGrace
		start := time.Now()
		op, err := b.getOpWithin(ctx, bound, func(ctx context.Context) (*rest.Operation, error) {
			return b.c.WaitOperation(ctx, id, timeout)
		})
		if err != nil && !errors.Is(err, backends.ErrUnavailable) {
			// incusd answers the wait for a failed operation with the
			// operation's error alone; its metadata (an exec's exit code)
			// comes only with a plain GET. incusd 6.0 also answers a wait
			// that timed out with an error ("context deadline exceeded"),
			// so an operation still running is waited for again.
			got, gerr := b.getOpWithin(ctx, pollGrace, func(ctx context.Context) (*rest.Operation, error) {
				return b.c.Operation(ctx, id)
			})
			switch {
			case gerr != nil:
			case got.StatusCode.IsFinal():
				op, err = got, nil
			default:
				if time.Since(start) < time.Second { // the wait failed at once: don't spin
					select {
					case <-ctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		if op.StatusCode.IsFinal() {
			if op.Err != "" {
				return op, errors.New(op.Err)
			}
			return op, nil
		}
	}
}

// getOpWithin is get, given at most d to answer; past that it fails
// with ErrUnavailable.
func (b *Backend) getOpWithin(ctx context.Context, d time.Duration, get func(context.Context) (*rest.Operation, error)) (*rest.Operation, error) {
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	op, err := get(rctx)
	if err != nil && ctx.Err() == nil && rctx.Err() != nil {
		return nil, fmt.Errorf("%w: incusd at %s did not answer within %s (is it frozen?)", backends.ErrUnavailable, b.where, d)
	}
	return op, err
}

// run starts an operation and waits for it.
func (b *Backend) run(ctx context.Context, start func(context.Context) (*rest.Operation, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op, err := start(ctx)
	if err != nil {
		return err
	}
	_, err = b.waitOp(ctx, op.ID)
	return err
}

// Find implements backends.Backend.
func (b *Backend) Find(ctx context.Context, workspace string) (backends.Instance, error) {
	list, err := b.List(ctx)
	if err != nil {
		return backends.Instance{}, err
	}
	for _, inst := range list {
		if inst.Workspace == workspace {
			return inst, nil
		}
	}
	return backends.Instance{}, fmt.Errorf("incus: workspace %s: %w", workspace, backends.ErrNotFound)
}

// List implements backends.Backend.
func (b *Backend) List(ctx context.Context) ([]backends.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all, err := b.c.Instances(ctx, "container")
	if err != nil {
		return nil, b.mapErr("list", err, nil)
	}
	var out []backends.Instance
	for i := range all {
		if managed(all[i].Config) {
			out = append(out, fromAPI(&all[i]))
		}
	}
	// Oldest first, so that if a race ever left two, every caller agrees.
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// getManaged returns the instance an ID names. It is ErrNotFound when the
// name is gone or now belongs to a different incarnation, ErrForeign when
// the instance lacks berth's keys.
func (b *Backend) getManaged(ctx context.Context, id string) (*rest.Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, uuid := parseID(id)
	in, _, err := b.c.Instance(ctx, name)
	if err != nil {
		return nil, b.mapErr("get "+name, err, backends.ErrNotFound)
	}
	if uuid != "" && in.Config[keyUUID] != uuid {
		return nil, fmt.Errorf("incus: instance %s was replaced since id %s was handed out: %w", name, id, backends.ErrNotFound)
	}
	if !managed(in.Config) {
		return nil, fmt.Errorf("incus: instance %s exists but has no %s key; remove or rename it: %w",
			name, userPrefix+backends.LabelManaged, backends.ErrForeign)
	}
	return in, nil
}

// Ensure implements backends.Backend.
func (b *Backend) Ensure(ctx context.Context, spec backends.Spec) (backends.Instance, bool, error) {
	if spec.Compose != nil {
		return backends.Instance{}, false, fmt.Errorf("incus: Docker Compose configurations need the docker backend (--backend docker): Incus runs no Compose projects: %w", backends.ErrNotSupported)
	}
	unlock, err := b.locks.lock(ctx, spec.Workspace)
	if err != nil {
		return backends.Instance{}, false, err
	}
	defer unlock()

	inst, err := b.Find(ctx, spec.Workspace)
	switch {
	case err == nil:
		inst, err = b.start(ctx, inst)
		return inst, false, err
	case !errors.Is(err, backends.ErrNotFound):
		return backends.Instance{}, false, err
	}

	name := instanceName(spec.Name)
	src, arch, err := b.imageSource(ctx, spec.Image)
	if err != nil {
		return backends.Instance{}, false, err
	}
	// The instance boots the image's own init, so spec.Init is not used;
	// spec.Files still lands before the first start, when it fits.
	platform := "linux/" + goArch(arch)
	if !slices.Contains(spec.InitPlatforms, platform) {
		spec.Files = nil
	}
	shift := b.canShift(ctx)
	err = b.create(ctx, name, spec, platform, src, shift)
	if errors.Is(err, errNameTaken) {
		// Another caller (maybe another berth process) won the race; adopt
		// its instance, which carries the same deterministic name.
		inst, err := b.adopt(ctx, name, spec.Workspace)
		return inst, false, err
	}
	if err != nil {
		return backends.Instance{}, false, err
	}
	in, err := b.getManaged(ctx, name)
	if err != nil {
		return backends.Instance{}, false, err
	}
	if inst, err = b.start(ctx, fromAPI(in)); err != nil {
		return backends.Instance{}, false, err
	}
	return inst, true, nil
}

var errNameTaken = errors.New("name taken")

func (b *Backend) create(ctx context.Context, name string, spec backends.Spec, platform string, src rest.InstanceSource, shift bool) error {
	req := rest.InstancesPost{
		Name:    name,
		Type:    "container",
		Source:  src,
		Config:  instanceConfig(spec, b.version),
		Devices: diskDevices(spec, shift),
	}
	engineConfig(spec, b.Local(), req.Config, req.Devices)
	backends.Report(ctx, "creating container %s from %s", name, spec.Image)
	err := b.run(ctx, func(ctx context.Context) (*rest.Operation, error) { return b.c.CreateInstanceOn(ctx, req, b.target) })
	if err != nil {
		// A name clash shows up as a failed create (a database constraint
		// on Incus 6.0, a conflict on later versions), so ask for the name
		// rather than parse the error. While the winner's create is still
		// running, the name may not be visible yet: Incus says the
		// instance "is busy running a "create" operation".
		if _, _, gerr := b.c.Instance(ctx, name); gerr == nil || isBusy(err) {
			return errNameTaken
		}
		return b.mapErr("create "+name, err, backends.ErrImageNotFound)
	}
	b.log.Info("created container", "instance", name, "workspace", spec.Workspace, "image", spec.Image, "shift", shift)
	if spec.Files != nil {
		if err := b.writeFiles(ctx, name, spec.Files, platform); err != nil {
			// Leave no half-made instance for the next Ensure to adopt.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if rerr := b.run(dctx, func(ctx context.Context) (*rest.Operation, error) { return b.c.DeleteInstance(ctx, name) }); rerr != nil {
				b.log.Warn("could not remove instance after failing to write its files", "instance", name, "err", rerr)
			}
			return err
		}
	}
	return nil
}

func (b *Backend) writeFiles(ctx context.Context, name string, files func(string) (io.Reader, error), platform string) error {
	r, err := files(platform)
	if err != nil {
		return fmt.Errorf("incus: files for %s: %w", name, err)
	}
	backends.Report(ctx, "writing files into %s", name)
	return b.extractInto(ctx, name, "/", r)
}

// Platform implements backends.Platformer. Incus containers run Linux.
func (b *Backend) Platform(ctx context.Context, id string) (goos, goarch string, err error) {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return "", "", err
	}
	return "linux", goArch(in.Architecture), nil
}

var _ backends.Booter = (*Backend)(nil)

// BootsInit implements backends.Booter: an instance boots the image's
// init, never a command of berth's.
func (b *Backend) BootsInit() bool { return true }

// Local implements backends.Localer: a daemon on its unix socket shares
// this host's filesystem, unless it is a cluster member: then an instance
// may run on (or move to) another member, so berth treats it as remote.
func (b *Backend) Local() bool {
	if b.remote {
		return false
	}
	b.clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if srv, err := b.c.Server(ctx); err == nil {
			b.clustered = srv.Environment.ServerClustered
		}
	})
	return !b.clustered
}

// Endpoint implements backends.Endpointer: the remote's URL and name, or
// the unix socket as a unix:// URL.
func (b *Backend) Endpoint() string { return b.endpoint }

// RemoteName is the client configuration's name of the remote in use, ""
// when BERTH_INCUS_REMOTE named it.
func (b *Backend) RemoteName() string { return b.remoteName }

// NetNS implements backends.NetNSer for a local daemon, from the
// instance's init pid.
func (b *Backend) NetNS(ctx context.Context, id string) (string, error) {
	if !b.Local() {
		return "", fmt.Errorf("incus: daemon is remote: %w", backends.ErrNotSupported)
	}
	name, _ := parseID(id)
	st, err := b.c.InstanceState(ctx, name)
	if err != nil {
		return "", b.mapErr("state of "+name, err, backends.ErrNotFound)
	}
	if st.Pid <= 0 {
		return "", fmt.Errorf("incus: %s: %w", name, backends.ErrNotRunning)
	}
	p := fmt.Sprintf("/proc/%d/ns/net", st.Pid)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("incus: %s not visible here: %w", p, backends.ErrNotSupported)
	}
	return p, nil
}

// adopt returns, running, the instance another caller is creating under
// name. Its creator may still be unpacking it, so retry the start until it
// runs.
func (b *Backend) adopt(ctx context.Context, name, workspace string) (backends.Instance, error) {
	deadline := time.Now().Add(adoptTimeout)
	for {
		in, err := b.getManaged(ctx, name)
		if errors.Is(err, backends.ErrNotFound) && time.Now().Before(deadline) {
			// The winner's create has not made the record yet.
			select {
			case <-ctx.Done():
				return backends.Instance{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return backends.Instance{}, err
		}
		inst := fromAPI(in)
		if inst.Workspace != workspace {
			return backends.Instance{}, fmt.Errorf("incus: instance %s belongs to workspace %s, not %s: %w",
				name, inst.Workspace, workspace, backends.ErrForeign)
		}
		inst, err = b.start(ctx, inst)
		if err == nil || time.Now().After(deadline) {
			return inst, err
		}
		select {
		case <-ctx.Done():
			return backends.Instance{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start starts (or unfreezes) an instance and returns it running. When the
// start fails because shifted mounts are not possible here, it drops
// shifting and tries once more.
func (b *Backend) start(ctx context.Context, inst backends.Instance) (backends.Instance, error) {
	if inst.State == backends.StateRunning {
		return inst, nil
	}
	backends.Report(ctx, "starting container %s", inst.Name)
	err := b.changeState(ctx, inst.Name, "start", false)
	for deadline := time.Now().Add(adoptTimeout); err != nil && isBusy(err) && time.Now().Before(deadline); {
		// Another caller (maybe another berth process) is still creating
		// it: start it once that is done.
		select {
		case <-ctx.Done():
			return backends.Instance{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		err = b.changeState(ctx, inst.Name, "start", false)
	}
	if err != nil && isShiftErr(err) {
		if uerr := b.dropShift(ctx, inst.Name); uerr == nil {
			b.log.Warn("shifted mounts unavailable; mounting the workspace unshifted (files show as nobody in the container)",
				"instance", inst.Name, "err", err)
			err = b.changeState(ctx, inst.Name, "start", false)
		}
	}
	in, gerr := b.getManaged(ctx, inst.ID)
	if gerr != nil {
		return backends.Instance{}, gerr
	}
	cur := fromAPI(in)
	if cur.State == backends.StateRunning {
		return cur, nil // started, by us or by a concurrent caller
	}
	if err == nil {
		err = errors.New("instance did not start")
	}
	return backends.Instance{}, b.mapErr("start "+inst.Name, err, backends.ErrNotFound)
}

// isBusy reports whether Incus refused an operation because another one
// (a create, a start) holds the instance: "Instance is busy running a
// "create" operation".
func isBusy(err error) bool { return strings.Contains(err.Error(), "is busy running") }

// changeState runs a state action; "start" on a frozen instance unfreezes it.
func (b *Backend) changeState(ctx context.Context, name, action string, force bool) error {
	req := rest.InstanceStatePut{Action: action, Force: force}
	if action == "stop" {
		b.stops.Store(name, time.Now())
		if !force {
			req.Timeout = stopTimeout
		}
	}
	if action == "start" {
		if in, _, err := b.c.Instance(ctx, name); err == nil && in.StatusCode == rest.Frozen {
			req.Action = "unfreeze"
		}
	}
	return b.run(ctx, func(ctx context.Context) (*rest.Operation, error) { return b.c.UpdateInstanceState(ctx, name, req) })
}

func isShiftErr(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "idmap") || strings.Contains(msg, "id mapped") || strings.Contains(msg, "shift")
}

// dropShift turns shifting off on the instance's berth mounts.
func (b *Backend) dropShift(ctx context.Context, name string) error {
	in, etag, err := b.c.Instance(ctx, name)
	if err != nil {
		return err
	}
	put := in.InstancePut
	changed := false
	for dev, cfg := range put.Devices {
		if isMountDevice(dev) && cfg["shift"] == "true" {
			delete(cfg, "shift")
			changed = true
		}
	}
	if !changed {
		return errors.New("no shifted mounts")
	}
	return b.run(ctx, func(ctx context.Context) (*rest.Operation, error) { return b.c.UpdateInstance(ctx, name, put, etag) })
}

// canShift reports whether the kernel supports idmapped mounts, which
// shift=true disk devices need. Without them an unprivileged container sees
// the workspace's files owned by nobody and cannot write to them unless
// they are world-writable.
func (b *Backend) canShift(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	srv, err := b.c.Server(ctx)
	if err != nil {
		return false
	}
	return srv.Environment.KernelFeatures["idmapped_mounts"] == "true"
}

// imageSource resolves ref, a local alias or (a prefix of) a fingerprint,
// and returns the image's architecture too.
func (b *Backend) imageSource(ctx context.Context, ref string) (src rest.InstanceSource, arch string, err error) {
	if ref == "" {
		return rest.InstanceSource{}, "", fmt.Errorf("incus: no image given: %w", backends.ErrImageNotFound)
	}
	if err := ctx.Err(); err != nil {
		return rest.InstanceSource{}, "", err
	}
	if remote, alias := splitRemote(b.cfg, ref); remote != "" {
		if remote != b.remoteName {
			return b.remoteImageSource(ctx, remote, alias)
		}
		ref = alias // the server berth talks to
	}
	fingerprint := ref
	alias, err := b.c.ImageAlias(ctx, ref)
	switch {
	case err == nil:
		fingerprint = alias.Target
	case !rest.IsStatus(err, http.StatusNotFound):
		return rest.InstanceSource{}, "", b.mapErr("image alias "+ref, err, backends.ErrImageNotFound)
	}
	img, err := b.c.Image(ctx, fingerprint)
	if err == nil {
		return rest.InstanceSource{Type: "image", Fingerprint: img.Fingerprint}, img.Architecture, nil
	}
	if !rest.IsStatus(err, http.StatusNotFound, http.StatusBadRequest) {
		return rest.InstanceSource{}, "", b.mapErr("image "+ref, err, backends.ErrImageNotFound)
	}
	hint := "import it with `incus image import` and give it an alias"
	if remote, alias, ok := strings.Cut(ref, ":"); ok {
		hint = fmt.Sprintf("berth does not pull from remotes; copy it first with `incus image copy %s:%s local: --alias %s`", remote, alias, alias)
	}
	return rest.InstanceSource{}, "", fmt.Errorf("incus: image %q is not a local alias or fingerprint (%s): %w", ref, hint, backends.ErrImageNotFound)
}

// remoteImageSource is image alias (or fingerprint) on another remote of
// the client's configuration, for the daemon to pull as it creates the
// instance. Only a public remote (an image server) serves a daemon that
// holds none of the client's credentials.
func (b *Backend) remoteImageSource(ctx context.Context, remote, alias string) (rest.InstanceSource, string, error) {
	rc := b.cfg.Remotes[remote]
	if !rc.Public && rc.Protocol != "simplestreams" {
		return rest.InstanceSource{}, "", fmt.Errorf("incus: image %s:%s is on private remote %s, which %s can't pull from; copy it first with `incus image copy %s:%s %s: --alias %s`: %w",
			remote, alias, remote, b.where, remote, alias, b.remoteName, alias, backends.ErrImageNotFound)
	}
	src := rest.InstanceSource{Type: "image", Mode: "pull", Server: rc.Addr, Protocol: rc.Protocol, Alias: alias}
	if src.Protocol == "" {
		src.Protocol = "incus"
	}
	if p := b.cfg.ServerCert(remote); p != "" {
		if pem, err := os.ReadFile(p); err == nil {
			src.Certificate = string(pem)
		}
	}
	// The architecture is the server's own: it pulls the variant for it.
	arch := ""
	if srv, err := b.c.Server(ctx); err == nil && len(srv.Environment.Architectures) > 0 {
		arch = srv.Environment.Architectures[0]
	}
	return src, arch, nil
}

var _ backends.ImageInspector = (*Backend)(nil)

// InspectImage implements backends.ImageInspector: an Incus image's
// properties stand in for labels.
func (b *Backend) InspectImage(ctx context.Context, ref string) (backends.ImageInfo, error) {
	src, _, err := b.imageSource(ctx, ref)
	if err != nil {
		return backends.ImageInfo{}, err
	}
	if src.Mode == "pull" {
		return backends.ImageInfo{ID: ref}, nil // its properties are the other server's to tell
	}
	img, err := b.c.Image(ctx, src.Fingerprint)
	if err != nil {
		return backends.ImageInfo{}, b.mapErr("image "+ref, err, backends.ErrImageNotFound)
	}
	return backends.ImageInfo{ID: img.Fingerprint, Labels: img.Properties}, nil
}

// Stop implements backends.Backend.
func (b *Backend) Stop(ctx context.Context, id string) error {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return err
	}
	if in.StatusCode == rest.Stopped {
		return nil
	}
	return b.stop(ctx, in.Name)
}

// stop stops cleanly (the test image's init exits on SIGPWR at once) and
// forces the stop when the clean one times out or fails.
func (b *Backend) stop(ctx context.Context, name string) error {
	err := b.changeState(ctx, name, "stop", false)
	if err == nil || b.stopped(ctx, name) {
		return nil
	}
	if ctx.Err() != nil {
		return b.mapErr("stop "+name, err, backends.ErrNotFound)
	}
	b.log.Debug("clean stop failed; forcing", "instance", name, "err", err)
	if err := b.changeState(ctx, name, "stop", true); err != nil && !b.stopped(ctx, name) {
		return b.mapErr("stop "+name, err, backends.ErrNotFound)
	}
	return nil
}

func (b *Backend) stopped(ctx context.Context, name string) bool {
	in, _, err := b.c.Instance(ctx, name)
	return err == nil && in.StatusCode == rest.Stopped
}

// Remove implements backends.Backend.
func (b *Backend) Remove(ctx context.Context, id string) error {
	in, err := b.getManaged(ctx, id)
	if err != nil {
		return err
	}
	if in.StatusCode != rest.Stopped {
		if err := b.changeState(ctx, in.Name, "stop", true); err != nil && !b.stopped(ctx, in.Name) {
			return b.mapErr("stop "+in.Name, err, backends.ErrNotFound)
		}
	}
	err = b.run(ctx, func(ctx context.Context) (*rest.Operation, error) { return b.c.DeleteInstance(ctx, in.Name) })
	if err != nil {
		return b.mapErr("remove "+in.Name, err, backends.ErrNotFound)
	}
	b.log.Info("removed container", "instance", in.Name)
	return nil
}

// keyedLocks hands out one lock per key; entries go away when unused.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock // guarded by mu
}

type keyedLock struct {
	ch    chan struct{} // holds a token while locked
	users int           // guarded by keyedLocks.mu
}

func (k *keyedLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.users++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// deviceIndex orders mount devices by their number.
func deviceIndex(dev string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(dev, mountDevicePrefix))
	if err != nil {
		return 1 << 30
	}
	return n
}
