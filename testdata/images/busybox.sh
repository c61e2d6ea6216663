#!/usr/bin/env bash
# Builds berth's tiny test image from Debian's busybox-static, with no
# registry: a root with busybox applets, /etc/passwd users (root, user 1000,
# nobody), /tmp and /workspaces, imported with `docker import`.
# Idempotent: an existing image of this tag is kept.
#
# usage: busybox.sh [docker]
set -euo pipefail

IMAGE=${BERTH_TEST_IMAGE:-berth-test/busybox:1}
ENGINE=${1:-docker}

log() { echo "images/busybox: $*" >&2; }

case $ENGINE in
docker)
	if docker image inspect "$IMAGE" >/dev/null 2>&1; then
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

log "importing $IMAGE"
tar -C "$root" --numeric-owner -c . | docker import \
	-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	-c 'CMD ["/bin/sh"]' \
	- "$IMAGE" >/dev/null
log "built $IMAGE"
