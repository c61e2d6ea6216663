package session

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/berthdev/berth/backends"
	"github.com/berthdev/berth/devcontainer"
)

// hostIDs is the host user's uid and gid, which updateRemoteUserUID gives
// the remote user; a variable so tests can be someone else.
var hostIDs = func() (uid, gid int) { return os.Getuid(), os.Getgid() }

// updateUIDScript changes user $1's uid and gid to $2 and $3 in
// /etc/passwd and /etc/group, and hands its home over, with nothing but
// a POSIX shell, awk and sed: the image may have no usermod. It leaves
// ids another user or group already has alone (exit 3 names the clash).
const updateUIDScript = `set -e
u="$1"; uid="$2"; gid="$3"
line=$(grep "^$u:" /etc/passwd) || { echo "no user $u in /etc/passwd"; exit 3; }
olduid=$(echo "$line" | cut -d: -f3); oldgid=$(echo "$line" | cut -d: -f4); home=$(echo "$line" | cut -d: -f6)
[ "$olduid" = "$uid" ] && [ "$oldgid" = "$gid" ] && exit 0
if [ "$olduid" != "$uid" ]; then
	if awk -F: -v u="$u" -v id="$uid" '$3==id && $1!=u {f=1} END {exit !f}' /etc/passwd; then echo "uid $uid belongs to another user"; exit 3; fi
	sed -i "s/^$u:\([^:]*\):$olduid:/$u:\1:$uid:/" /etc/passwd
fi
if [ "$oldgid" != "$gid" ]; then
	if awk -F: -v id="$gid" '$3==id {f=1} END {exit !f}' /etc/group; then
		sed -i "s/^\($u:[^:]*:[^:]*:\)$oldgid:/\1$gid:/" /etc/passwd
	else
		grp=$(awk -F: -v id="$oldgid" '$3==id {print $1; exit}' /etc/group)
		[ -n "$grp" ] && sed -i "s/^$grp:\([^:]*\):$oldgid:/$grp:\1:$gid:/" /etc/group
		sed -i "s/^\($u:[^:]*:[^:]*:\)$oldgid:/\1$gid:/" /etc/passwd
	fi
fi
[ -d "$home" ] && chown -R "$uid:$gid" "$home" 2>/dev/null || true
`

// remoteUIDPlan says whether updateRemoteUserUID applies to a new
// instance, and for which user and ids, or why not.
func (m *Manager) remoteUIDPlan(cfg *devcontainer.Config) (user string, uid, gid int, why string) {
	if cfg == nil || !cfg.UpdatesRemoteUserUID() {
		return "", 0, 0, "off"
	}
	user = cfg.RemoteUser
	if user == "" {
		user = cfg.ContainerUser
	}
	name, _, _ := strings.Cut(user, ":")
	switch {
	case runtime.GOOS != "linux":
		return "", 0, 0, "not a Linux host"
	case name == "" || name == "root" || name == "0":
		return "", 0, 0, "the remote user is root"
	}
	if _, err := strconv.Atoi(name); err == nil {
		return "", 0, 0, "the remote user is a bare uid"
	}
	if l, ok := m.backend.(backends.Localer); ok && !l.Local() {
		return "", 0, 0, "the engine is remote"
	}
	if im, ok := m.backend.(backends.IDMapper); ok && im.MapsIDs() {
		return "", 0, 0, "the engine maps ids itself"
	}
	uid, gid = hostIDs()
	if uid == 0 {
		return "", 0, 0, "the host user is root"
	}
	return name, uid, gid, ""
}

// updateRemoteUID gives the remote user of a new instance the host user's
// uid and gid, before any hook runs, so that files in the workspace are
// theirs on both sides.
func (w *Workspace) updateRemoteUID(ctx context.Context, r Ready) {
	user, uid, gid, why := w.m.remoteUIDPlan(r.Config)
	if why != "" {
		w.log.Debug("updateRemoteUserUID skipped", "why", why)
		return
	}
	var out tailBuffer
	proc, err := w.exec(ctx, r, backends.ExecSpec{
		Argv: []string{"/bin/sh", "-c", updateUIDScript, "sh", user, strconv.Itoa(uid), strconv.Itoa(gid)},
		User: "0", Stdout: &out, Stderr: &out, Helper: true,
	}, nil)
	if err == nil {
		var st backends.ExitStatus
		if st, err = proc.Wait(ctx); err == nil && st.Code != 0 {
			err = fmt.Errorf("exit code %d: %s", st.Code, strings.TrimSpace(out.String()))
		}
	}
	if err != nil {
		backends.Report(ctx, "updateRemoteUserUID: %s keeps its uid: %v", user, err)
		return
	}
	backends.Report(ctx, "updateRemoteUserUID: %s now has uid %d and gid %d", user, uid, gid)
}
