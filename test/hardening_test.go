package test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/spec"
	"github.com/hako-runtime/hako/internal/testenv"
)

// TestSmallMemoryLimit: a container with Docker's minimum memory limit (6 MB)
// and the stretch goal (4 MB) starts and runs: the runtime's own memory is
// not charged to the container (issue 6; runc#1980, moby#41167).
func TestSmallMemoryLimit(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	for _, mb := range []int64{6, 4} {
		limit := mb << 20
		bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.Args = []string{"echo", "small"}
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
		})
		id := newID(t)
		r.cleanupContainer(id)
		res := r.run("run", "--bundle", bundle, id)
		if res.code != 0 || strings.TrimSpace(res.stdout) != "small" {
			t.Errorf("%d MB limit: %v", mb, res)
		}
	}
}

// capMask turns capability names into the bit mask /proc/<pid>/status shows.
func capMask(t *testing.T, names []string) uint64 {
	var m uint64
	for _, n := range names {
		i, ok := spec.CapabilityNumber(n)
		if !ok {
			t.Fatalf("unknown capability %s", n)
		}
		m |= 1 << uint(i)
	}
	return m
}

// TestCapabilitiesExact: the container's process gets exactly the five
// capability sets of its config, never more (issue 6: "what the container
// gets is exactly what the spec says").
func TestCapabilitiesExact(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	caps := &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"},
		Effective:   []string{"CAP_CHOWN", "CAP_KILL"},
		Permitted:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE"},
	}
	for _, user := range []specs.User{{UID: 0, GID: 0}, {UID: 1000, GID: 1000}} {
		bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.User = user
			s.Process.Capabilities = caps
			s.Process.Args = []string{"grep", "^Cap", "/proc/self/status"}
		})
		id := newID(t)
		r.cleanupContainer(id)
		res := r.run("run", "--bundle", bundle, id)
		if res.code != 0 {
			t.Fatalf("uid %d: %v", user.UID, res)
		}
		got := map[string]uint64{}
		for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
			k, v, _ := strings.Cut(l, ":")
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("parse %q: %v", l, err)
			}
			got[k] = n
		}
		// capabilities(7), execve: for uid 0 the new permitted set is
		// the old one and the effective set becomes all of it (runc and
		// crun behave the same, short of securebits); for other users
		// both are the ambient set.
		wantPrm, wantEff := capMask(t, caps.Permitted), capMask(t, caps.Permitted)
		if user.UID != 0 {
			wantPrm, wantEff = capMask(t, caps.Ambient), capMask(t, caps.Ambient)
		}
		want := map[string]uint64{
			"CapBnd": capMask(t, caps.Bounding),
			"CapInh": capMask(t, caps.Inheritable),
			"CapAmb": capMask(t, caps.Ambient),
			"CapPrm": wantPrm,
			"CapEff": wantEff,
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("uid %d: %s = %s, want %s", user.UID, k, fmt.Sprintf("%016x", got[k]), fmt.Sprintf("%016x", w))
			}
		}
	}
}

// TestOOMAtStartSaysSo: when the container's init is OOM-killed before the
// container is ready, the error says so (issue 6; runc#1980, moby#41167)
// and nothing is left behind.
func TestOOMAtStartSaysSo(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc reports a generic init error here")
	}
	limit := int64(16 << 10)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"true"}
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &limit}
	})
	id := newID(t)
	r.cleanupContainer(id)
	res := r.run("run", "--bundle", bundle, id)
	if res.code == 0 {
		t.Fatalf("run under a 16 KiB memory limit succeeded: %v", res)
	}
	if !strings.Contains(res.stderr, "OOM") {
		t.Errorf("error does not say the container ran out of memory: %q", res.stderr)
	}
	oneLineError(t, res)
	if _, st := r.state(id); st.code == 0 {
		t.Errorf("state of the failed container still exists")
	}
}
