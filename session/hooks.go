package session

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// ErrHookFailed means a lifecycle command (onCreateCommand,
// updateContentCommand or postCreateCommand) failed in a new container.
var ErrHookFailed = errors.New("lifecycle command failed")

// LabelHooks marks a container created with create hooks to run, so that
// every berth process knows to wait for them (or run them) rather than
// take the container as ready.
const LabelHooks = "berth.hooks"

// statePath is berth's bookkeeping inside an instance. Docker labels are
// immutable, so it lives in the instance's own filesystem, where every berth
// process, and a restarted one, reads the same answer.
const statePath = "/.berth/state.json"

// Create-hook states in instanceState.Create.
const (
	createRunning = "running"
	createDone    = "done"
	createFailed  = "failed"
)

// instanceState is the content of statePath.
type instanceState struct {
	Create  string `json:"create,omitempty"`  // create hooks: "", running, done or failed
	Owner   string `json:"owner,omitempty"`   // host:pid of the berth that runs them
	Error   string `json:"error,omitempty"`   // why they failed, with the output's tail
	Started string `json:"started,omitempty"` // the start postStartCommand last ran for
	Reached string `json:"reached,omitempty"` // the last create hook done while they run
}

// HookRun is the outcome of one lifecycle command.
type HookRun struct {
	Hook string // onCreateCommand … postAttachCommand
	Name string // the entry's name in the object form
	PID  string
	Code int
	Err  string
	Tail string // the end of its output, kept when it failed
}

func (r HookRun) failed() bool { return r.Err != "" || r.Code != 0 }

// hookTail is how much output a failed hook's report keeps.
const hookTail = 2 << 10

// createWait bounds how long a berth that didn't create a container waits
// for the one that did to start its create hooks.
const createWait = 20 * time.Second

// lifecycle runs the hooks that r's creation or start calls for, keeping
// the bookkeeping in the instance. The caller holds op.
//
// With opts.WaitAll (berth/up) every hook has run when it returns. Other
// calls wait for the hooks up to the configuration's waitFor (by default
// updateContentCommand); the rest run in the background, owned by the
// workspace rather than by the caller's connection.
func (w *Workspace) lifecycle(ctx context.Context, r *Ready, opts EnsureOptions) error {
	cfg := r.Config
	if cfg == nil {
		return nil
	}
	create := createCommands(cfg)
	hasCreate := len(create) > 0 && (r.Created || r.Labels[LabelHooks] == "true")
	if fi := r.install; fi != nil {
		// Once, at creation, before any hook: a failure leaves no
		// instance behind.
		r.install = nil
		if err := w.installFeatures(ctx, r, fi); err != nil {
			return w.removeHalfBuilt(ctx, r, err)
		}
	}
	postStart := stageHooks(cfg, "postStartCommand")
	if !hasCreate && len(postStart) == 0 {
		return nil
	}
	run := opts.Hooks
	if run == nil {
		run = w.runHookQuiet
	}
	st, err := w.readState(ctx, r.ID)
	if err != nil {
		return err
	}
	waitIdx := devcontainer.HookIndex(cfg.EffectiveWaitFor())
	if opts.WaitAll {
		waitIdx = len(devcontainer.HookNames())
	}
	bgRun := opts.Background
	if bgRun == nil {
		bgRun = w.runHookQuiet
	}
	var later []namedHook // create hooks left for the background
	if hasCreate {
		if r.Created && r.Labels[LabelSync] == "true" {
			if err := w.copyIn(ctx, cfg, *r); err != nil {
				return err
			}
			r.copied = true
		}
		var here bool
		if st, here, err = w.claimCreate(ctx, r, st, waitIdx); err != nil {
			return err
		}
		if here {
			var now []namedHook
			for _, h := range create {
				if devcontainer.HookIndex(h.name) <= waitIdx {
					now = append(now, h)
				} else {
					later = append(later, h)
				}
			}
			if st, err = w.runCreate(ctx, r, st, now, run, len(later) == 0); err != nil {
				return err
			}
		}
	}
	start := false
	if len(postStart) > 0 {
		token := ""
		if !r.Instance.Instance.Started.IsZero() {
			token = r.Instance.Instance.Started.UTC().Format(time.RFC3339Nano)
		}
		if start = !(token == "" && !r.Started || token != "" && st.Started == token); start && token != "" {
			// Claimed before it runs: another berth seeing this start
			// skips it.
			st.Started = token
			if err := w.writeState(ctx, r.ID, st); err != nil {
				return err
			}
		}
	}
	startNow := start && waitIdx >= devcontainer.HookIndex("postStartCommand")
	if start && !startNow || len(later) > 0 {
		rr := *r
		rr.Hooks = nil
		startLater := start && !startNow
		w.background(func(ctx context.Context) {
			if len(later) > 0 {
				var err error
				if st, err = w.runCreate(ctx, &rr, st, later, bgRun, true); err != nil {
					w.log.Warn("create hooks failed in the background", "err", err)
					return
				}
			}
			if startLater {
				w.postStart(ctx, &rr, bgRun)
			}
		})
	}
	if startNow {
		w.postStart(ctx, r, run)
	}
	return nil
}

