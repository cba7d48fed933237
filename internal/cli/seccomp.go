package cli

import (
	"github.com/hako-runtime/hako/internal/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

func seccompFeatures() *features.Seccomp { return seccomp.Features() }
