# berth: `make demo` runs a demo workspace in a container; `make test` runs
# every test against real daemons. Both install what they need (Debian 12,
# as root) and are idempotent.

GO ?= go
export BERTH_TEST_IMAGE ?= berth-test/busybox:1

# Without a daemon, tests skip on a laptop; under CI=true or BERTH_REQUIRE
# a setup failure fails the run.
TOLERATE = { [ "$$CI" != true ] && [ -z "$$BERTH_REQUIRE" ] && echo "make: continuing without it; daemon tests will skip" >&2; }

.PHONY: all build agents agents-check test vet unit deps deps-demo demo bench bench-many clean nvim-test vscode-test fuzz compose-v5-test

all: build

# berth carries its agent for linux/amd64 and linux/arm64 (agent/embedded),
# so bin/berth is all there is. After changing the agent's source, run
# `make agents` (and commit agent/embedded) for berth to carry the change.
# berth is static: without the dynamic loader it starts a few milliseconds
# sooner, which `berth exec` from a shell feels.
build:
	CGO_ENABLED=0 $(GO) build -o bin/berth ./cmd/berth

# agents rebuilds the embedded agents, reproducibly, with the pinned Go.
agents:
	$(GO) run ./agent/embedded/internal/buildagents

# agents-check fails when the committed agents are not what the source builds.
agents-check:
	$(GO) run ./agent/embedded/internal/buildagents -check

# deps-demo is what the demo needs: Docker and the busybox image.
deps-demo:
	@bash testdata/setup/docker.sh || $(TOLERATE)
	@bash testdata/images/busybox.sh docker || $(TOLERATE)

# deps is everything the tests use.
deps: deps-demo
	@bash testdata/setup/compose.sh || $(TOLERATE)
	@bash testdata/images/debian.sh docker || $(TOLERATE)
	@BERTH_DEBIAN_GO=1 BERTH_TEST_DEBIAN_IMAGE=berth-test/debian-go:2 bash testdata/images/debian.sh docker || $(TOLERATE)
	@bash testdata/setup/remote-docker.sh || $(TOLERATE)
	@bash testdata/setup/podman.sh || $(TOLERATE)
	@bash testdata/setup/incus.sh || $(TOLERATE)
	@bash testdata/images/busybox.sh incus || $(TOLERATE)
	@bash testdata/images/debian.sh incus || $(TOLERATE)
	@BERTH_DEBIAN_GO=1 BERTH_TEST_DEBIAN_INCUS_IMAGE=berth-test/debian-go-2 bash testdata/images/debian.sh incus || $(TOLERATE)
	@GO=$(GO) bash testdata/images/plugins.sh docker || $(TOLERATE)
	@GO=$(GO) bash testdata/images/plugins.sh incus || $(TOLERATE)
	@bash testdata/setup/incus-https.sh || $(TOLERATE)
	@bash testdata/setup/incus-cluster.sh || $(TOLERATE)
	@bash testdata/setup/registry.sh || $(TOLERATE)

vet:
	$(GO) vet ./...

test: deps vet agents-check
	$(GO) test -race -count=1 -timeout 40m ./...
	$(GO) test -race -count=1 -p 1 -tags disrupt -run 'Disrupt' ./cmd/berth/
	$(MAKE) fuzz
	$(MAKE) vscode-test
	$(MAKE) nvim-test

# fuzz runs every fuzz target of the module, found by -test.list, for
# FUZZTIME each; see testdata/fuzz.sh.
FUZZTIME ?= 2s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash testdata/fuzz.sh

# compose-v5-test runs the Compose tests with Docker Compose v5 instead of
# Debian's docker-compose 1.29; building v5 takes minutes, so make test
# doesn't (see testdata/setup/compose-v5.sh).
compose-v5-test: deps
	BERTH_COMPOSE=$$(bash testdata/setup/compose-v5.sh) $(GO) test -race -count=1 -run 'TestCompose' ./cmd/berth/

# nvim-test runs the Neovim plugin headless against bin/berth and Docker.
nvim-test: build
	bash editors/nvim/test/run.sh

# unit runs the tests without installing anything.
unit: vet
	$(GO) test -race -count=1 -timeout 40m ./...

# demo installs Docker and builds berth side by side: on a fresh machine
# one waits on the network and the other on the CPU.
demo:
	@$(MAKE) --no-print-directory -j2 deps-demo build
	BERTH=$(CURDIR)/bin/berth $(GO) run ./testdata/demo

clean:
	rm -rf bin

# vscode-test builds the VS Code extension and runs its unit tests, and
# its integration test against bin/berth and Docker.
vscode-test: build
	cd editors/vscode && npm ci --no-audit --no-fund && npm run compile && BERTH_BIN=$(CURDIR)/bin/berth npm test

# bench measures berth beside docker exec, incus exec and their APIs; see
# docs/benchmarks.md.
bench: deps build
	$(GO) run ./bench -backend docker
	$(GO) run ./bench -backend incus

# bench-many: one berth serving 50 workspaces on each engine (minutes: 100
# containers come and go), docs/benchmarks.md's "Many workspaces".
bench-many: deps build
	$(GO) run ./bench -many -backend docker
	$(GO) run ./bench -many -backend incus
