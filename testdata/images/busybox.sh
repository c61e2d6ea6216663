#!/usr/bin/env bash
# Builds berth's tiny test image from Debian's busybox-static, with no
# registry: a root with busybox applets, /etc/passwd users (root, user 1000,
# nobody), /tmp and /workspaces, and an /sbin/init for system containers.
# The same root is imported with `docker import` as $BERTH_TEST_IMAGE
# (berth-test/busybox:1) or with `incus image import` as
# $BERTH_TEST_INCUS_IMAGE (berth-test/busybox-1: Incus reads "a:b" as
# remote a, image b).
# Idempotent: an existing image of this tag or alias is kept.
# BERTH_IMAGE_EXTRA, when set, is a directory laid over the root before the
# import: plugins.sh builds berth-test/plugins:1 this way.
#
# usage: busybox.sh [docker|incus]
set -euo pipefail

IMAGE=${BERTH_TEST_IMAGE:-berth-test/busybox:1}
INCUS_IMAGE=${BERTH_TEST_INCUS_IMAGE:-berth-test/busybox-1}
ENGINE=${1:-docker}

log() { echo "images/busybox: $*" >&2; }

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

if [ ! -x /bin/busybox ]; then
	log "installing busybox-static"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq busybox-static >/dev/null
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 755 "$root" # mktemp's 0700 would become the root's mode under Incus
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/user,workspaces,proc,sys,dev,run,var/tmp}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
user:x:1000:
nogroup:x:65534:
GROUP
chown 1000:1000 "$root/home/user"
# Incus runs /sbin/init as PID 1 and stops a container by sending it SIGPWR.
# busybox init would do, but its halt path sleeps (a stop took ~3 s); this exits
# at once (the kernel then kills the rest of the container), and ash's wait
# reaps every child, so orphans left by execs do not pile up as zombies.
# It brings lo up, as a distribution's init would: with no NIC, nothing else
# does. Docker ignores it: berth runs its own keep-alive there under
# docker-init.
rm -f "$root/sbin/init"
cat >"$root/sbin/init" <<'INIT'
#!/bin/sh
trap 'exit 0' PWR TERM INT
ip link set lo up 2>/dev/null
while :; do sleep 2147483647 & wait $!; done
INIT
chmod 755 "$root/sbin/init"
if [ -n "${BERTH_IMAGE_EXTRA:-}" ]; then
	cp -a "$BERTH_IMAGE_EXTRA"/. "$root"/
fi

case $ENGINE in
docker)
	log "importing $IMAGE"
	tar -C "$root" --numeric-owner -c . | docker import \
		-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		-c 'CMD ["/bin/sh"]' \
		- "$IMAGE" >/dev/null
	log "built $IMAGE"
	;;
incus)
	# A unified image: metadata.yaml beside the root under rootfs/.
	img=$(mktemp -d)
	trap 'rm -rf "$root" "$img"' EXIT
	cat >"$img/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $(date +%s)
properties:
  description: berth test image (busybox)
  os: busybox
  release: "1"
META
	tar -C "$img" --numeric-owner -czf "$img/image.tar.gz" metadata.yaml \
		--transform 's,^\.,rootfs,' -C "$root" .
	log "importing $INCUS_IMAGE"
	incus image import "$img/image.tar.gz" --alias "$INCUS_IMAGE" >/dev/null
	log "built $INCUS_IMAGE"
	;;
esac
