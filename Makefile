GO ?= go
# hako links a tiny cgo constructor (internal/nsenter) that joins existing
# namespaces before the Go runtime starts; the binary is linked statically so
# that it can be exec'd from inside any container root.
export CGO_ENABLED := 1
GOFLAGS_BUILD := -trimpath -tags "netgo osusergo"
LDFLAGS := -s -w -linkmode external -extldflags "-static"

.PHONY: build test test-unit clean
build:
	$(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o bin/hako ./cmd/hako

test-unit:
	$(GO) test ./...

clean:
	rm -rf bin
