#!/usr/bin/env bash
# Installs and starts an Incus daemon for berth's tests and demo, with a
# `dir` storage pool named default and a default profile that has a root
# disk and no NIC (berth's instances need no network of their own).
# Idempotent; on a fresh Debian 12 machine it needs root. On a machine where
# incusd already answers and is set up it changes nothing.
set -euo pipefail

log() { echo "setup/incus: $*" >&2; }

INCUSD_LOG=/var/log/berth-incusd.log
APT_ETC=${APT_ETC:-/etc/apt} # overridable to test the parsing below
BACKPORTS_LIST=$APT_ETC/sources.list.d/berth-bookworm-backports.sources

need_root() {
	if [ "$(id -u)" != 0 ]; then
		log "$1 needs root"
		exit 1
	fi
}

# shellcheck source=apt-mirror.sh
. "$(dirname "$0")/apt-mirror.sh"

has_backports() {
	grep -rqsE '^[^#]*[[:space:]]bookworm-backports([[:space:]]|$)' "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/
}

add_backports() {
	local line uri key
	line=$(debian_mirror | head -n1)
	uri=${line%%$'\t'*}
	key=${line#*$'\t'}
	if [ -z "$uri" ]; then
		log "no apt source for bookworm found in $APT_ETC; cannot add bookworm-backports"
		exit 1
	fi
	log "adding bookworm-backports from $uri"
	{
		echo "Types: deb"
		echo "URIs: $uri"
		echo "Suites: bookworm-backports"
		echo "Components: main"
		[ -n "$key" ] && echo "Signed-By: $key"
	} >"$BACKPORTS_LIST"
}

install_incus() {
	need_root "installing incus"
	export DEBIAN_FRONTEND=noninteractive
	has_backports || add_backports
	log "installing incus from bookworm-backports"
	apt-get update -qq
	# Recommends would pull in dnsmasq, OVMF/QEMU and friends for networks
	# and VMs, which berth does not use. xz-utils unpacks image tarballs.
	apt-get install -y -qq --no-install-recommends -t bookworm-backports \
		incus incus-client xz-utils >/dev/null
}

answers() { incus info >/dev/null 2>&1; }

start_incusd() {
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		systemctl start incus.socket incus.service || true
	fi
	answers && return 0
	need_root "starting incusd"
	log "starting incusd (log: $INCUSD_LOG)"
	# As the packaged unit does (/etc/default/incus sets PATH for the
	# helpers), minus lxcfs, which containers do without.
	PATH=/usr/libexec/incus:/usr/sbin:/usr/bin:/sbin:/bin \
		nohup /usr/libexec/incus/incusd --group incus-admin >>"$INCUSD_LOG" 2>&1 </dev/null &
	if ! incus admin waitready --timeout=60 >/dev/null 2>&1 || ! answers; then
		log "incusd did not come up; see $INCUSD_LOG"
		tail -20 "$INCUSD_LOG" >&2 || true
		exit 1
	fi
}

if ! command -v incus >/dev/null 2>&1 || [ ! -x /usr/libexec/incus/incusd ]; then
	install_incus
fi
answers || start_incusd

if ! incus storage show default >/dev/null 2>&1; then
	log "creating storage pool default (dir)"
	incus storage create default dir >/dev/null
fi
if ! incus profile device get default root pool >/dev/null 2>&1; then
	log "adding a root disk on pool default to the default profile"
	incus profile device add default root disk path=/ pool=default >/dev/null
fi
# No NIC: remove any nic device a previous `incus admin init` left behind.
for dev in $(incus profile device list default 2>/dev/null); do
	if [ "$(incus profile device get default "$dev" type 2>/dev/null || true)" = nic ]; then
		log "removing NIC $dev from the default profile"
		incus profile device remove default "$dev" >/dev/null
	fi
done
log "incusd is up"
