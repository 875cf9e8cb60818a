# Garret: `make run` starts a node with no config (one is generated on first
# start); `make test` installs what the tests need and runs all of them.
GO        ?= go
BIN       := bin
# pebble v2 uses klauspost zstd (not cgo DataDog/zstd) with CGO_ENABLED=0 or
# the pebblegozstd tag; -race needs cgo, so tests use the tag.
GOFLAGS_BUILD := -trimpath
TEST_TAGS := pebblegozstd

.PHONY: all build run test test-unit test-e2e test-deps bench lint demo-cluster vendor-hash

all: build

# bin/garretadm is garretd under atticadm's role: `garretadm make-token …`.
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/...
	ln -sfn garretd $(BIN)/garretadm

run: build
	$(BIN)/garretd

# test-deps installs the real Nix clients when missing: Debian's nix-bin (2.8)
# here, and Debian 13's (2.26) in a cached debootstrap chroot; and Debian's
# chromium for the browser test.
export GARRET_NIX_CHROOT ?= /var/cache/garret-test/nix-trixie
test-deps:
	@test/e2e/deps.sh

# Test artifacts (the browser test's screenshots) go under .artifacts/ in the
# clone (gitignored), one directory per test.
export GARRET_TEST_ARTIFACTS ?= $(CURDIR)/.artifacts

test: test-deps
	@unformatted="$$(gofmt -l .)"; test -z "$$unformatted" || { echo "gofmt -w these files: $$unformatted"; exit 1; }
	$(GO) vet -tags $(TEST_TAGS) ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -tags $(TEST_TAGS) -timeout 25m ./...

test-unit:
	CGO_ENABLED=1 $(GO) test -race -tags $(TEST_TAGS) -short ./...

test-e2e: test-deps
	CGO_ENABLED=1 $(GO) test -tags $(TEST_TAGS) -count=1 -v ./test/e2e/

# bench installs nginx-light and wrk when missing (bench/deps.sh), runs issue
# 13's suite (bench/serve; `make bench BENCH_FLAGS=-quick` for a short run)
# and the storage layouts; both append their section to BENCHMARKS.md.
BENCH_FLAGS ?=
bench: build
	@bench/deps.sh
	CGO_ENABLED=0 $(GO) run ./bench/serve -out BENCHMARKS.md $(BENCH_FLAGS)
	CGO_ENABLED=0 $(GO) run ./bench/storage >> BENCHMARKS.md

demo-cluster: build
	deploy/demo-cluster.sh

# vendor-hash updates deploy/nixos/package.nix's vendorHash after a change to
# go.mod or go.sum (deploy's test fails until it matches).
vendor-hash:
	deploy/nixos/vendor-hash.sh --write

lint:
	$(GO) vet -tags $(TEST_TAGS) ./...
	@command -v golangci-lint >/dev/null 2>&1 && golangci-lint run ./... || echo "golangci-lint not installed; ran go vet only"
