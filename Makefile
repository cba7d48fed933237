GO ?= go
CC ?= gcc
# hako is pure Go (CGO_ENABLED=0): a cgo binary pays ~0.6 ms more at every
# start, and `run` starts hako twice. Static either way, so that it can be
# exec'd from inside any container root.
# bin/hako-nsenter is the small static C helper that joins an existing user
# or time namespace (only a single-threaded process can) before exec'ing
# `hako init`; hako looks for it beside its own executable.
export CGO_ENABLED := 0
GOFLAGS_BUILD := -trimpath -tags "netgo osusergo"
LDFLAGS := -s -w

.PHONY: build test test-unit clean test-vet test-unit-pkgs test-integration test-conformance test-fuzz
# bin/hako-engine holds the image (later pod and daemon) commands; hako execs
# it for them, so that their packages' init cost stays out of container
# start-up (internal/cli/engine.go). Install the three together.
build: bin/hako-nsenter
	$(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/hako ./cmd/hako
	$(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/hako-engine ./cmd/hako-engine

bin/hako-nsenter: internal/nsenter/helper/hako-nsenter.c
	@mkdir -p bin
	$(CC) -static -Os -Wall -Werror -o $@ $<

test-unit:
	$(GO) test ./...

# The README's test command and what .ci/run runs (root needed for the
# integration tests and the conformance suite; they skip or fail otherwise):
# go vet, unit tests, the integration tests in test/ against $(HAKO_RUNTIME),
# and the conformance gate (test/conformance/oci-expected-pass.txt).
# GOTESTFLAGS=-v lists every test; HAKO_RUNTIME=runc checks the tests
# themselves against Debian's runc.
HAKO_RUNTIME ?= $(CURDIR)/bin/hako
GOTESTFLAGS ?=
UNIT_PKGS = $$($(GO) list ./... | grep -v '/test$$')

test: build test-vet test-unit-pkgs test-integration test-conformance test-fuzz

test-vet:
	$(GO) vet ./...

test-unit-pkgs:
	$(GO) test $(GOTESTFLAGS) $(UNIT_PKGS)

test-integration:
	HAKO_RUNTIME=$(HAKO_RUNTIME) $(GO) test $(GOTESTFLAGS) -count=1 -parallel 4 -timeout 10m ./test/...

# Every fuzz target for a bounded time (parsers of untrusted input: config.json,
# IDs, sysctls, seccomp, manifests, references, tar layers, ...).
FUZZTIME ?= 10s
test-fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz-smoke.sh

test-conformance:
	scripts/oci-conformance-gate.sh $(HAKO_RUNTIME)

clean:
	rm -rf bin
