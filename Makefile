# berth: `make demo` runs a demo workspace in a container; `make test` runs
# every test against real daemons. Both install what they need (Debian 12,
# as root) and are idempotent.

GO ?= go
export BERTH_TEST_IMAGE ?= berth-test/busybox:1

# Without a daemon, tests skip on a laptop; under CI=true or BERTH_REQUIRE
# a setup failure fails the run.
TOLERATE = { [ "$$CI" != true ] && [ -z "$$BERTH_REQUIRE" ] && echo "make: continuing without it; daemon tests will skip" >&2; }

.PHONY: all build test vet unit deps demo bench clean nvim-test vscode-test fuzz

all: build

# The agent must be static: it runs in any image, even one with nothing in it.
# berth is static too: without the dynamic loader it starts a few
# milliseconds sooner, which `berth exec` from a shell feels.
build:
	CGO_ENABLED=0 $(GO) build -o bin/berth ./cmd/berth
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/berth-agent ./cmd/berth-agent

deps:
	@bash testdata/setup/docker.sh || $(TOLERATE)
	@bash testdata/images/busybox.sh docker || $(TOLERATE)
	@bash testdata/images/debian.sh docker || $(TOLERATE)
	@BERTH_DEBIAN_GO=1 BERTH_TEST_DEBIAN_IMAGE=berth-test/debian-go:1 bash testdata/images/debian.sh docker || $(TOLERATE)
	@bash testdata/setup/incus.sh || $(TOLERATE)
	@bash testdata/images/busybox.sh incus || $(TOLERATE)
	@bash testdata/images/debian.sh incus || $(TOLERATE)

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -p 1 -tags disrupt -run 'Disrupt' ./cmd/berth/
	$(MAKE) fuzz
	$(MAKE) vscode-test
	$(MAKE) nvim-test

# fuzz runs every fuzz target of the module, found by -test.list, for
# FUZZTIME each; see testdata/fuzz.sh.
FUZZTIME ?= 2s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash testdata/fuzz.sh

# nvim-test runs the Neovim plugin headless against bin/berth and Docker.
nvim-test: build
	bash editors/nvim/test/run.sh

# unit runs the tests without installing anything.
unit: vet
	$(GO) test -race -count=1 ./...

demo: deps build
	BERTH=$(CURDIR)/bin/berth $(GO) run ./testdata/demo

clean:
	rm -rf bin

# vscode-test builds the VS Code extension and runs its unit tests.
vscode-test:
	cd editors/vscode && npm ci --no-audit --no-fund && npm run compile && npm test

# bench measures berth beside docker exec, incus exec and their APIs; see
# docs/benchmarks.md.
bench: deps build
	$(GO) run ./bench -backend docker
	$(GO) run ./bench -backend incus
