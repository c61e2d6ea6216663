#!/usr/bin/env bash
# Starts Podman's Docker-compatible API for berth's tests (issue 16), from
# Debian's podman:
#   rootful   unix:///run/podman/podman.sock
#   rootless  unix:///run/user/UID/podman/podman.sock, served by the
#             dedicated user berth-podman (subuid/subgid ranges and an
#             XDG_RUNTIME_DIR made here), whose workspaces live under
#             /var/lib/berth-podman/work.
# The test images are copied from the first dockerd when missing. Idempotent
# and cheap once up; needs root.
set -euo pipefail

log() { echo "setup/podman: $*" >&2; }

USER_NAME=berth-podman
IMAGES=(berth-test/busybox:1 berth-test/debian:2)

if [ "$(id -u)" != 0 ]; then
	log "needs root"
	exit 1
fi

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 || ! command -v newuidmap >/dev/null 2>&1 || ! command -v slirp4netns >/dev/null 2>&1; then
	log "installing podman"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends podman runc uidmap slirp4netns fuse-overlayfs catatonit >/dev/null
fi

# Podman gives containers nofile and nproc limits of 1048576 and more,
# which the runtime can't set where berth runs without CAP_SYS_RESOURCE
# (as in some VMs and CI sandboxes): default them to what this machine
# allows (podman holds its own nproc at 32768 at most). And runc, not
# crun: Debian 12's crun refuses hybrid cgroups.
conf=/etc/containers/containers.conf.d/berth-test.conf
mkdir -p "$(dirname "$conf")"
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
[ "$nofile" = unlimited ] || [ "$nofile" -gt 1048576 ] && nofile=1048576
want="[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\""
restart=
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
	echo "$want" >"$conf"
	restart=1
fi
# Rootless Podman's slirp4netns opens /dev/net/tun: Debian makes it 0666,
# some sandboxes 0600.
[ -c /dev/net/tun ] && chmod 0666 /dev/net/tun

# answers SOCK: the API on SOCK replies to _ping.
answers() { curl -fsS --max-time 3 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }
wait_for() {
	for _ in $(seq 1 60); do
		answers "$1" && return 0
		sleep 0.5
	done
	return 1
}

# stop PIDFILE: ends a service this script started, to pick up new
# settings.
stop() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
}

# Rootful.
sock=/run/podman/podman.sock
[ -z "$restart" ] || stop /run/berth-podman.pid
if ! answers "$sock"; then
	log "starting rootful podman system service on $sock (log: /var/log/berth-podman.log)"
	mkdir -p /run/podman
	setsid nohup podman system service --time=0 "unix://$sock" >>/var/log/berth-podman.log 2>&1 </dev/null &
	echo $! >/run/berth-podman.pid
	wait_for "$sock" || { log "rootful podman did not answer; see /var/log/berth-podman.log"; exit 1; }
fi
for img in "${IMAGES[@]}"; do
	podman image exists "$img" && continue
	docker image inspect "$img" >/dev/null 2>&1 || { log "$img is not on dockerd; skipping"; continue; }
	log "copying $img to rootful podman"
	docker save "$img" | podman load -q >/dev/null
done

# Rootless: a dedicated user with subordinate ids and a runtime dir.
if ! id "$USER_NAME" >/dev/null 2>&1; then
	log "creating user $USER_NAME"
	useradd --system --create-home --home-dir /var/lib/berth-podman --shell /bin/sh "$USER_NAME"
fi
uid=$(id -u "$USER_NAME")
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:200000:65536" >>/etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:200000:65536" >>/etc/subgid
run=/run/user/$uid
# A tmpfs, as systemd-logind makes it: rootless Podman's network namespace
# fails to mount it otherwise ("failed to mount runtime directory for
# rootless netns").
mkdir -p "$run"
if ! mountpoint -q "$run"; then
	stop "$run/berth-podman.pid"
	mount -t tmpfs -o "mode=700,uid=$uid,gid=$(id -g "$USER_NAME"),size=10%" tmpfs "$run"
fi
mkdir -p "$run/podman" /var/lib/berth-podman/work
chown "$USER_NAME:$USER_NAME" "$run" "$run/podman" /var/lib/berth-podman/work
chmod 700 "$run"
as_user() { runuser -u "$USER_NAME" -- env HOME=/var/lib/berth-podman XDG_RUNTIME_DIR="$run" "$@"; }
rsock=$run/podman/podman.sock
[ -z "$restart" ] || stop "$run/berth-podman.pid"
if ! answers "$rsock"; then
	log "starting rootless podman system service on $rsock (log: /var/log/berth-podman-rootless.log)"
	touch /var/log/berth-podman-rootless.log
	chown "$USER_NAME" /var/log/berth-podman-rootless.log
	# setsid -f forks, so runuser returns and nothing here waits on it.
	(cd / && as_user setsid -f sh -c 'echo $$ >"$XDG_RUNTIME_DIR/berth-podman.pid"; exec podman system service --time=0 "unix://$XDG_RUNTIME_DIR/podman/podman.sock"' \
		>>/var/log/berth-podman-rootless.log 2>&1 </dev/null)
	wait_for "$rsock" || { log "rootless podman did not answer; see /var/log/berth-podman-rootless.log"; tail -20 /var/log/berth-podman-rootless.log >&2; exit 1; }
fi
for img in "${IMAGES[@]}"; do
	(cd / && as_user podman image exists "$img") && continue
	docker image inspect "$img" >/dev/null 2>&1 || continue
	log "copying $img to rootless podman"
	docker save "$img" | (cd / && as_user podman load -q) >/dev/null
done
log "up: unix://$sock and unix://$rsock"
