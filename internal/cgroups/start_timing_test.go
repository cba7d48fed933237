package cgroups

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestRealStartCost measures what container start-up pays for cgroups on
// this host: New + Create (device deny-all only) + clone (into the cgroup
// when CgroupFD offers it) + Enter. The rwsem the kernel takes to migrate a
// process between cgroups is idle between container starts, so each round
// first sleeps long enough for it to go idle again (its rcu_sync drops back
// after a grace period); otherwise the loop would measure a warm path no
// real start sees.
func TestRealStartCost(t *testing.T) {
	requireRoot(t)
	if os.Getenv(v2nsEnv) == "1" || os.Getenv(legacyEnv) == "1" {
		t.Skip("inside a test namespace")
	}
	if mode, err := DetectMode(DefaultRoot); err != nil || mode == Unified {
		t.Skipf("host is %v (%v)", mode, err)
	}
	const rounds = 5
	var total, enter []time.Duration
	for i := 0; i < rounds; i++ {
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		m, err := New(uniqueName("/hako-starttest"), "x", Options{})
		if err != nil {
			t.Fatal(err)
		}
		cleanupDirs(t, m)
		if err := m.Create(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}); err != nil {
			t.Fatal(err)
		}
		attr := &syscall.SysProcAttr{}
		fd, ok, err := m.CgroupFD()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			attr.UseCgroupFD, attr.CgroupFD = true, fd
		}
		cmd := exec.Command("sleep", "1000")
		cmd.SysProcAttr = attr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if ok {
			unix.Close(fd)
		}
		e := time.Now()
		if err := m.Enter(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		enter = append(enter, time.Since(e))
		total = append(total, d)
		stopProcess(cmd)
		if err := destroyRetry(m); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(total)
	slices.Sort(enter)
	t.Logf("New+Create+clone+Enter over %d rounds: median %v (min %v, max %v); Enter alone median %v",
		rounds, total[rounds/2], total[0], total[rounds-1], enter[rounds/2])
}

// destroyRetry waits for a killed process to leave the cgroup.
func destroyRetry(m Manager) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = m.Destroy(); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}
