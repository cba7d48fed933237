package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Tests against the host's real cgroup v1 hierarchies on a Legacy host.
// On a Hybrid host (this one) TestRealLegacy runs them in a mount namespace
// in which the cgroup2 mount is gone: the same kernel hierarchies, seen the
// way a Legacy host shows them.

// TestRealLegacy runs the TestRealV1 tests in a copy of this test binary
// started in a new mount namespace, where TestMain unmounts
// /sys/fs/cgroup/unified.
func TestRealLegacy(t *testing.T) {
	requireRoot(t)
	if os.Getenv(v2nsEnv) == "1" || os.Getenv(legacyEnv) == "1" {
		t.Skip("already inside a test namespace")
	}
	if mode, err := DetectMode(DefaultRoot); err != nil || mode != Hybrid {
		t.Skipf("host is %v (%v): the TestRealV1 tests run directly on a legacy host", mode, err)
	}
	args := []string{"-test.run=^TestRealV1", "-test.count=1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), legacyEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	t.Logf("legacy namespace run:\n%s", out)
	if err != nil {
		t.Fatalf("tests in the legacy namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "PASS") || strings.Contains(string(out), "SKIP: TestRealV1Lifecycle") {
		t.Fatal("TestRealV1 tests did not run")
	}
}

func requireV1(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if os.Getenv(v2nsEnv) == "1" {
		t.Skip("inside the private cgroup2 namespace")
	}
	mode, err := DetectMode(DefaultRoot)
	if err != nil || mode != Legacy {
		t.Skipf("host is %v, not legacy (%v): see TestRealLegacy", mode, err)
	}
}

// startSleep starts a process that waits to be killed; the test kills it.
func startSleep(t *testing.T, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func stopProcess(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// procState is field 3 of /proc/PID/stat.
func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[0]
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
}

// cleanupDirs removes leftovers if a test failed half way; a passing test
// must have removed them itself (checked separately).
func cleanupDirs(t *testing.T, m Manager) {
	t.Cleanup(func() {
		for _, d := range m.State().Created {
			os.Remove(d)
		}
	})
}

func TestRealV1Lifecycle(t *testing.T) {
	requireV1(t)
	name := uniqueName("/hako-cgtest")
	path := name + "/ctr"
	m, err := New(path, "ctr", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	st := m.State()
	if got := st.Paths["memory"]; got != "/sys/fs/cgroup/memory"+path {
		t.Fatalf("absolute path resolved to %s", got)
	}
	r := &specs.LinuxResources{
		CPU: &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000), Cpus: "0", Mems: "0"},
		Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Reservation: ptr[int64](32 << 20), Swap: ptr[int64](64 << 20),
			KernelTCP: ptr[int64](16 << 20), Swappiness: ptr[uint64](10), DisableOOMKiller: ptr(false)},
		Pids: &specs.LinuxPids{Limit: ptr[int64](100)},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](5), Access: "rw"},
		},
	}
	start := time.Now()
	if err := m.Create(r); err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=touch")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
	start = time.Now()
	if err := m.Enter(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("Create took %v, Enter %v", created, time.Since(start))
	stdin.Write([]byte{1})
	if _, err := stdout.Read(make([]byte, 6)); err != nil {
		t.Fatalf("helper did not get ready: %v", err)
	}

	for _, c := range []struct{ ctrl, file, want string }{
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"cpuset", "cpuset.mems", "0"},
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.memsw.limit_in_bytes", "67108864"},
		{"memory", "memory.kmem.tcp.limit_in_bytes", "16777216"},
		{"memory", "memory.swappiness", "10"},
		{"pids", "pids.max", "100"},
		{"devices", "devices.list", "c 1:3 rwm\nc 1:5 rw"},
	} {
		d := st.Paths[c.ctrl]
		if d == "" {
			t.Errorf("no %s path", c.ctrl)
			continue
		}
		if got := strings.TrimSpace(readTestFile(t, filepath.Join(d, c.file))); got != c.want {
			t.Errorf("%s = %q, want %q", c.file, got, c.want)
		}
	}
	// The process is in the cgroup in every v1 hierarchy, name=systemd
	// included. (The "0::" line is the cgroup2 hierarchy, which the kernel
	// keeps even where it is not mounted.)
	cg := readTestFile(t, fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	for _, line := range strings.Split(strings.TrimSpace(cg), "\n") {
		if strings.HasPrefix(line, "0::") {
			continue
		}
		if !strings.HasSuffix(line, ":"+path) {
			t.Errorf("/proc/PID/cgroup line %q not in %s", line, path)
		}
	}
	pids, err := m.Pids()
	if err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}

	// Freeze a real process and watch the kernel report it.
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Frozen {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	if s := procState(t, cmd.Process.Pid); s != "D" {
		t.Errorf("frozen process state %q, want D", s)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Thawed {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	if s := procState(t, cmd.Process.Pid); s != "S" && s != "R" {
		t.Errorf("thawed process state %q, want S", s)
	}

	// Live update.
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](128 << 20), Swap: ptr[int64](128 << 20)},
		CPU: &specs.LinuxCPU{Quota: ptr[int64](-1)}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(st.Paths["memory"], "memory.limit_in_bytes"))); got != "134217728" {
		t.Errorf("updated limit %s", got)
	}
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(st.Paths["cpu"], "cpu.cfs_quota_us"))); got != "-1" {
		t.Errorf("updated quota %s", got)
	}
	// Device rules change in place (no deny-all window for the process).
	if err := m.Update(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](9), Access: "r"},
	}}); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(st.Paths["devices"], "devices.list"))); got != "c 1:3 rwm\nc 1:9 r" {
		t.Errorf("devices.list after update = %q", got)
	}
	// checkBeforeUpdate refuses a limit below usage.
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](4096), CheckBeforeUpdate: ptr(true)}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("limit below usage with checkBeforeUpdate: %v", err)
	}

	stats, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pids.Current < 1 || stats.Pids.Limit != 100 || stats.Memory.Usage.Usage == 0 ||
		stats.Memory.Usage.Limit != 128<<20 || stats.CPU.Usage.Total == 0 || len(stats.CPU.Usage.PerCPU) == 0 {
		t.Errorf("Stats = %+v", stats)
	}

	// Destroy refuses to pull a cgroup from under a live process (EBUSY
	// after retries), then works once it is gone and leaves nothing.
	stopProcess(cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Created {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", d)
		}
	}
	for ctrl, d := range st.Paths {
		if _, err := os.Stat(filepath.Dir(d)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s parent %s left behind", ctrl, filepath.Dir(d))
		}
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

// The layout runtime-tools' validation (linux_cgroups_relative_cpus et al.)
// checks: /proc/<pid>/cgroup of the container must contain the relative
// cgroupsPath for each controller, under the caller's own cgroup.
// Block I/O throttling on the first real block device (the major:minor
// must exist for the kernel to take the rule).
func TestRealV1Blkio(t *testing.T) {
	requireV1(t)
	ents, _ := os.ReadDir("/sys/block")
	var major, minor int64 = -1, -1
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "dev"))
		if err == nil && !strings.HasPrefix(e.Name(), "loop") && !strings.HasPrefix(e.Name(), "ram") {
			fmt.Sscanf(string(b), "%d:%d", &major, &minor)
			break
		}
	}
	if major < 0 {
		t.Skip("no block device")
	}
	m, err := New(uniqueName("/hako-blkiotest"), "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	dev := specs.LinuxBlockIODevice{Major: major, Minor: minor}
	err = m.Create(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
		LeafWeight:              ptr[uint16](500), // CFQ-only: ignored where CFQ is gone
		ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}},
		ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d := m.State().Paths["blkio"]
	want := fmt.Sprintf("%d:%d 1048576", major, minor)
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(d, "blkio.throttle.read_bps_device"))); got != want {
		t.Errorf("read_bps_device = %q, want %q", got, want)
	}
	want = fmt.Sprintf("%d:%d 100", major, minor)
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(d, "blkio.throttle.write_iops_device"))); got != want {
		t.Errorf("write_iops_device = %q, want %q", got, want)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestRealV1RelativePath(t *testing.T) {
	requireV1(t)
	self, err := readSelfCgroup("")
	if err != nil {
		t.Fatal(err)
	}
	rel := uniqueName("hako-reltest") + "/cgrouptest/container"
	m, err := New(rel, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	if err := m.Create(&specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr[uint64](1024), Cpus: "0-1", Mems: "0"}}); err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t, nil)
	if err := m.Enter(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	cg := readTestFile(t, fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	for _, h := range self.v1 {
		want := strings.TrimSuffix(h.path, "/") + "/" + rel
		if !strings.Contains(cg, ":"+strings.Join(h.controllers, ",")+":"+want+"\n") {
			t.Errorf("%v not at %s in\n%s", h.controllers, want, cg)
		}
	}
	cs := m.State().Paths["cpuset"]
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(cs, "cpuset.cpus"))); got != "0-1" {
		t.Errorf("cpuset.cpus = %q", got)
	}
	// Intermediate cpusets got their parent's CPUs, or Enter would have failed.
	stopProcess(cmd)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
}

