#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module for FUZZTIME each (default
# 2s). go test -fuzz takes one target per run, so this loops. The targets
# are what -test.list (go test -list) finds in each package with a Fuzz
# function: a new one joins without an edit here.
#
# Go before 1.27 can fail a target with a bare "context deadline exceeded"
# as -fuzztime ends (go.dev/issue/75804). Such a run found nothing: it wrote
# no failing input. It is reported and the loop goes on; any other failure
# stops it.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-2s}
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
cache=$("$GO" env GOCACHE)/fuzz

# Each package's test binary is built once, instrumented, and runs its
# targets in turn: go test -fuzz would build and link it again for each.
"$GO" list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	test="$bin/$(echo "$pkg" | tr / _).test"
	"$GO" test -c -fuzz=. -o "$test" "$pkg"
	for f in $(cd "$dir" && "$test" -test.list '^Fuzz'); do
		echo "fuzz: $pkg $f ($FUZZTIME)"
		if (cd "$dir" && "$test" -test.run='^$' -test.fuzz="^$f\$" -test.fuzztime="$FUZZTIME" \
			-test.fuzzcachedir="$cache/$pkg") >"$bin/out" 2>&1; then
			continue
		fi
		if ! grep -q 'Failing input written' "$bin/out" &&
			grep -A1 -e "^--- FAIL: $f " "$bin/out" | grep -qx '    context deadline exceeded'; then
			echo "fuzz: $f: the fuzzer's own deadline race (go.dev/issue/75804), no failing input; going on"
			continue
		fi
		cat "$bin/out"
		exit 1
	done
done
