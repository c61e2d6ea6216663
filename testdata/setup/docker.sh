#!/usr/bin/env bash
# Installs and starts a Docker engine for berth's tests and demo.
# Idempotent; on a fresh Debian 12 machine it needs root. On a machine where
# dockerd already answers it changes nothing.
set -euo pipefail

log() { echo "setup/docker: $*" >&2; }

if docker info >/dev/null 2>&1; then
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
	if [ "$(id -u)" != 0 ]; then
		log "dockerd is not installed; run as root (or: sudo apt-get install docker.io)"
		exit 1
	fi
	log "installing docker.io"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq docker.io >/dev/null
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl start docker || true
fi

if ! docker info >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		log "dockerd is not running and starting it needs root"
		exit 1
	fi
	log "starting dockerd (log: /var/log/berth-dockerd.log)"
	PATH=$PATH:/usr/sbin nohup dockerd >>/var/log/berth-dockerd.log 2>&1 </dev/null &
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && break
		sleep 0.5
	done
fi

if ! docker info >/dev/null 2>&1; then
	log "dockerd did not come up; see /var/log/berth-dockerd.log"
	tail -20 /var/log/berth-dockerd.log >&2 || true
	exit 1
fi
log "dockerd is up"
