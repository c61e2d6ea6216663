#!/usr/bin/env bash
# Installs a Docker Compose CLI for berth's Compose tests: Debian's
# docker-compose (1.29), unless `docker compose` or docker-compose already
# works. Idempotent; installing needs root.
set -euo pipefail

log() { echo "setup/compose: $*" >&2; }

if docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	log "no Compose CLI; run as root (or: sudo apt-get install docker-compose)"
	exit 1
fi
log "installing docker-compose"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq docker-compose >/dev/null
docker-compose version >&2
