package test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

func i64(v int64) *int64 { return &v }

// TestMemoryLimitOOM: a container whose process allocates past its memory
// limit is OOM-killed, and `events` reports the OOM (issue 4).
func TestMemoryLimitOOM(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64(32 << 20), Swap: i64(32 << 20)}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events := exec.CommandContext(ctx, r.bin, "--root", r.root, "events", "--interval", "100ms", id)
	out, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Start(); err != nil {
		t.Fatal(err)
	}
	defer events.Wait()
	defer events.Process.Kill()
	oom := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var ev struct{ Type string }
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == "oom" {
				oom <- true
				return
			}
		}
		oom <- false
	}()
	// Let events subscribe before the allocation starts.
	time.Sleep(300 * time.Millisecond)
	// Busybox has no allocator; a 64 MiB string in a shell variable is one.
	res := r.run("exec", id, "sh", "-c", `x=$(head -c 67108864 /dev/zero | tr '\0' a); echo ${#x}`)
	if res.code == 0 {
		t.Fatalf("allocation of 64 MiB under a 32 MiB limit succeeded: %v", res)
	}
	if res.code != 128+int(syscall.SIGKILL) && !strings.Contains(res.stderr+res.stdout, "Killed") {
		t.Logf("exec result (want an OOM kill): %v", res)
	}
	select {
	case got := <-oom:
		if !got {
			t.Fatal("events ended without an oom event")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no oom event within 10s")
	}
}

// TestPidsLimitStopsForkBomb: with pids.limit the container cannot grow past
// its limit; a fork loop fails to fork and the host is unaffected.
func TestPidsLimitStopsForkBomb(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(func(s *specs.Spec) {
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(20)}
	})
	// Start 40 sleepers in the background; at most 20 tasks may exist.
	res := r.run("exec", id, "sh", "-c", `n=0; while [ $n -lt 40 ]; do sleep 30 </dev/null >/dev/null 2>&1 & n=$((n+1)); done 2>/dev/null; echo started`)
	_ = res
	pids := r.pids(id)
	if len(pids) > 20 {
		t.Fatalf("container has %d processes, pids limit is 20", len(pids))
	}
	if len(pids) < 10 {
		t.Fatalf("container has only %d processes: the fork loop did not run", len(pids))
	}
	r.ok("kill", "--all", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// pids returns `ps --format json`.
func (r *runtime) pids(id string) []int {
	r.t.Helper()
	res := r.ok("ps", "--format", "json", id)
	var pids []int
	if err := json.Unmarshal([]byte(res.stdout), &pids); err != nil {
		r.t.Fatalf("ps json: %v: %q", err, res.stdout)
	}
	return pids
}

// cpuTicks is utime+stime of pid from /proc/<pid>/stat.
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// TestPauseResume: pause stops the container's processes from running,
// resume lets them run again (freezer).
func TestPauseResume(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(nil)
	busy := r.execDetached(id, "sh", "-c", "while :; do :; done")
	time.Sleep(200 * time.Millisecond)
	r.ok("pause", id)
	if st := r.mustState(id); st.Status != "paused" {
		t.Fatalf("after pause: status %q", st.Status)
	}
	before := cpuTicks(t, busy)
	time.Sleep(500 * time.Millisecond)
	if after := cpuTicks(t, busy); after != before {
		t.Fatalf("paused process used CPU: %d -> %d ticks", before, after)
	}
	r.ok("resume", id)
	if st := r.mustState(id); st.Status != specs.StateRunning {
		t.Fatalf("after resume: status %q", st.Status)
	}
	before = cpuTicks(t, busy)
	time.Sleep(500 * time.Millisecond)
	if after := cpuTicks(t, busy); after == before {
		t.Fatalf("resumed process did not run: %d ticks", after)
	}
	r.ok("kill", "--all", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// TestUpdateLiveLimit: update changes a limit of a running container, and
// the new limit is what the process runs under.
func TestUpdateLiveLimit(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(func(s *specs.Spec) {
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(100)}
	})
	r.ok("update", "--pids-limit", "7", id)
	// The container's own view of its limit is the pids cgroup it is in.
	res := r.ok("exec", id, "sh", "-c", "cat /proc/self/cgroup")
	var rel string
	for _, l := range strings.Split(res.stdout, "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && p[1] == "pids" {
			rel = p[2]
		}
	}
	if rel == "" {
		t.Fatalf("container is not in a pids cgroup: %s", res.stdout)
	}
	st := r.mustState(id)
	hostCg, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	for _, l := range strings.Split(string(hostCg), "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && p[1] == "pids" {
			path = p[2]
		}
	}
	max, err := os.ReadFile("/sys/fs/cgroup/pids" + path + "/pids.max")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(max)) != "7" {
		t.Fatalf("pids.max after update = %q, want 7", max)
	}
	// update --memory on a container that had no memory limit joins the
	// memory controller live (hybrid hosts) and the state remembers it.
	r.ok("update", "--memory", "64m", id)
	res = r.ok("events", "--stats", id)
	if !strings.Contains(res.stdout, `"memory"`) {
		t.Fatalf("events --stats after update --memory shows no memory: %s", res.stdout)
	}
	r.ok("kill", "--all", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
}

