// Command dockerprofile prints Docker's default seccomp profile as a
// runtime-spec linux.seccomp section (for the capabilities of runc's default
// config), so that benchmarks can measure start-up with a profile of the
// size real containers carry.
//
//	go run ./scripts/dockerprofile > seccomp.json
package main

import (
	"encoding/json"
	"os"

	"github.com/hako-runtime/hako/internal/seccomp"
	"github.com/hako-runtime/hako/internal/spec"
)

func main() {
	caps := spec.Default().Process.Capabilities.Bounding
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(seccomp.DefaultProfile(caps)); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
