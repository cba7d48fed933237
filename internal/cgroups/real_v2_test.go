package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestRealV2 runs TestInNamespaceV2 in a copy of this test binary started in
// a new mount namespace, where TestMain mounts the host's real cgroup2
// hierarchy at /sys/fs/cgroup: a pure-v2 host as far as the package can
// tell, without touching the host's mounts. (It is the same hierarchy as the
// host's /sys/fs/cgroup/unified, so whatever the child creates it removes.)
func TestRealV2(t *testing.T) {
	requireRoot(t)
	if os.Getenv(v2nsEnv) == "1" {
		t.Skip("already inside")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(DefaultRoot, "unified"), &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		if err := unix.Statfs(DefaultRoot, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Skip("no cgroup2 on this host")
		}
	}
	args := []string{"-test.run=^TestInNamespaceV2$", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), v2nsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	t.Logf("namespace run:\n%s", out)
	if err != nil {
		t.Fatalf("tests in the cgroup2 namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "SKIP: TestInNamespaceV2") {
		t.Fatal("TestInNamespaceV2 did not run")
	}
}

// openDevs runs the test binary inside the cgroup (clone3 CLONE_INTO_CGROUP)
// and returns what opening each device gave.
func openDevs(t *testing.T, m Manager, devs ...string) map[string]string {
	t.Helper()
	fd, ok, err := m.CgroupFD()
	if err != nil || !ok {
		t.Fatalf("CgroupFD = %v, %v", ok, err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=opendev", devsEnv+"="+strings.Join(devs, ","))
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opendev helper: %v", err)
	}
	res := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, ":")
		res[k] = v
	}
	return res
}

func TestInNamespaceV2(t *testing.T) {
	if os.Getenv(v2nsEnv) != "1" {
		t.Skip("runs only inside TestRealV2's mount namespace")
	}
	mode, err := DetectMode(DefaultRoot)
	if err != nil || mode != Unified {
		t.Fatalf("DetectMode = %v, %v; want unified", mode, err)
	}
	path := uniqueName("/hako-v2test")
	m, err := New(path, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	dir := m.State().Paths[UnifiedKey]
	if dir != DefaultRoot+path {
		t.Fatalf("path %s", dir)
	}
	// The runtime-spec default device list, minus /dev/full (1:7).
	allow := func(typ string, major, minor int64, acc string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: acc}
	}
	r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow("c", 1, 3, "rwm"), // null
		allow("c", 1, 5, "rwm"), // zero
		allow("c", 1, 7, "rwm"), // full, denied again below
		allow("c", 1, 9, "r"),   // urandom: read only
		{Allow: false, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](7), Access: "rw"},
	}}
	if err := m.Create(r); err != nil {
		t.Fatal(err)
	}
	got := openDevs(t, m, "/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/tty")
	want := map[string]string{"/dev/null": "ok", "/dev/zero": "ok"}
	for dev, res := range got {
		if w, ok := want[dev]; ok && res != w {
			t.Errorf("open %s in cgroup: %s, want %s", dev, res, w)
		}
		if _, ok := want[dev]; !ok && !strings.Contains(res, "operation not permitted") {
			t.Errorf("open %s O_RDWR in cgroup: %s, want EPERM", dev, res)
		}
	}

	// Update replaces the filter instead of stacking a second one.
	r.Devices = append(r.Devices, allow("c", 1, 7, "rw"))
	if err := m.Update(r); err != nil {
		t.Fatal(err)
	}
	if got := openDevs(t, m, "/dev/full"); got["/dev/full"] != "ok" {
		t.Errorf("/dev/full after update: %s", got["/dev/full"])
	}

	// A process cloned straight into the cgroup, frozen for real.
	fd, _, err := m.CgroupFD()
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t, &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd})
	unix.Close(fd)
	cg := readTestFile(t, fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if !strings.Contains(cg, "0::"+path+"\n") {
		t.Errorf("child cgroup:\n%s", cg)
	}
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Pids = %v, %v", pids, err)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Frozen {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	if ev := readTestFile(t, filepath.Join(dir, "cgroup.events")); !strings.Contains(ev, "frozen 1") {
		t.Errorf("cgroup.events: %s", ev)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Thawed {
		t.Errorf("FreezerState = %q, %v", s, err)
	}

	// Enter (the path without CLONE_INTO_CGROUP) moves a second process.
	cmd2 := startSleep(t, nil)
	if err := m.Enter(cmd2.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if pids, _ := m.Pids(); len(pids) != 2 {
		t.Errorf("Pids after Enter = %v", pids)
	}

	stopProcess(cmd)
	stopProcess(cmd2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pids, _ := m.Pids(); len(pids) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind", dir)
	}
}
