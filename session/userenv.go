package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/berthdev/berth/backends"
)

// userEnvDir holds the probed environments, one file per user: probed
// once per container, whichever berth process asks first.
const userEnvDir = "/.berth/userenv"

// userEnvSuffix follows the host run directory's name in the names of the
// host's copies of user environments.
const userEnvSuffix = ".userenv-"

// probeTimeout bounds the shell that userEnvProbe starts: a login
// script that waits for input must not hold up every process.
const probeTimeout = 10 * time.Second

// probeMarker frames the environment in the probe's output, which rc
// files may add to.
const probeMarker = "BERTH-USERENV-7f3a"

// probeSkip are variables of the probing shell itself, not of the user.
var probeSkip = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// userEnv returns the environment the configuration's userEnvProbe
// captures for user ("" for the image's default): the variables of the
// user's login and/or interactive shell. It is probed once per container
// and cached there and here; a failed probe counts as an empty one, with
// a warning in the log.
func (w *Workspace) userEnv(ctx context.Context, r Ready, user string) map[string]string {
	cfg := r.Config
	if cfg == nil || r.synthetic {
		return nil
	}
	mode := cfg.EffectiveUserEnvProbe()
	flags := map[string]string{"interactiveShell": "-i", "loginShell": "-l", "loginInteractiveShell": "-li"}[mode]
	if flags == "" {
		return nil
	}
	key := probeKey(r, user, mode)
	w.mu.Lock()
	env, ok := w.probed[key]
	w.mu.Unlock()
	if ok {
		return env
	}
	name := user
	if name == "" {
		name = "_default"
	}
	file := path.Join(userEnvDir, safeName(name)+"."+mode+".json")
	// A copy on the host, beside the door's record, spares each new berth
	// process the engine's slow file copy.
	hostCopy := ""
	if dir := w.m.fastDirOf(r.Instance.Instance); dir != "" {
		hostCopy = filepath.Clean(dir) + userEnvSuffix + safeName(name) + "." + mode + ".json"
		if env, ok := readHostEnv(hostCopy, r.ID); ok {
			w.remember(key, env)
			return env
		}
	}
	defer func() {
		if hostCopy != "" {
			writeHostEnv(hostCopy, r.ID, env)
		}
	}()
	if data, err := w.readFile(ctx, r.ID, file, 1<<20); err == nil && json.Unmarshal(data, &env) == nil {
		w.remember(key, env)
		return env
	}
	env, err := w.probe(ctx, r, user, flags)
	if err != nil {
		// Said once per container: an image without a shell fails the
		// same way every time, and is cached like a success.
		w.log.Info("userEnvProbe failed; processes get the container's environment", "user", user, "probe", mode, "err", err)
		env = map[string]string{}
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backends.ErrUnavailable) {
			w.remember(key, env) // transient: probe again in the next berth
			return env
		}
	}
	if data, err := json.Marshal(env); err == nil {
		if err := w.writeFile(ctx, r.ID, file, data); err != nil {
			w.log.Debug("probed environment not cached in the container", "err", err)
		}
	}
	w.remember(key, env)
	return env
}

func probeKey(r Ready, user, mode string) string {
	return runnerKey(r.Instance.Instance) + "\x00" + user + "\x00" + mode
}

// probedEnv is userEnv without probing: known is false until a probe (or
// the container's cache) has answered.
func (w *Workspace) probedEnv(r Ready, user string) (env map[string]string, known bool) {
	if r.Config == nil || r.synthetic || r.Config.EffectiveUserEnvProbe() == "none" {
		return nil, true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	env, known = w.probed[probeKey(r, user, r.Config.EffectiveUserEnvProbe())]
	return env, known
}

func (w *Workspace) remember(key string, env map[string]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.probed == nil {
		w.probed = map[string]map[string]string{}
	}
	w.probed[key] = env
}

// probe runs the user's shell from /etc/passwd (else /bin/sh) with flags
// and reads its exported environment.
func (w *Workspace) probe(ctx context.Context, r Ready, user, flags string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	script := `s=$(awk -F: -v u="$(id -un)" '$1==u{print $7}' /etc/passwd 2>/dev/null)
[ -x "$s" ] || s=/bin/sh
exec "$s" ` + flags + ` -c 'printf %s "$0"; cat /proc/self/environ; printf %s "$0"' ` + probeMarker
	var out bytes.Buffer
	proc, err := w.exec(ctx, r, backends.ExecSpec{Argv: []string{"/bin/sh", "-c", script}, User: user, Stdout: &out, Stderr: io.Discard, Helper: true}, nil)
	if err != nil {
		return nil, err
	}
	st, err := proc.Wait(ctx)
	if err != nil {
		_ = proc.Kill(context.WithoutCancel(ctx))
		return nil, err
	}
	return parseProbe(out.Bytes(), st.Code)
}

// parseProbe reads the NUL-separated environment between the markers.
func parseProbe(out []byte, code int) (map[string]string, error) {
	_, rest, ok := bytes.Cut(out, []byte(probeMarker))
	body, _, ok2 := bytes.Cut(rest, []byte(probeMarker))
	if !ok || !ok2 {
		return nil, fmt.Errorf("the shell printed no environment (exit code %d)", code)
	}
	env := map[string]string{}
	for kv := range strings.SplitSeq(string(body), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" && !probeSkip[k] {
			env[k] = v
		}
	}
	return env, nil
}

// hostEnv is the host's copy of a container's probed environment.
type hostEnv struct {
	ID  string            `json:"id"` // the container it was probed in
	Env map[string]string `json:"env"`
}

// readHostEnv reads the host's copy at p, if it is berth's own and of the
// container id.
func readHostEnv(p, id string) (map[string]string, bool) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil, false
	}
	var he hostEnv
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&he); err != nil || he.ID != id || he.Env == nil {
		return nil, false
	}
	return he.Env, true
}

// writeHostEnv writes the host's copy, readable by berth's user alone.
func writeHostEnv(p, id string, env map[string]string) {
	if env == nil {
		return
	}
	data, err := json.Marshal(hostEnv{ID: id, Env: env})
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".userenv")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}
