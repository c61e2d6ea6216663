package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// ErrUnhealthy means a service's health check did not pass within the
// timeout; the container is left running for inspection.
var ErrUnhealthy = errors.New("service not healthy")

// DefaultHealthTimeout is how long berth/up waits for a service to pass
// its health check.
const DefaultHealthTimeout = 2 * time.Minute

// healthProbeTimeout bounds one health request.
const healthProbeTimeout = 5 * time.Second

// healthInterval is how often berth checks a running service after up.
const healthInterval = 10 * time.Second

// HealthSink is implemented by sinks that hear of a service's health
// changing after up: health is healthy or unhealthy, why says what the
// check got instead.
type HealthSink interface {
	HealthChanged(workspace, health, why string)
}

// SetHealthTimeout sets how long berth/up waits for a service's health
// check to pass; 0 restores DefaultHealthTimeout.
func (m *Manager) SetHealthTimeout(d time.Duration) {
	m.mu.Lock()
	m.healthTimeout = d
	m.mu.Unlock()
}

func (m *Manager) healthWait() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.healthTimeout > 0 {
		return m.healthTimeout
	}
	return DefaultHealthTimeout
}

// servicePort is the port a service listens on: the configuration's, else
// the image's first EXPOSEd TCP port; 0 when neither says.
func (w *Workspace) servicePort(ctx context.Context, r Ready) int {
	svc := r.Config.Berth.Service
	if svc.Port > 0 {
		return svc.Port
	}
	ii, ok := w.m.backend.(backends.ImageInspector)
	if !ok {
		return 0
	}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	info, err := ii.InspectImage(ctx, r.Image)
	if err != nil || len(info.Ports) == 0 {
		return 0
	}
	return info.Ports[0]
}

// probeHealth sends one health request to the service through the instance's
// network (the agent, or its network namespace): healthy is a 2xx or 3xx
// answer. The error says what came back instead.
func (w *Workspace) probeHealth(ctx context.Context, r Ready, svc *devcontainer.Service, port int) error {
	ctx, cancel := context.WithTimeout(ctx, healthProbeTimeout)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return w.dial(ctx, r, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		},
		// The service's own certificate, on localhost: nothing to verify.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("%s://localhost:%d%s", svc.Scheme, port, svc.Health)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s answered %s", url, resp.Status)
	}
	return nil
}

// Health checks a service instance once: HealthHealthy, or
// HealthUnhealthy with why. Instances of other lifetimes report their
// engine's own health check (Instance.Health).
func (w *Workspace) Health(ctx context.Context, r Ready) (string, error) {
	if r.Config == nil || r.Config.Berth.Service == nil || r.State != backends.StateRunning {
		return r.Instance.Health, nil
	}
	port := w.servicePort(ctx, r)
	if port == 0 {
		return backends.HealthUnhealthy, errors.New("the service has no port: set customizations.berth.service.port, or EXPOSE one in the image")
	}
	if err := w.probeHealth(ctx, r, r.Config.Berth.Service, port); err != nil {
		return backends.HealthUnhealthy, err
	}
	return backends.HealthHealthy, nil
}

// healthNow is Health with the error's text.
func (w *Workspace) healthNow(ctx context.Context, r Ready) (string, string) {
	h, err := w.Health(ctx, r)
	if err != nil {
		return h, err.Error()
	}
	return h, ""
}

// waitHealthy checks a service until it passes or the manager's health
// timeout runs out, reporting progress. It returns the service's port.
func (w *Workspace) waitHealthy(ctx context.Context, r Ready) (int, error) {
	svc := r.Config.Berth.Service
	port := w.servicePort(ctx, r)
	if port == 0 {
		return 0, fmt.Errorf("%w: the service has no port: set customizations.berth.service.port, or EXPOSE one in the image", ErrUnhealthy)
	}
	wait := w.m.healthWait()
	deadline := time.Now().Add(wait)
	backends.Report(ctx, "waiting for the service on port %d to be healthy (%s %s)", port, svc.Scheme, svc.Health)
	lastReport := time.Now()
	for {
		err := w.probeHealth(ctx, r, svc, port)
		if err == nil {
			backends.Report(ctx, "service on port %d is healthy", port)
			return port, nil
		}
		if time.Now().After(deadline) {
			return port, fmt.Errorf("%w: port %d not healthy after %s: %v; the container %s is left running for inspection", ErrUnhealthy, port, wait, err, r.Name)
		}
		if time.Since(lastReport) >= 5*time.Second {
			backends.Report(ctx, "service on port %d not healthy yet: %v", port, err)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			return port, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// watchHealth checks r's service every healthInterval for as long as that
// start of the instance runs, and tells the workspace's clients when its
// health changes from known; with known "", the first check only learns
// it. One watcher runs per start in each berth process; the manager owns
// it.
func (w *Workspace) watchHealth(r Ready, known string) {
	key := runnerKey(r.Instance.Instance)
	w.mu.Lock()
	if w.healthKey == key {
		w.mu.Unlock()
		return
	}
	w.healthKey = key
	// The caller saw r run, maybe a start another berth process made and
	// this one heard nothing of; events say when that changes.
	w.lastState = string(backends.StateRunning)
	w.mu.Unlock()
	w.m.bg.Add(1)
	go func() {
		defer w.m.bg.Done()
		last := known
		if last == "" {
			last, _ = w.healthNow(w.m.ctx, r)
		}
		t := time.NewTicker(healthInterval)
		defer t.Stop()
		for {
			select {
			case <-w.m.ctx.Done():
				return
			case <-t.C:
			}
			if !w.healthWatched(key) {
				return
			}
			health, why := w.healthNow(w.m.ctx, r)
			// A check that raced a stop says nothing about the service.
			if health == last || !w.healthWatched(key) {
				continue
			}
			last = health
			w.notifyHealth(health, why)
		}
	}()
}

// healthWatched says whether the watcher of key should go on: the
// instance runs and no newer start has its own.
func (w *Workspace) healthWatched(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastState != string(backends.StateRunning) {
		w.healthKey = ""
	}
	return w.healthKey == key
}

// notifyHealth tells every client that used the workspace its service's
// new health.
func (w *Workspace) notifyHealth(health, why string) {
	w.mu.Lock()
	clients := make([]*Client, 0, len(w.clients))
	for c := range w.clients {
		clients = append(clients, c)
	}
	w.mu.Unlock()
	w.log.Info("service health changed", "health", health, "why", why)
	for _, c := range clients {
		if hs, ok := c.sink.(HealthSink); ok {
			hs.HealthChanged(w.path, health, why)
		}
	}
}
