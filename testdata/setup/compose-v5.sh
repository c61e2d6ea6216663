#!/usr/bin/env bash
# Builds Docker Compose v5 (the Go implementation behind `docker compose`)
# from the Go module proxy as a standalone binary, once, and prints its
# path. `go install ...@version` refuses the module (its go.mod has exclude
# directives), so it is built from a scratch module that repeats them.
# It takes about 4 minutes of a loaded 2-core machine (30 s of downloads,
# 145 s of CPU), which is why `make test` doesn't: `make compose-v5-test`
# runs berth's Compose tests with it.
set -euo pipefail

version=${COMPOSE_V5_VERSION:-v5.6.0}
out=${XDG_CACHE_HOME:-$HOME/.cache}/berth/compose-$version
bin=$out/docker-compose
if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi
mod=$(mktemp -d)
trap 'rm -rf "$mod"' EXIT
cd "$mod"
go mod init example.com/composebuild >/dev/null 2>&1
cat >>go.mod <<'X'
exclude (
	github.com/davecgh/go-spew v1.1.2-0.20180830191138-d8f796af33cc
	github.com/pmezard/go-difflib v1.0.1-0.20181226105442-5d4384ee4fb2
)
X
go get "github.com/docker/compose/v5/cmd@$version" >&2
mkdir -p "$out"
go build -o "$bin.tmp" github.com/docker/compose/v5/cmd
mv "$bin.tmp" "$bin"
echo "$bin"
