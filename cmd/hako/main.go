// These two settings stop the Go runtime from reading cgroup files at every
// start to size GOMAXPROCS: hako runs once per container operation, and
// "hako init" is single-threaded work anyway.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command hako is a container runtime: an OCI runtime compatible with runc's
// command line. The image (and later pod and CRI) commands are listed here
// too and run by hako-engine, which hako execs for them
// (internal/cli/engine.go): keeping their packages out of this binary keeps
// their init() cost out of every container start.
package main

import (
	"context"
	"os"

	"github.com/hako-runtime/hako/internal/cli"
	"github.com/hako-runtime/hako/internal/linux"
)

func main() {
	if linux.IsInit() { // internal/linux's init() has locked the main thread
		linux.Init() // never returns
	}
	os.Exit(cli.Main(context.Background(), os.Args))
}
