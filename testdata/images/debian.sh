#!/usr/bin/env bash
# Builds berth's realistic test image, Debian bookworm with Python, pytest,
# debugpy, pyflakes and the pylsp language server, with no registry: debootstrap (minbase) from the
# machine's own Debian mirror, then apt-get in the chroot. Like the busybox
# image it has root and user (1000, /home/user), /workspaces, and an
# /sbin/init for system containers. The root is imported with
# `docker import` as $BERTH_TEST_DEBIAN_IMAGE (berth-test/debian:2) or with
# `incus image import` as $BERTH_TEST_DEBIAN_INCUS_IMAGE
# (berth-test/debian-2: Incus reads "a:b" as remote a, image b).
# BERTH_DEBIAN_GO=1 adds golang-go, delve and the gopls language server.
# The tags end in a version, bumped whenever the package list changes, so
# that machines holding an older image import the new one.
#
# The built root is cached as a tarball under /var/cache/berth, keyed by a
# hash of this script and the package list, so that importing it again
# (after `docker rmi`, say) takes seconds; it is rebuilt only when those
# inputs change.
# Idempotent: an existing image of this tag or alias is kept. Building needs
# root.
#
# usage: debian.sh [docker|incus]
set -euo pipefail

IMAGE=${BERTH_TEST_DEBIAN_IMAGE:-berth-test/debian:2}
INCUS_IMAGE=${BERTH_TEST_DEBIAN_INCUS_IMAGE:-berth-test/debian-2}
ENGINE=${1:-docker}
CACHE_DIR=${BERTH_CACHE_DIR:-/var/cache/berth}
APT_ETC=${APT_ETC:-/etc/apt}
SUITE=bookworm
# debootstrap's --include (stage 1) and apt-get's packages (stage 2).
# procps gives ps and pkill; iproute2 gives ip, which /sbin/init uses.
# pylsp needs setuptools (pkg_resources) for its plugins, which Debian
# only recommends.
INCLUDE=python3
PACKAGES="python3-pytest python3-debugpy python3-pyflakes python3-pylsp python3-setuptools procps iproute2"
VARIANT=
if [ "${BERTH_DEBIAN_GO:-0}" = 1 ]; then
	PACKAGES="$PACKAGES golang-go delve gopls"
	VARIANT=-go
fi

log() { echo "images/debian: $*" >&2; }

case $ENGINE in
docker)
	if docker image inspect "$IMAGE" >/dev/null 2>&1; then
		exit 0
	fi
	;;
incus)
	if incus image info "$INCUS_IMAGE" >/dev/null 2>&1; then
		exit 0
	fi
	;;
*)
	log "unknown engine $ENGINE"
	exit 2
	;;
esac

# shellcheck source=../setup/apt-mirror.sh
. "$(dirname "$0")/../setup/apt-mirror.sh"

need_root() {
	if [ "$(id -u)" != 0 ]; then
		log "$1 needs root"
		exit 1
	fi
}

# The cache key covers everything that decides the root's contents.
key=$(
	{
		cat "${BASH_SOURCE[0]}"
		echo "suite=$SUITE include=$INCLUDE packages=$PACKAGES arch=$(uname -m)"
	} | sha256sum | cut -c1-16
)
cache=$CACHE_DIR/debian-$SUITE$VARIANT-$(uname -m)-$key.tar.gz
BUILD_LOG=$CACHE_DIR/debian-build.log # the last build's debootstrap and apt output

