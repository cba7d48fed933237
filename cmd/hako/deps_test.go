package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The lean hako binary must not link the engine's heavy packages: their
// init() functions would run at every container start (see
// internal/cli/engine.go). go list -deps is the whole import graph.
func TestLeanImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	forbidden := []string{
		"net/http",
		"github.com/opencontainers/go-digest",
		"github.com/klauspost/compress/zstd",
		"github.com/BurntSushi/toml",
		"google.golang.org/grpc",
		"google.golang.org/protobuf/proto",
		"github.com/hako-runtime/hako/internal/image",
		"github.com/hako-runtime/hako/internal/cli/imagecmd",
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["github.com/hako-runtime/hako/internal/runtime"] {
		t.Fatalf("go list -deps does not list internal/runtime: wrong package? got %d packages", len(deps))
	}
	for _, p := range forbidden {
		if deps[p] {
			t.Errorf("hako links %s; engine-only packages belong in hako-engine", p)
		}
	}
}
