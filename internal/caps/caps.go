// Package caps applies the five capability sets of process.capabilities to
// the calling thread (names are resolved by internal/spec).
//
// The runtime calls Apply on the locked OS thread that is about to execve, so
// per-thread semantics of capset(2) and PR_CAPBSET_DROP are exactly what is
// wanted: the new program inherits this thread's credentials.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// LastCap is the highest capability the running kernel knows.
func LastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// set is a 64-bit capability mask.
type set uint64

func parse(list []string, last int) (set, error) {
	var s set
	for _, name := range list {
		n, ok := spec.CapabilityNumber(name)
		if !ok {
			return 0, fmt.Errorf("unknown capability %q", name)
		}
		// A capability the kernel does not know cannot be granted; runc
		// ignores these with a warning, and so do we (silently: the spec
		// asks the runtime to be usable across kernels).
		if n > last {
			continue
		}
		s |= 1 << uint(n)
	}
	return s, nil
}

// Sets is the parsed form of specs.LinuxCapabilities.
type Sets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient set
	last                                                 int
}

// Parse validates names and builds masks. nil capabilities means "none".
func Parse(c *specs.LinuxCapabilities) (*Sets, error) {
	s := &Sets{last: LastCap()}
	if c == nil {
		return s, nil
	}
	var err error
	if s.Bounding, err = parse(c.Bounding, s.last); err != nil {
		return nil, fmt.Errorf("bounding: %w", err)
	}
	if s.Effective, err = parse(c.Effective, s.last); err != nil {
		return nil, fmt.Errorf("effective: %w", err)
	}
	if s.Permitted, err = parse(c.Permitted, s.last); err != nil {
		return nil, fmt.Errorf("permitted: %w", err)
	}
	if s.Inheritable, err = parse(c.Inheritable, s.last); err != nil {
		return nil, fmt.Errorf("inheritable: %w", err)
	}
	if s.Ambient, err = parse(c.Ambient, s.last); err != nil {
		return nil, fmt.Errorf("ambient: %w", err)
	}
	return s, nil
}

// DropBounding removes every capability not in the bounding set from this
// thread's bounding set. Needs CAP_SETPCAP, so it runs before switching user.
func (s *Sets) DropBounding() error {
	for i := 0; i <= s.last; i++ {
		if s.Bounding&(1<<uint(i)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(i), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // the kernel does not know it
				continue
			}
			return fmt.Errorf("drop %s from bounding set: %w", spec.CapabilityName(i), err)
		}
	}
	return nil
}

// Apply sets effective, permitted and inheritable with capset(2), then the
// ambient set. Runs after switching user (with PR_SET_KEEPCAPS held).
func (s *Sets) Apply() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for i := 0; i < 2; i++ {
		data[i].Effective = uint32(s.Effective >> (32 * uint(i)))
		data[i].Permitted = uint32(s.Permitted >> (32 * uint(i)))
		data[i].Inheritable = uint32(s.Inheritable >> (32 * uint(i)))
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for i := 0; i <= s.last; i++ {
		if s.Ambient&(1<<uint(i)) == 0 {
			continue
		}
		// The kernel refuses an ambient capability that is not both
		// permitted and inheritable; runc ignores those, as do we.
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil && err != unix.EPERM {
			return fmt.Errorf("raise ambient %s: %w", spec.CapabilityName(i), err)
		}
	}
	return nil
}