func TestRealV1OOM(t *testing.T) {
	requireV1(t)
	m, err := New(uniqueName("/hako-oomtest"), "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	limit := int64(32 << 20)
	if err := m.Create(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events, err := m.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=alloc")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := m.Enter(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	stdin.Write([]byte{1})
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("allocator ended with %v (%s), want SIGKILL by the OOM killer", err, out.String())
	}
	select {
	case _, ok := <-events:
		if !ok {
			t.Fatal("OOM channel closed without an event")
		}
	case <-ctx.Done():
		t.Fatal("no OOM event")
	}
	oc := readTestFile(t, filepath.Join(m.State().Paths["memory"], "memory.oom_control"))
	if !strings.Contains(oc, "oom_kill 1") {
		t.Errorf("memory.oom_control: %s", oc)
	}
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	// Removing the cgroup ends the event stream.
	select {
	case _, ok := <-events:
		if ok {
			// a second OOM event may be queued; the close must follow
			if _, ok := <-events; ok {
				t.Error("events still open after Destroy")
			}
		}
	case <-time.After(10 * time.Second):
		t.Error("events not closed after the cgroup was removed")
	}
}

func TestRealV1RootlessTolerance(t *testing.T) {
	requireV1(t)
	// A path under a file cannot be created: ENOTDIR is not a permission
	// error, so even rootless it must fail, and leave nothing.
	m, err := New("/"+strconv.Itoa(os.Getpid())+"-hako-none/cgroup.procs/x", "x", Options{Rootless: true})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	if err := m.Create(nil); err == nil {
		t.Error("Create under a file succeeded")
	}
	for _, d := range m.State().Created {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left behind", d)
		}
	}
}
