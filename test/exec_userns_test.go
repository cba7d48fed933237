package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// TestExecUserNamespace execs into a container that has its own user
// namespace. Joining an existing user namespace needs a single-threaded
// process (hako does it with its hako-nsenter helper): the exec'd process
// must be in the container's user namespace, as its root by default, and
// keep the container's capabilities there.
func TestExecUserNamespace(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = sleeper
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
	// The container's root (host uid 100000) must reach the bundle: the
	// test's temporary directories are private (0700).
	for dir := bundle; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.cleanupContainer(id)
	r.ok("create", "--bundle", bundle, id)
	r.ok("start", id)
	waitTrapped(t, r.waitStatus(id, specs.StateRunning).Pid)

	res := r.ok("exec", id, "cat", "/proc/self/uid_map")
	if got := strings.Join(strings.Fields(res.stdout), " "); got != "0 100000 65536" {
		t.Errorf("exec'd process uid_map %q, want the container's 0 100000 65536", got)
	}
	res = r.ok("exec", id, "sh", "-c", "echo $(id -u) $(id -g); grep CapEff /proc/self/status")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 2 || lines[0] != "0 0" {
		t.Fatalf("exec output %q, want uid and gid 0 then CapEff", res.stdout)
	}
	if strings.HasSuffix(lines[1], "0000000000000000") {
		t.Errorf("exec'd root of the user namespace has no capabilities: %q", lines[1])
	}
	res = r.ok("exec", "--user", "1000:1000", id, "id", "-u")
	if got := strings.TrimSpace(res.stdout); got != "1000" {
		t.Errorf("exec --user 1000:1000: id -u = %q", got)
	}
}
