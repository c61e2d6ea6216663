#!/usr/bin/env bash
# Installs and starts a local OCI registry (Debian's docker-registry) on
# 127.0.0.1:5000 only, for the tests of OCI Features. Idempotent; installing
# and starting it needs root. On a machine where it already answers it
# changes nothing.
set -euo pipefail

log() { echo "setup/registry: $*" >&2; }

addr=127.0.0.1:5000
# bash's /dev/tcp: nothing to install to ask whether it answers.
up() {
	(
		exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}" || exit 1
		printf 'GET /v2/ HTTP/1.0\r\n\r\n' >&3
		read -r _ status _ <&3 || exit 1
		[ "$status" = 200 ]
	) 2>/dev/null
}

if up; then
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	log "the registry is not running on $addr, and installing or starting it needs root"
	exit 1
fi

if ! command -v docker-registry >/dev/null 2>&1; then
	log "installing docker-registry"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
fi

# Loopback only: the tests push to it with plain HTTP.
conf=/etc/docker/registry/berth-test.yml
mkdir -p /etc/docker/registry /var/lib/berth-registry
cat >"$conf" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/berth-registry
  delete:
    enabled: true
http:
  addr: $addr
CONF

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	# The package's own unit listens on every address: point it at ours.
	mkdir -p /etc/systemd/system/docker-registry.service.d
	cat >/etc/systemd/system/docker-registry.service.d/berth.conf <<UNIT
[Service]
ExecStart=
ExecStart=/usr/bin/docker-registry serve $conf
UNIT
	systemctl daemon-reload
	systemctl restart docker-registry || true
fi

if ! up; then
	# No systemd (a container, CI): run it ourselves, as docker.sh does dockerd.
	old=$(cat /run/berth-registry.pid 2>/dev/null || true)
	if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
		kill "$old" || true
	fi
	log "starting docker-registry (log: /var/log/berth-registry.log)"
	nohup docker-registry serve "$conf" >>/var/log/berth-registry.log 2>&1 </dev/null &
	echo $! >/run/berth-registry.pid
	for _ in $(seq 1 40); do
		up && break
		sleep 0.25
	done
fi

if ! up; then
	log "docker-registry did not come up on $addr; see /var/log/berth-registry.log"
	tail -20 /var/log/berth-registry.log >&2 || true
	exit 1
fi
log "registry is up on $addr"
