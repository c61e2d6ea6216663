#!/usr/bin/env bash
# Headless test of the berth Neovim plugin against the real berth and a real
# Docker daemon: headless.lua (with unit.lua's pure-logic checks first, and
# dap_client.lua, a stand-in DAP client for delve). Needs `make build`, the
# Debian test images berth-test/debian:2 and berth-test/debian-go:2 (make
# deps) and Docker running; Neovim comes from testdata/setup/neovim.sh.
set -euo pipefail

# Like the Go tests: without a daemon (or the image) this skips on a laptop,
# and fails under CI=true or BERTH_REQUIRE.
skip() {
	if [ "${CI:-}" != true ] && [ -z "${BERTH_REQUIRE:-}" ]; then
		echo "run.sh: SKIP: $*" >&2
		exit 0
	fi
	echo "run.sh: FAIL: $*" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
plugin=$(cd "$here/.." && pwd)
repo=$(cd "$plugin/../.." && pwd)

bash "$repo/testdata/setup/neovim.sh" || skip "cannot install neovim (bash testdata/setup/neovim.sh)"
command -v curl >/dev/null 2>&1 || skip "curl is needed"
docker info >/dev/null 2>&1 || skip "Docker is not running (bash testdata/setup/docker.sh)"

# berth's trust decisions go to a store of this run's own.
XDG_CONFIG_HOME=$(mktemp -d)
export XDG_CONFIG_HOME
# and the plugin's berth.log (stdpath("cache")) to a directory of its own.
export XDG_CACHE_HOME="$XDG_CONFIG_HOME/cache"
trap 'rm -rf "$XDG_CONFIG_HOME"' EXIT
export BERTH_REPO="$repo"
export BERTH="${BERTH:-$repo/bin/berth}"
export BERTH_TEST_DEBIAN_IMAGE="${BERTH_TEST_DEBIAN_IMAGE:-berth-test/debian:2}"
if [ ! -x "$BERTH" ]; then
	echo "run.sh: $BERTH is missing: run make build" >&2
	exit 1
fi

docker image inspect "$BERTH_TEST_DEBIAN_IMAGE" >/dev/null 2>&1 ||
	skip "image $BERTH_TEST_DEBIAN_IMAGE is missing (bash testdata/images/debian.sh docker)"
export BERTH_TEST_DEBIAN_GO_IMAGE="${BERTH_TEST_DEBIAN_GO_IMAGE:-berth-test/debian-go:2}"
docker image inspect "$BERTH_TEST_DEBIAN_GO_IMAGE" >/dev/null 2>&1 ||
	skip "image $BERTH_TEST_DEBIAN_GO_IMAGE is missing (BERTH_DEBIAN_GO=1 BERTH_TEST_DEBIAN_IMAGE=$BERTH_TEST_DEBIAN_GO_IMAGE bash testdata/images/debian.sh docker)"

echo "run.sh: $(nvim --version | head -1), berth $("$BERTH" version 2>/dev/null || echo '?')"
cd "$repo"
# -u NONE: no user config; the plugin is put on the runtimepath by hand.
timeout 1200 nvim --headless -u NONE -i NONE -n \
	--cmd "set rtp^=$plugin" \
	-c "luafile $here/headless.lua"
