package cgroups

import (
	"bufio"
	"context"
	"encoding/json"
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
	"golang.org/x/sys/unix"
)

// Tests on the real cgroups of a Hybrid host (this one): v1 controllers
// plus cgroup2 at /sys/fs/cgroup/unified.

func requireHybrid(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if os.Getenv(v2nsEnv) == "1" || os.Getenv(legacyEnv) == "1" {
		t.Skip("inside a test namespace")
	}
	if mode, err := DetectMode(DefaultRoot); err != nil || mode != Hybrid {
		t.Skipf("host is %v, not hybrid (%v)", mode, err)
	}
}

// cloneInto starts cmd cloned straight into m's cgroup2 directory, the way
// the runtime starts init.
func cloneInto(t *testing.T, m Manager, cmd *exec.Cmd) {
	t.Helper()
	fd, ok, err := m.CgroupFD()
	if err != nil || !ok {
		t.Fatalf("CgroupFD = %v, %v; want an fd on a hybrid host", ok, err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	err = cmd.Start()
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd) })
}

// procCgroups parses /proc/PID/cgroup: v1 controller -> path, and the
// cgroup2 path.
func procCgroups(t *testing.T, pid string) (map[string]string, string) {
	t.Helper()
	s, err := readSelfCgroup("/proc/" + pid + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	v1 := map[string]string{}
	for _, l := range s.v1 {
		for _, c := range l.controllers {
			v1[c] = l.path
		}
	}
	return v1, s.unified
}

// reload passes the State through JSON, as state.json does, and Loads it.
func reload(t *testing.T, m Manager) Manager {
	t.Helper()
	b, err := json.Marshal(m.State())
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m2
}

// cpuTicks is utime+stime of pid (fields 14 and 15 of /proc/PID/stat).
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return u + k
}

// waitEmpty waits until the container's processes are gone (killed
// processes leave their cgroup a moment after the kill).
func waitEmpty(t *testing.T, m Manager) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still in the cgroup: %v", pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertGone checks that Destroy left none of the container's directories,
// joined or deferred, in any hierarchy.
func assertGone(t *testing.T, st State) {
	t.Helper()
	for _, m := range []map[string]string{st.Paths, st.Deferred} {
		for c, d := range m {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s cgroup %s left behind (%v)", c, d, err)
			}
		}
	}
	for _, d := range st.Created {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", d)
		}
	}
}

