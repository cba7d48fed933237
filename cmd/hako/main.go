// Command hako is a container runtime: an OCI runtime compatible with runc's
// command line, plus image, pod and CRI front ends over the same packages.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hako: not yet")
	os.Exit(1)
}
