package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/testenv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestCwdMagicLink: a process.cwd of /proc/self/fd/N must not reach a file
// descriptor the runtime holds while it sets up the process (CVE-2024-21626,
// where runc leaked a host cgroup directory fd). hako resolves cwd inside
// the container root without magic links, so every such cwd is refused, for
// run and for exec.
func TestCwdMagicLink(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	for fd := 3; fd <= 12; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.Cwd = cwd
			s.Process.Args = []string{"pwd"}
		})
		id := newID(t)
		r.cleanupContainer(id)
		res := r.run("run", "--bundle", bundle, id)
		if res.code == 0 {
			t.Fatalf("run with cwd %s succeeded (cwd %q)", cwd, res.stdout)
		}
		// runc says "mkdir ...: not a directory"; hako names the chdir.
		if !r.isRunc() && !strings.Contains(res.stderr, "chdir") {
			t.Errorf("run with cwd %s: error does not name the chdir: %s", cwd, res.stderr)
		}
	}
	id, _, _ := r.createRunning(nil)
	for fd := 3; fd <= 12; fd++ {
		cwd := fmt.Sprintf("/proc/self/fd/%d", fd)
		res := r.run("exec", "--cwd", cwd, id, "pwd")
		if res.code == 0 {
			t.Fatalf("exec with cwd %s succeeded (cwd %q)", cwd, res.stdout)
		}
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// TestCwdPreservedHostDir: even a host directory the caller deliberately
// passes with --preserve-fds is not a way out through process.cwd: the
// process starts only with a cwd inside its root.
func TestCwdPreservedHostDir(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "host-canary"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, err := os.Open(hostDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Cwd = "/proc/self/fd/3"
		s.Process.Args = []string{"ls"}
	})
	id := newID(t)
	r.cleanupContainer(id)
	cmd := exec.Command(r.bin, "--root", r.root, "run", "--preserve-fds", "1", "--bundle", bundle, id)
	cmd.ExtraFiles = []*os.File{dir}
	out, err := cmd.CombinedOutput()
	if err == nil || strings.Contains(string(out), "host-canary") {
		t.Fatalf("container started in a preserved host directory: err %v, output %q", err, out)
	}
}
