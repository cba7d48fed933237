GO ?= go
# hako links a tiny cgo constructor (internal/nsenter) that joins existing
# namespaces before the Go runtime starts; the binary is linked statically so
# that it can be exec'd from inside any container root.
export CGO_ENABLED := 1
GOFLAGS_BUILD := -trimpath -tags "netgo osusergo"
LDFLAGS := -s -w -linkmode external -extldflags "-static"

.PHONY: build test test-unit clean test-vet test-unit-pkgs test-integration test-conformance
build:
	$(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/hako ./cmd/hako

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

test: build test-vet test-unit-pkgs test-integration test-conformance

test-vet:
	$(GO) vet ./...

test-unit-pkgs:
	$(GO) test $(GOTESTFLAGS) $(UNIT_PKGS)

test-integration:
	HAKO_RUNTIME=$(HAKO_RUNTIME) $(GO) test $(GOTESTFLAGS) -count=1 -parallel 4 -timeout 10m ./test/...

test-conformance:
	scripts/oci-conformance-gate.sh $(HAKO_RUNTIME)

clean:
	rm -rf bin
