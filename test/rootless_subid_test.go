package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// subIDStart is the first host id of the test user's /etc/subuid and
// /etc/subgid range (65536 ids).
const subIDStart = 400000

// setSubIDs rewrites /etc/subuid and /etc/subgid without any line for the
// test user, plus a range for it when with is set; the files are restored
// when t ends.
func setSubIDs(t *testing.T, with bool) {
	t.Helper()
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		orig, err := os.ReadFile(file)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		existed := err == nil
		t.Cleanup(func() {
			if existed {
				os.WriteFile(file, orig, 0o644)
			} else {
				os.Remove(file)
			}
		})
		var keep []string
		for _, line := range strings.Split(strings.TrimRight(string(orig), "\n"), "\n") {
			if line != "" && !strings.HasPrefix(line, rootlessUser+":") {
				keep = append(keep, line)
			}
		}
		if with {
			keep = append(keep, fmt.Sprintf("%s:%d:65536", rootlessUser, subIDStart))
		}
		if err := os.WriteFile(file, []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// subIDBundle makes a bundle owned by the test user from its own `spec
// --rootless`, mapping 0 to the user and 1..65536 to its subordinate ids,
// with CAP_CHOWN and a writable root.
func subIDBundle(t *testing.T, r *runtime, uid, gid int, args ...string) (bundle, runDir string) {
	t.Helper()
	return rootlessBundle(t, r, uid, gid, func(s *specs.Spec) {
		s.Process.Args = args
		s.Root.Readonly = false
		c := s.Process.Capabilities
		c.Bounding = append(c.Bounding, "CAP_CHOWN")
		c.Effective = append(c.Effective, "CAP_CHOWN")
		c.Permitted = append(c.Permitted, "CAP_CHOWN")
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(uid), Size: 1}, {ContainerID: 1, HostID: subIDStart, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(gid), Size: 1}, {ContainerID: 1, HostID: subIDStart, Size: 65536}}
	})
}