// TestSeccompDenyAndKill: a profile that denies mkdir with EPERM, and one
// that kills on mkdir (issue 4).
func TestSeccompDenyAndKill(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	for _, tc := range []struct {
		name   string
		action specs.LinuxSeccompAction
		check  func(res result)
	}{
		{"errno", specs.ActErrno, func(res result) {
			if res.code == 0 || !strings.Contains(res.stderr+res.stdout, "not permitted") {
				t.Errorf("mkdir under SCMP_ACT_ERRNO: want EPERM, got %v", res)
			}
		}},
		{"kill", specs.ActKillProcess, func(res result) {
			if res.code != 128+int(syscall.SIGSYS) {
				t.Errorf("mkdir under SCMP_ACT_KILL_PROCESS: want exit %d (SIGSYS), got %v", 128+int(syscall.SIGSYS), res)
			}
		}},
	} {
		bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
			s.Process.Args = []string{"mkdir", "/tmp/x"}
			s.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls: []specs.LinuxSyscall{{
					Names: []string{"mkdir", "mkdirat"}, Action: tc.action,
				}},
			}
		})
		id := newID(t)
		r.cleanupContainer(id)
		tc.check(r.run("run", "--bundle", bundle, id))
	}
}

// TestSystemdCgroupsPath: a systemd-style "slice:prefix:name" cgroupsPath
// (what the kubelet sends with the systemd cgroup driver) is laid out by the
// cgroupfs driver as systemd would, and delete removes the scope.
func TestSystemdCgroupsPath(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5's cgroupfs driver takes slice:prefix:name as one directory name")
	}
	slice := "hakotest-s" + strconv.Itoa(os.Getpid()) + ".slice"
	name := strconv.FormatInt(time.Now().UnixNano(), 36)
	id, _, st := r.createRunning(func(s *specs.Spec) {
		s.Linux.CgroupsPath = slice + ":hako:" + name
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64(50)}
	})
	hostCg, err := os.ReadFile("/proc/" + strconv.Itoa(st.Pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var pidsPath string
	for _, l := range strings.Split(string(hostCg), "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && (p[1] == "pids" || (p[0] == "0" && pidsPath == "")) {
			pidsPath = p[2]
		}
	}
	if want := "/hakotest.slice/" + slice + "/hako-" + name + ".scope"; pidsPath != want {
		t.Fatalf("container cgroup %q, want %s", pidsPath, want)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, specs.StateStopped)
	r.ok("delete", id)
	for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if _, err := os.Stat(root + pidsPath); err == nil {
			t.Errorf("%s%s still exists after delete", root, pidsPath)
		}
	}
	// The slices are the caller's to remove (systemd keeps them too).
	for _, root := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/devices", "/sys/fs/cgroup/freezer", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/blkio", "/sys/fs/cgroup/systemd"} {
		os.Remove(root + "/hakotest.slice/" + slice)
		os.Remove(root + "/hakotest.slice")
	}
}
