//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command hako-engine is hako with its engine commands (images now; pods and
// the CRI daemon later) linked in. The lean hako binary, the runc-compatible
// runtime, execs it for those commands: keeping the registry, compression
// and (later) gRPC packages out of hako keeps their init() cost out of every
// container start. See internal/cli/engine.go.
package main

import (
	"context"
	"os"

	"github.com/hako-runtime/hako/internal/cli"
	"github.com/hako-runtime/hako/internal/cli/imagecmd"
	"github.com/hako-runtime/hako/internal/linux"
)

func main() {
	// A container started from hako-engine re-executes it as its init.
	if linux.IsInit() {
		linux.Init() // never returns
	}
	os.Exit(cli.Main(context.Background(), os.Args, imagecmd.Commands()...))
}