// TestRootlessSubIDs: an unprivileged user with a range in /etc/subuid and
// /etc/subgid runs a container that maps root to the user and 65536 more
// ids to the range (written through newuidmap/newgidmap): the container
// sees both ranges, its root can chown to another id, and the file lands on
// the host as that subordinate id. Without a range, run fails with an
// error that says so and leaves nothing behind. Not parallel: it rewrites
// /etc/subuid and /etc/subgid.
func TestRootlessSubIDs(t *testing.T) {
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("exercises hako's rootless defaults (spec --rootless, XDG_RUNTIME_DIR)")
	}
	if _, err := exec.LookPath("newuidmap"); err != nil {
		t.Skip("newuidmap not installed (package uidmap)")
	}
	uid, gid := ensureUser(t)
	script := "cat /proc/self/uid_map /proc/self/gid_map; touch /f && chown 1000:1002 /f && stat -c %u:%g /f"

	t.Run("no range", func(t *testing.T) {
		setSubIDs(t, false)
		bundle, runDir := subIDBundle(t, r, uid, gid, "true")
		before := takeSnapshot(t, r)
		_, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, "run", "rootless-"+newID(t))
		if err == nil {
			t.Fatal("run succeeded without an /etc/subuid range")
		}
		t.Logf("error: %s", strings.TrimSpace(stderr))
		if msg := strings.TrimSpace(stderr); !strings.Contains(msg, "/etc/subuid has no range for you") || strings.Contains(msg, "\n") {
			t.Errorf("error %q: want one line saying /etc/subuid has no range", msg)
		}
		if ents, _ := os.ReadDir(filepath.Join(runDir, "hako")); len(ents) != 0 {
			t.Errorf("state left behind: %v", ents)
		}
		checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, runDir}})
	})

	t.Run("range", func(t *testing.T) {
		setSubIDs(t, true)
		bundle, runDir := subIDBundle(t, r, uid, gid, "sh", "-c", script)
		before := takeSnapshot(t, r)
		stdout, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, "run", "rootless-"+newID(t))
		if err != nil {
			t.Fatalf("rootless run: %v: %s", err, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
		want := []string{
			fmt.Sprintf("0 %d 1", uid), fmt.Sprintf("1 %d 65536", subIDStart),
			fmt.Sprintf("0 %d 1", gid), fmt.Sprintf("1 %d 65536", subIDStart),
			"1000:1002",
		}
		if len(lines) != len(want) {
			t.Fatalf("container output %q, want uid_map, gid_map (two ranges each) and 1000:1002", stdout)
		}
		for i := range want {
			if norm(lines[i]) != want[i] {
				t.Errorf("line %d: %q, want %q", i, lines[i], want[i])
			}
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(bundle, "rootfs", "f"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != subIDStart+999 || st.Gid != subIDStart+1001 {
			t.Errorf("file chowned to 1000:1002 in the container is %d:%d on the host, want %d:%d", st.Uid, st.Gid, subIDStart+999, subIDStart+1001)
		}
		if ents, _ := os.ReadDir(filepath.Join(runDir, "hako")); len(ents) != 0 {
			t.Errorf("state left behind: %v", ents)
		}
		checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, runDir}})
	})

	// The user manages such a container like any other: exec a process
	// as a subordinate id, which `delete --force` must be able to kill
	// (the user owns the user namespace, so it holds CAP_KILL there).
	t.Run("exec and delete", func(t *testing.T) {
		setSubIDs(t, true)
		bundle, runDir := subIDBundle(t, r, uid, gid, sleeper...)
		before := takeSnapshot(t, r)
		id := "rootless-" + newID(t)
		run := userRunner(t, r, uid, gid, runDir, bundle)
		run("run", "--detach", id)
		t.Cleanup(func() { asUser(t, r.bin, uid, gid, runDir, bundle, "delete", "--force", id) })
		if out := run("exec", "--user", "1000:1000", id, "sh", "-c", "id -u; id -g"); strings.Join(strings.Fields(out), " ") != "1000 1000" {
			t.Errorf("exec --user 1000:1000: %q", out)
		}
		run("exec", "--detach", "--user", "1000:1000", id, "sleep", "1000")
		if pids := pidsOfUID(t, subIDStart+999); len(pids) != 1 {
			t.Errorf("processes of host uid %d (container 1000): %v, want the one sleep", subIDStart+999, pids)
		}
		run("delete", "--force", id)
		if pids := pidsOfUID(t, subIDStart+999); len(pids) != 0 {
			t.Errorf("delete --force left processes of host uid %d: %v", subIDStart+999, pids)
		}
		if ents, _ := os.ReadDir(filepath.Join(runDir, "hako")); len(ents) != 0 {
			t.Errorf("state left behind: %v", ents)
		}
		checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, runDir}})
	})

	// Id-mapped mounts need privilege over the host's user namespace:
	// refused before anything starts, with a clear error.
	t.Run("idmap refused", func(t *testing.T) {
		setSubIDs(t, true)
		bundle, runDir := subIDBundle(t, r, uid, gid, "true")
		s, err := testenv.ReadSpec(bundle)
		if err != nil {
			t.Fatal(err)
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: "rootfs/bin", Options: []string{"rbind", "idmap"}})
		if err := testenv.WriteSpec(bundle, s); err != nil {
			t.Fatal(err)
		}
		before := takeSnapshot(t, r)
		_, stderr, err := asUser(t, r.bin, uid, gid, runDir, bundle, "run", "rootless-"+newID(t))
		if err == nil || !strings.Contains(stderr, "id-mapped mounts need CAP_SYS_ADMIN") {
			t.Errorf("rootless run with an idmap mount: %v: %q", err, stderr)
		}
		checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, runDir}})
	})
}

// pidsOfUID lists the live processes whose real uid is uid.
func pidsOfUID(t *testing.T, uid int) []int {
	t.Helper()
	var out []int
	for _, pid := range listPids(t) {
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+strconv.Itoa(pid), &st); err == nil && int(st.Uid) == uid && processAlive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