// The start-up path for a container with device rules only: one cgroup2
// directory with the eBPF filter, the child cloned into it, no v1 directory
// and no cgroup.procs write at all. Then the filter, the freezer, Pids and
// Stats work through that directory alone.
func TestRealHybridDevicesOnly(t *testing.T) {
	requireHybrid(t)
	path := uniqueName("/hako-hytest")
	m, err := New(path, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	st := m.State()
	if len(st.Paths) != 1 || st.Paths[UnifiedKey] != DefaultRoot+"/unified"+path {
		t.Fatalf("paths %v, want the unified directory only", st.Paths)
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if st.Deferred[c] == "" {
			t.Errorf("no deferred %s path: %v", c, st.Deferred)
		}
	}
	if _, ok := st.Deferred["devices"]; ok {
		t.Error("devices v1 controller offered on a hybrid host")
	}
	allow := func(major, minor int64, acc string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: acc}
	}
	err = m.Create(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 3, "rwm"), // null
		allow(1, 5, "rwm"), // zero
		allow(1, 9, "r"),   // urandom, read only
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.State().Created; len(got) != 1 || got[0] != st.Paths[UnifiedKey] {
		t.Errorf("Create made %v, want the unified directory only", got)
	}
	for _, d := range append(mapValues(st.Deferred), DefaultRoot+"/devices"+path, DefaultRoot+"/freezer"+path, DefaultRoot+"/systemd"+path) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("v1 cgroup %s exists (%v)", d, err)
		}
	}
	// The eBPF program on the unified cgroup is what refuses: this
	// process's v1 devices cgroup allows everything.
	got := openDevs(t, m, "/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")
	for dev, want := range map[string]string{"/dev/null": "ok", "/dev/zero": "ok", "/dev/full": "operation not permitted", "/dev/urandom": "operation not permitted"} {
		if !strings.Contains(got[dev], want) {
			t.Errorf("open %s O_RDWR in the cgroup: %q, want %q", dev, got[dev], want)
		}
	}

	// A busy process cloned in, in no v1 cgroup of its own.
	busy := exec.Command("sh", "-c", "while :; do :; done")
	cloneInto(t, m, busy)
	pid := busy.Process.Pid
	selfV1, _ := procCgroups(t, "self")
	v1, unified := procCgroups(t, strconv.Itoa(pid))
	if unified != path {
		t.Errorf("child in cgroup2 %q, want %q", unified, path)
	}
	if !m.(*manager).inUnified(pid) {
		t.Error("inUnified = false for a child cloned into the cgroup")
	}
	start := time.Now()
	if err := m.Enter(pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("Enter of a cloned-in child: %v", time.Since(start))
	v1After, _ := procCgroups(t, strconv.Itoa(pid))
	for c, p := range selfV1 {
		if v1[c] != p || v1After[c] != p {
			t.Errorf("child moved in v1 %s: %q then %q, parent %q", c, v1[c], v1After[c], p)
		}
	}

	// Later commands work from state.json.
	m = reload(t, m)
	if pids, err := m.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Frozen {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	before := cpuTicks(t, pid)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, pid); after != before {
		t.Errorf("frozen process ran: cpu ticks %d -> %d", before, after)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Thawed {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	before = cpuTicks(t, pid)
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, pid); after <= before {
		t.Errorf("thawed process did not run: cpu ticks %d -> %d", before, after)
	}
	stats, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.CPU.Usage.Total == 0 || stats.CPU.Usage.User == 0 || stats.Memory.Usage.Limit != 0 {
		t.Errorf("Stats: cpu %+v memory %+v; want cpu time from the unified cpu.stat, no memory", stats.CPU.Usage, stats.Memory.Usage)
	}
	if _, err := m.OOMEvents(context.Background()); !errors.Is(err, ErrNotSupported) {
		t.Errorf("OOMEvents without memory joined: %v", err)
	}

	stopProcess(busy)
	waitEmpty(t, m)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m.State())
	assertGone(t, st)
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// A memory limit joins the memory hierarchy, and only it; the kernel
// enforces it on a child cloned into the unified cgroup and then entered.
func TestRealHybridMemory(t *testing.T) {
	requireHybrid(t)
	path := uniqueName("/hako-hymem")
	m, err := New(path, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	limit := int64(32 << 20)
	if err := m.Create(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: &limit, Swap: &limit},
		Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
	}); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	joined := slices.Sorted(mapKeys(st.Paths))
	if !slices.Equal(joined, []string{UnifiedKey, "memory"}) {
		t.Fatalf("joined %q, want the unified and memory hierarchies", joined)
	}
	if _, err := os.Stat(st.Deferred["pids"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pids cgroup made without a pids limit: %v", err)
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
	cloneInto(t, m, cmd)
	if err := m.Enter(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	v1, unified := procCgroups(t, strconv.Itoa(cmd.Process.Pid))
	if v1["memory"] != path || unified != path {
		t.Errorf("child in memory %q, cgroup2 %q; want %s in both", v1["memory"], unified, path)
	}
	if got := readTestFile(t, filepath.Join(st.Paths["memory"], "memory.limit_in_bytes")); strings.TrimSpace(got) != "33554432" {
		t.Errorf("memory.limit_in_bytes = %q", got)
	}
	stdin.Write([]byte{1})
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("allocator ended with %v (%s), want SIGKILL by the OOM killer", err, out.String())
	}
	select {
	case <-events:
	case <-ctx.Done():
		t.Fatal("no OOM event")
	}
	stats, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Peak usage at the limit: the kernel held it there until it killed.
	if stats.Memory.Usage.Limit != uint64(limit) || stats.Memory.Usage.Max != uint64(limit) {
		t.Errorf("memory stats %+v", stats.Memory.Usage)
	}
	waitEmpty(t, m)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, st)
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Update with limits for v1 controllers the container is not in creates
// those cgroups and moves every process of the container there, children
// included; the saved State then lets Destroy remove them.
func TestRealHybridUpdateJoins(t *testing.T) {
	requireHybrid(t)
	path := uniqueName("/hako-hyupd")
	m, err := New(path, "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	// A shell with a child of its own, both in the container.
	cmd := exec.Command("sh", "-c", "sleep 1000 & echo $!; wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cloneInto(t, m, cmd)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	child := strings.TrimSpace(line)
	t.Cleanup(func() {
		if n, err := strconv.Atoi(child); err == nil {
			unix.Kill(n, unix.SIGKILL)
		}
	})
	if err := m.Enter(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}

	m = reload(t, m) // `hako update` is a new process
	err = m.Update(&specs.LinuxResources{
		Pids: &specs.LinuxPids{Limit: ptr[int64](50)},
		CPU:  &specs.LinuxCPU{Shares: ptr[uint64](512)},
	})
	if err != nil {
		t.Fatal(err)
	}
	st := m.State()
	for _, c := range []string{"pids", "cpu", "cpuacct"} {
		if st.Paths[c] == "" || st.Deferred[c] != "" || !slices.Contains(st.Created, st.Paths[c]) {
			t.Errorf("%s not joined and recorded: %+v", c, st)
		}
	}
	if _, ok := st.Paths["memory"]; ok {
		t.Error("memory joined without a memory limit")
	}
	for _, pid := range []string{strconv.Itoa(cmd.Process.Pid), child} {
		v1, unified := procCgroups(t, pid)
		if v1["pids"] != path || v1["cpu"] != path || v1["cpuacct"] != path || unified != path {
			t.Errorf("pid %s in pids %q cpu %q cpuacct %q cgroup2 %q, want %s", pid, v1["pids"], v1["cpu"], v1["cpuacct"], unified, path)
		}
	}
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(st.Paths["pids"], "pids.max"))); got != "50" {
		t.Errorf("pids.max = %q", got)
	}
	if got := strings.TrimSpace(readTestFile(t, filepath.Join(st.Paths["cpu"], "cpu.shares"))); got != "512" {
		t.Errorf("cpu.shares = %q", got)
	}
	stats, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pids.Current != 2 || stats.Pids.Limit != 50 {
		t.Errorf("pids stats %+v", stats.Pids)
	}
	// A second Update of a joined controller moves nothing.
	if err := m.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](60)}}); err != nil {
		t.Fatal(err)
	}

	m = reload(t, m) // `hako delete` reads the state Update left
	stopProcess(cmd)
	if n, err := strconv.Atoi(child); err == nil {
		unix.Kill(n, unix.SIGKILL)
	}
	waitEmpty(t, m)
	if err := m.Destroy(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, m.State())
	assertGone(t, st)
}

// A caller that ran Update (which joined a v1 hierarchy) but kept the old
// State still gets the new v1 directory removed by Destroy, since the
// container's own unified directory was made by Create.
func TestRealHybridStaleStateDestroy(t *testing.T) {
	requireHybrid(t)
	m, err := New(uniqueName("/hako-hystale"), "x", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, m)
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	updated := reload(t, m)
	if err := updated.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](10)}}); err != nil {
		t.Fatal(err)
	}
	cleanupDirs(t, updated)
	pidsDir := updated.State().Paths["pids"]
	if _, err := os.Stat(pidsDir); err != nil {
		t.Fatalf("pids cgroup after Update: %v", err)
	}
	if err := m.Destroy(); err != nil { // the State from before Update
		t.Fatal(err)
	}
	assertGone(t, updated.State())
}