# build_root makes the root in $1 (an empty directory).
build_root() {
	local root=$1 line uri keyring
	line=$(debian_mirror | head -n1)
	uri=${line%%$'\t'*}
	keyring=${line#*$'\t'}
	if [ -z "$uri" ]; then
		log "no apt source for $SUITE found in $APT_ETC"
		exit 1
	fi
	if ! command -v debootstrap >/dev/null 2>&1; then
		log "installing debootstrap"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq debootstrap >/dev/null
	fi

	local kopt=()
	if [ -n "$keyring" ] && [ -f "$keyring" ]; then
		kopt=(--keyring="$keyring")
	fi
	log "debootstrap $SUITE (minbase, $INCLUDE) from $uri"
	debootstrap --variant=minbase --include="$INCLUDE" "${kopt[@]}" \
		"$SUITE" "$root" "$uri" >"$BUILD_LOG" 2>&1 || {
		tail -20 "$BUILD_LOG" >&2
		log "debootstrap failed; see $BUILD_LOG"
		exit 1
	}

	# apt in the root reads the same mirror, checked with the same key.
	local opts=
	if [ -n "$keyring" ] && [ -f "$keyring" ]; then
		if [ ! -e "$root$keyring" ]; then
			mkdir -p "$(dirname "$root$keyring")"
			cp "$keyring" "$root$keyring"
		fi
		opts="[signed-by=$keyring] "
	fi
	echo "deb $opts$uri $SUITE main" >"$root/etc/apt/sources.list"
	rm -f "$root"/etc/apt/sources.list.d/*
	# As debian:bookworm-slim does: no manuals or documentation but the
	# copyright files.
	cat >"$root/etc/dpkg/dpkg.cfg.d/berth-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
DPKG
	# Nothing in the root starts daemons while it is being built.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"

	mount -t proc proc "$root/proc"
	log "apt-get install $PACKAGES"
	# shellcheck disable=SC2086 # PACKAGES is a word list
	if ! chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root \
		sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES" \
		>>"$BUILD_LOG" 2>&1; then
		tail -20 "$BUILD_LOG" >&2
		log "apt-get failed in the root; see $BUILD_LOG"
		exit 1
	fi
	umount "$root/proc"

	chroot "$root" groupadd -g 1000 user
	chroot "$root" useradd -u 1000 -g 1000 -m -d /home/user -s /bin/bash user
	mkdir -p "$root/workspaces"
	chmod 755 "$root/workspaces"

	# Incus runs /sbin/init as PID 1 and stops a container by sending it
	# SIGPWR; minbase has no init. This is busybox.sh's: it exits at once
	# on SIGPWR or SIGTERM, dash's wait reaps every child (orphans included),
	# and it brings lo up. Docker ignores it.
	rm -f "$root/sbin/init"
	cat >"$root/sbin/init" <<'INIT'
#!/bin/sh
trap 'exit 0' PWR TERM INT
ip link set lo up 2>/dev/null
while :; do sleep 2147483647 & wait $!; done
INIT
	chmod 755 "$root/sbin/init"

	# Leave no trace of the build machine or of apt's downloads.
	rm -f "$root/usr/sbin/policy-rc.d"
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
		"$root"/var/cache/debconf/*-old "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* \
		"$root"/root/.cache
	find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*
	echo localhost >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
	chmod 644 "$root/etc/hostname" "$root/etc/hosts" "$root/etc/resolv.conf"
}

if [ ! -f "$cache" ]; then
	need_root "building the Debian root"
	mkdir -p "$CACHE_DIR"
	exec 9>"$CACHE_DIR/debian.lock"
	flock 9 # another run may be building the same root
fi
if [ ! -f "$cache" ]; then
	start=$(date +%s)
	work=$(mktemp -d "$CACHE_DIR/debian-build.XXXXXX")
	root=$work/root
	# /proc must be unmounted before anything under the root is removed.
	trap 'mountpoint -q "$root/proc" && umount -l "$root/proc"; rm -rf "$work"' EXIT
	mkdir "$root"
	chmod 755 "$root" # mktemp's 0700 would become the root's mode under Incus
	build_root "$root"
	tar -C "$root" --numeric-owner -czf "$work/root.tar.gz" .
	mv "$work/root.tar.gz" "$cache"
	rm -rf "$work"
	trap - EXIT
	# Roots cached for other inputs are stale now.
	for old in "$CACHE_DIR"/debian-$SUITE$VARIANT-"$(uname -m)"-*.tar.gz; do
		[ "$old" = "$cache" ] || rm -f "$old"
	done
	log "built $cache in $(($(date +%s) - start))s"
fi

case $ENGINE in
docker)
	log "importing $IMAGE"
	docker import \
		-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'CMD ["/bin/sh"]' \
		"$cache" "$IMAGE" >/dev/null
	log "built $IMAGE"
	;;
incus)
	# A split image: metadata.yaml in its own tarball, the cached root as the
	# rootfs, so that nothing needs repacking.
	img=$(mktemp -d)
	trap 'rm -rf "$img"' EXIT
	cat >"$img/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: berth test image (debian $SUITE)
  os: debian
  release: $SUITE
META
	tar -C "$img" --numeric-owner -czf "$img/meta.tar.gz" metadata.yaml
	log "importing $INCUS_IMAGE"
	incus image import "$img/meta.tar.gz" "$cache" --alias "$INCUS_IMAGE" >/dev/null
	log "built $INCUS_IMAGE"
	;;
esac
