#!/usr/bin/env bash
# Builds berth's plugins test image: the busybox test image (busybox.sh)
# plus plugins an image exports, for the plugins tests and bench -plugins:
#   /.plugin.toml                    hello, exec mode: a shell script
#   /etc/berth/plugins.d/counter.toml counter, rpc mode: testdata/plugins/counter,
#                                    built here as a static Go program
#   /etc/berth/plugins.d/broken.toml a syntax error on line 3
# Docker gets $BERTH_TEST_PLUGINS_IMAGE (berth-test/plugins:1), Incus
# $BERTH_TEST_PLUGINS_INCUS_IMAGE (berth-test/plugins-1). Idempotent: an
# existing image is kept, so a change here needs a new tag.
#
# usage: plugins.sh [docker|incus]
set -euo pipefail

ENGINE=${1:-docker}
IMAGE=${BERTH_TEST_PLUGINS_IMAGE:-berth-test/plugins:1}
INCUS_IMAGE=${BERTH_TEST_PLUGINS_INCUS_IMAGE:-berth-test/plugins-1}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

case $ENGINE in
docker) docker image inspect "$IMAGE" >/dev/null 2>&1 && exit 0 ;;
incus) incus image info "$INCUS_IMAGE" >/dev/null 2>&1 && exit 0 ;;
esac

extra=$(mktemp -d)
trap 'rm -rf "$extra"' EXIT
mkdir -p "$extra/usr/lib/berth-test" "$extra/etc/berth/plugins.d"
(cd "$repo" && CGO_ENABLED=0 "${GO:-go}" build -trimpath -ldflags=-s -o "$extra/usr/lib/berth-test/counter" ./testdata/plugins/counter)

cat >"$extra/usr/lib/berth-test/hello" <<'HELLO'
#!/bin/sh
# hello is berth's exec-mode test plugin: hello METHOD, params on stdin.
in=$(cat)
field() { printf '%s' "$in" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"; }
case "$1" in
version) echo '"1.0.0"' ;;
greet) name=$(field name); printf '{"greeting":"hello, %s"}\n' "${name:-world}" ;;
stat)
	p=$(field path)
	if [ -e "$p" ]; then e=true; else e=false; fi
	printf '{"path":"%s","exists":%s,"cwd":"%s","user":"%s"}\n' "$p" "$e" "$(pwd)" "$(id -un)"
	;;
fail) echo "hello: failing as asked" >&2; exit 3 ;;
garbage) echo "this is not JSON" ;;
hang) exec sleep 3600 ;;
*) echo "hello: no method $1" >&2; exit 2 ;;
esac
HELLO
chmod 755 "$extra/usr/lib/berth-test/hello" "$extra/usr/lib/berth-test/counter"

cat >"$extra/.plugin.toml" <<'TOML'
# coreX's format
[plugin.hello]
path = "/usr/lib/berth-test/hello"
exports = ["version", "greet", "stat", "fail", "garbage", "hang"]
TOML
cat >"$extra/etc/berth/plugins.d/counter.toml" <<'TOML'
[plugin.counter]
path = "/usr/lib/berth-test/counter"
mode = "rpc"
exports = ["count", "echo", "stat", "fail", "hang", "crash", "garbage"]
TOML
cat >"$extra/etc/berth/plugins.d/broken.toml" <<'TOML'
[plugin.broken]
path = "/usr/lib/berth-test/hello"
exports = ["version"
TOML

BERTH_TEST_IMAGE=$IMAGE BERTH_TEST_INCUS_IMAGE=$INCUS_IMAGE BERTH_IMAGE_EXTRA=$extra \
	bash "$here/busybox.sh" "$ENGINE"
