package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// runExtra runs the runtime with extra open files (fd 3, 4, ... in the
// runtime, as containerd passes them for --preserve-fds) and returns the
// result with stdout and stderr.
func (r *runtime) runExtra(extra []*os.File, args ...string) result {
	r.t.Helper()
	return r.runWith(runOpts{extra: extra}, args...)
}

// lsFd is the container process that lists its own descriptors: ls itself
// holds one more, the directory it reads (/proc/<pid>/fd), which is ignored.
var lsFd = []string{"ls", "-l", "/proc/self/fd/"}

var ownFdDir = regexp.MustCompile(`^/proc/[0-9]+/fd/?$`)

// checkFds parses `ls -l /proc/self/fd/` and fails t for every descriptor
// other than 0, 1, 2 and the preserve preserved ones.
func checkFds(t *testing.T, what, out string, preserve int, preservedTarget string) {
	t.Helper()
	seen := map[int]string{}
	for _, line := range strings.Split(out, "\n") {
		before, target, ok := strings.Cut(line, " -> ")
		if !ok {
			continue
		}
		f := strings.Fields(before)
		fd, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("%s: cannot parse %q", what, line)
		}
		if ownFdDir.MatchString(target) {
			continue
		}
		seen[fd] = target
	}
	for fd := 0; fd < 3+preserve; fd++ {
		if _, ok := seen[fd]; !ok {
			t.Errorf("%s: fd %d missing (listing: %q)", what, fd, out)
		}
	}
	for fd, target := range seen {
		switch {
		case fd < 3:
		case fd < 3+preserve:
			if target != preservedTarget {
				t.Errorf("%s: preserved fd %d is %s, want %s", what, fd, target, preservedTarget)
			}
		default:
			t.Errorf("LEAKED FD %d in the container (%s): %s", fd, what, target)
		}
	}
}

// TestAttackLeakedFds: a container process, started by run or by exec,
// with and without --preserve-fds, sees exactly stdio and the preserved
// descriptors: nothing the runtime opened for itself (CVE-2024-21626, where
// runc leaked a host /sys/fs/cgroup fd; CVE-2016-9962, a host fd into exec).
func TestAttackLeakedFds(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	extraPath := filepath.Join(t.TempDir(), "preserved")
	extra, err := os.Create(extraPath)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	for _, preserve := range []int{0, 1} {
		var files []*os.File
		if preserve > 0 {
			files = []*os.File{extra}
		}
		pf := strconv.Itoa(preserve)
		t.Run("run/preserve-fds="+pf, func(t *testing.T) {
			bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) { s.Process.Args = lsFd })
			id := newID(t)
			r.cleanupContainer(id)
			res := r.runExtra(files, "run", "--preserve-fds", pf, "--bundle", bundle, id)
			if res.code != 0 || res.err != nil {
				t.Fatalf("%v", res)
			}
			checkFds(t, "run", res.stdout, preserve, extraPath)
		})
	}
	id, _, _ := r.createRunning(nil)
	for _, preserve := range []int{0, 1} {
		var files []*os.File
		if preserve > 0 {
			files = []*os.File{extra}
		}
		pf := strconv.Itoa(preserve)
		t.Run("exec/preserve-fds="+pf, func(t *testing.T) {
			res := r.runExtra(files, append([]string{"exec", "--preserve-fds", pf, id}, lsFd...)...)
			if res.code != 0 || res.err != nil {
				t.Fatalf("%v", res)
			}
			checkFds(t, "exec", res.stdout, preserve, extraPath)
		})
	}
	r.ok("delete", "--force", id)
}

// escapeRead is a container command that reads the host canary through a
// cwd outside the container's root: from a host directory, enough ".."
// reach the host's "/" (CVE-2024-21626 "attack 1"). From a cwd inside the
// root the same path names a file that does not exist.
func escapeRead(c *hostCanary) []string {
	return []string{"sh", "-c", "cat " + strings.Repeat("../", 16) + strings.TrimPrefix(c.file, "/") + " 2>&1; true"}
}

// TestAttackLeakedFdCwd: process.cwd and exec --cwd of /proc/self/fd/N must
// never reach a host directory, for any N a runtime may hold while it sets
// up the process (CVE-2024-21626).
func TestAttackLeakedFdCwd(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	c := newHostCanary(t)
	for fd := 3; fd <= 10; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.Cwd = cwd
			s.Process.Args = escapeRead(c)
		})
		id := newID(t)
		r.cleanupContainer(id)
		res := r.run("run", "--bundle", bundle, id)
		if strings.Contains(res.stdout, canaryContent) {
			t.Errorf("CONTAINER READ THE HOST with process.cwd %s: %q", cwd, res.stdout)
		}
	}
	id, _, _ := r.createRunning(nil)
	for fd := 3; fd <= 10; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		res := r.run(append([]string{"exec", "--cwd", cwd, id}, escapeRead(c)...)...)
		if strings.Contains(res.stdout, canaryContent) {
			t.Errorf("CONTAINER READ THE HOST with exec --cwd %s: %q", cwd, res.stdout)
		}
	}
	r.ok("delete", "--force", id)
	c.check(t)
}

// TestAttackPreservedFdCwd: a hostile config.json names as its cwd a
// descriptor the caller preserves for another purpose (a host directory
// here). The process must not start with its cwd outside its root.
func TestAttackPreservedFdCwd(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	c := newHostCanary(t)
	dir, err := os.Open(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Cwd = "/proc/self/fd/3"
		s.Process.Args = []string{"cat", "canary"}
	})
	id := newID(t)
	r.cleanupContainer(id)
	res := r.runExtra([]*os.File{dir}, "run", "--preserve-fds", "1", "--bundle", bundle, id)
	t.Logf("run: exit %d, stderr %q", res.code, strings.TrimSpace(res.stderr))
	if strings.Contains(res.stdout, canaryContent) {
		t.Errorf("CONTAINER READ THE HOST through a preserved directory fd as cwd: %v", res)
	}
	c.check(t)
}
