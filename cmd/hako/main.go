// These two settings stop the Go runtime from reading cgroup files at every
// start to size GOMAXPROCS: hako runs once per container operation, and
// "hako init" is single-threaded work anyway.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command hako is a container runtime: an OCI runtime compatible with runc's
// command line, plus image, pod and CRI front ends over the same packages.
package main

import (
	"context"
	"os"
	goruntime "runtime"

	"github.com/hako-runtime/hako/internal/cli"
	"github.com/hako-runtime/hako/internal/linux"
)

func init() {
	// "hako init" becomes the container's process: namespaces, credentials
	// and seccomp are per thread, so it must stay on the main thread.
	// (GOMAXPROCS(1) here cost time: it stops the world to resize the Ps.)
	if len(os.Args) > 1 && os.Args[1] == "init" {
		goruntime.LockOSThread()
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		linux.Init() // never returns
	}
	os.Exit(cli.Main(context.Background(), os.Args))
}