// postStart runs postStartCommand, which lifecycle claimed.
func (w *Workspace) postStart(ctx context.Context, r *Ready, run HookFunc) {
	backends.Report(ctx, "running postStartCommand")
	for _, nh := range stageHooks(r.Config, "postStartCommand") {
		for _, h := range runHook(ctx, *r, nh, run) {
			r.Hooks = append(r.Hooks, h)
			if h.failed() {
				w.log.Warn("postStartCommand failed", "name", h.Name, "code", h.Code, "err", h.Err)
			}
		}
	}
}

// background runs f on the manager's lifetime, not the caller's: hooks
// that waitFor leaves behind finish whoever asked. WaitBackground waits
// for the latest; Manager.Close cancels and waits.
func (w *Workspace) background(f func(ctx context.Context)) {
	done := make(chan struct{})
	w.mu.Lock()
	w.bgDone = done
	w.mu.Unlock()
	w.m.bg.Add(1)
	go func() {
		defer w.m.bg.Done()
		defer close(done)
		f(w.m.ctx)
	}()
}

// waitBackground waits for the hooks running in the background, if any.
func (w *Workspace) waitBackground(ctx context.Context) error {
	w.mu.Lock()
	done := w.bgDone
	w.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type namedHook struct {
	name string // the stage: onCreateCommand, …
	// from names the image-metadata entry it comes from: a Feature's id,
	// or "image metadata[i]"; "" for the configuration's own.
	from string
	hook *devcontainer.Hook
}

// stageHooks lists a stage's commands in the order they run: every
// image-metadata entry's (the base image's, then the Features'), then the
// configuration's own.
func stageHooks(cfg *devcontainer.Config, stage string) []namedHook {
	var out []namedHook
	for i, m := range cfg.Metadata {
		if h := m.Hook(stage); h != nil {
			from := m.ID
			if from == "" {
				from = fmt.Sprintf("image metadata[%d]", i)
			}
			out = append(out, namedHook{name: stage, from: from, hook: h})
		}
	}
	var own *devcontainer.Hook
	switch stage {
	case "onCreateCommand":
		own = cfg.OnCreate
	case "updateContentCommand":
		own = cfg.UpdateContent
	case "postCreateCommand":
		own = cfg.PostCreate
	case "postStartCommand":
		own = cfg.PostStart
	case "postAttachCommand":
		own = cfg.PostAttach
	}
	if own != nil {
		out = append(out, namedHook{name: stage, hook: own})
	}
	return out
}

// createCommands lists the create hooks, in the order they run.
func createCommands(cfg *devcontainer.Config) []namedHook {
	var out []namedHook
	for _, stage := range []string{"onCreateCommand", "updateContentCommand", "postCreateCommand"} {
		out = append(out, stageHooks(cfg, stage)...)
	}
	return out
}

// claimCreate decides who runs the create hooks, once per container:
// this call when it created the container (or their runner vanished);
// otherwise it waits for whichever berth runs them, until they are done,
// or have reached the hook at waitIdx.
func (w *Workspace) claimCreate(ctx context.Context, r *Ready, st instanceState, waitIdx int) (instanceState, bool, error) {
	deadline := time.Now().Add(createWait)
	for !r.Created {
		switch {
		case st.Create == createDone:
			return st, false, nil
		case st.Create == createFailed:
			r.HookError = st.Error
			return st, false, nil
		case st.Create == createRunning && st.Reached != "" && devcontainer.HookIndex(st.Reached) >= waitIdx:
			return st, false, nil
		case st.Create == createRunning && ownerGone(st.Owner):
			w.log.Warn("the berth running the create hooks is gone; running them again", "owner", st.Owner)
		case st.Create == "" && time.Now().After(deadline):
			w.log.Warn("create hooks never started; running them")
		default:
			select {
			case <-ctx.Done():
				return st, false, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			var err error
			if st, err = w.readState(ctx, r.ID); err != nil {
				return st, false, err
			}
			continue
		}
		break
	}
	st.Create, st.Owner, st.Error, st.Reached = createRunning, hostID(), "", ""
	if err := w.writeState(ctx, r.ID, st); err != nil {
		return st, false, err
	}
	return st, true, nil
}

// runCreate runs create hooks in order, recording in the instance how far
// they got; last says they are the final ones, after which they are done.
// A failure is recorded, and returned.
func (w *Workspace) runCreate(ctx context.Context, r *Ready, st instanceState, hooks []namedHook, run HookFunc, last bool) (instanceState, error) {
	var failed *HookRun
	for _, h := range hooks {
		backends.Report(ctx, "running %s", h.name)
		for _, hr := range runHook(ctx, *r, h, run) {
			r.Hooks = append(r.Hooks, hr)
			if hr.failed() && failed == nil {
				failed = &hr
			}
		}
		if failed != nil {
			break
		}
		st.Reached = h.name
		if !last {
			// Callers waiting for this hook may go on.
			if err := w.writeState(ctx, r.ID, st); err != nil {
				return st, err
			}
		}
	}
	if failed == nil && !last {
		return st, nil
	}
	st.Create, st.Owner = createDone, ""
	var herr error
	if failed != nil {
		what := failed.Hook
		if failed.Name != "" {
			what += " " + failed.Name
		}
		how := fmt.Sprintf("exited with code %d", failed.Code)
		if failed.Err != "" {
			how = failed.Err
		}
		st.Create, st.Error = createFailed, fmt.Sprintf("%s %s", what, how)
		if t := strings.TrimSpace(failed.Tail); t != "" {
			st.Error += ":\n" + t
		}
		herr = fmt.Errorf("%w: %s (berth won't run it again; fix it and recreate the container)", ErrHookFailed, st.Error)
		r.HookError = st.Error
	}
	// The record must outlive a cancelled request.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), metaTimeout)
	defer cancel()
	if err := w.writeState(wctx, r.ID, st); err != nil {
		return st, err
	}
	return st, herr
}

// ownerGone reports whether the berth process named by owner has died. An
// owner on another host can't be checked, and counts as alive.
func ownerGone(owner string) bool {
	pid, ok := sameHostPID(owner)
	if !ok {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// runHook runs a lifecycle command in its three forms: a string through
// /bin/sh, an array directly, an object's entries in parallel. A command
// from image metadata is named after its entry ("node", "node/build").
func runHook(ctx context.Context, r Ready, nh namedHook, run HookFunc) []HookRun {
	name, h := nh.name, nh.hook
	one := func(entry string, h *devcontainer.Hook) HookRun {
		switch {
		case nh.from != "" && entry != "":
			entry = nh.from + "/" + entry
		case nh.from != "":
			entry = nh.from
		}
		argv := h.Argv
		if h.Shell != "" {
			argv = []string{"/bin/sh", "-c", h.Shell}
		}
		if len(argv) == 0 {
			return HookRun{Hook: name, Name: entry}
		}
		return run(ctx, r, name, entry, argv)
	}
	if len(h.Parallel) == 0 {
		return []HookRun{one("", h)}
	}
	names := make([]string, 0, len(h.Parallel))
	for n := range h.Parallel {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]HookRun, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = one(n, h.Parallel[n])
		}()
	}
	wg.Wait()
	return out
}

// runHookQuiet runs a lifecycle command for no client in particular.
func (w *Workspace) runHookQuiet(ctx context.Context, r Ready, hook, entry string, argv []string) HookRun {
	return w.runHookAs(ctx, r, hook, entry, backends.ExecSpec{Argv: argv})
}

// runHookAs runs a lifecycle command as spec says (its user and
// environment), keeping the tail of its output.
func (w *Workspace) runHookAs(ctx context.Context, r Ready, hook, entry string, spec backends.ExecSpec) HookRun {
	var out tailBuffer
	hr := HookRun{Hook: hook, Name: entry}
	spec.Cwd, spec.Stdout, spec.Stderr = r.Workdir, &out, &out
	proc, err := w.exec(ctx, r, spec, nil)
	if err != nil {
		hr.Err = err.Error()
		return hr
	}
	st, err := proc.Wait(context.WithoutCancel(ctx))
	hr.Code = st.Code
	if err != nil {
		hr.Err = err.Error()
	}
	if hr.failed() {
		hr.Tail = out.String()
	}
	return hr
}

// tailBuffer keeps the last hookTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > hookTail {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-hookTail:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// readState reads the instance's bookkeeping; a missing file is a zero
// state.
func (w *Workspace) readState(ctx context.Context, id string) (instanceState, error) {
	var st instanceState
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	data, err := w.readFile(ctx, id, statePath, 64<<10)
	switch {
	case errors.Is(err, backends.ErrUnavailable) || ctx.Err() != nil:
		return st, w.m.engineErr(ctx, "read state", err)
	case err != nil:
		return st, nil // not written yet
	}
	if err := json.Unmarshal(data, &st); err != nil {
		w.log.Warn("unreadable instance state; starting afresh", "err", err)
		return instanceState{}, nil
	}
	return st, nil
}

// writeState replaces the instance's bookkeeping.
func (w *Workspace) writeState(ctx context.Context, id string, st instanceState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return w.writeFile(ctx, id, statePath, data)
}

// writeFile replaces one file of berth's in the instance, making its
// directories, within metaTimeout. It needs nothing in the image.
func (w *Workspace) writeFile(ctx context.Context, id, p string, data []byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	rel := strings.TrimPrefix(path.Clean(p), "/")
	var hdrs []*tar.Header
	for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
		hdrs = append([]*tar.Header{{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: now}}, hdrs...)
	}
	hdrs = append(hdrs, &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: now})
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	if err := w.m.backend.CopyTo(ctx, id, "/", &buf); err != nil {
		return w.m.engineErr(ctx, "write "+p, fmt.Errorf("write %s: %w", p, err))
	}
	return nil
}

// readFile reads one regular file out of the instance, at most limit
// bytes of it.
func (w *Workspace) readFile(ctx context.Context, id, p string, limit int64) ([]byte, error) {
	rc, err := w.m.backend.CopyFrom(ctx, id, p)
	if err != nil {
		return nil, w.m.engineErr(ctx, "read", err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, limit))
		}
	}
}
