package cgroups

import (
	"errors"
	"fmt"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroup v1 translations (Documentation/admin-guide/cgroup-v1/*.rst). Each
// spec field maps to one file; only set fields are written.

func setMemoryV1(d string, mem *specs.LinuxMemory, update bool) error {
	limit := ptrVal(mem.Limit)
	swap := ptrVal(mem.Swap)
	// A limit of 0 means "not set" for runc and crun; writing it would
	// OOM-kill the container at once.
	if limit == -1 && swap == 0 && exists(d+"/memory.memsw.limit_in_bytes") {
		// Lifting the limit must lift memory+swap too, or the kernel
		// refuses limit > memsw.
		swap = -1
	}
	if update && limit > 0 && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate {
		if err := checkUsage(d, "memory.usage_in_bytes", limit); err != nil {
			return err
		}
	}
	setLimit := func() error {
		if limit == 0 {
			return nil
		}
		return writeFile(d, "memory.limit_in_bytes", i64(limit))
	}
	setSwap := func() error {
		if swap == 0 {
			return nil
		}
		if !exists(d + "/memory.memsw.limit_in_bytes") {
			if swap == -1 || swap == limit {
				return nil // no swap accounting: nothing to lift or limit
			}
			return fmt.Errorf("%w: memory.swap without swap accounting (memory.memsw.*)", ErrNotSupported)
		}
		return writeFile(d, "memory.memsw.limit_in_bytes", i64(swap))
	}
	// The kernel keeps limit <= memsw at every step, so the order depends
	// on whether the limits grow or shrink: try limit first, and if that is
	// refused, raise memsw first.
	if err := setLimit(); err != nil {
		if swap == 0 || !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EBUSY) {
			return err
		}
		if err := setSwap(); err != nil {
			return err
		}
		if err := setLimit(); err != nil {
			return err
		}
	} else if err := setSwap(); err != nil {
		return err
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(d, "memory.soft_limit_in_bytes", i64(*mem.Reservation)); err != nil {
			return err
		}
	}
	if mem.Kernel != nil && *mem.Kernel != 0 {
		// Deprecated in the spec and a no-op since Linux 5.16 (writes are
		// accepted and ignored, or refused on newer kernels): best effort.
		_ = writeFile(d, "memory.kmem.limit_in_bytes", i64(*mem.Kernel))
	}
	if mem.KernelTCP != nil && *mem.KernelTCP != 0 {
		if err := writeFile(d, "memory.kmem.tcp.limit_in_bytes", i64(*mem.KernelTCP)); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil {
		if err := writeFile(d, "memory.swappiness", u64(*mem.Swappiness)); err != nil {
			return err
		}
	}
	if mem.DisableOOMKiller != nil {
		v := "0"
		if *mem.DisableOOMKiller {
			v = "1"
		}
		if err := writeFile(d, "memory.oom_control", v); err != nil {
			return err
		}
	}
	if mem.UseHierarchy != nil {
		v := "0"
		if *mem.UseHierarchy {
			v = "1"
		}
		// Since Linux 5.x memory accounting is always hierarchical and
		// writing 0 fails with EINVAL; that is the kernel's answer, not a
		// container error.
		if err := writeFile(d, "memory.use_hierarchy", v); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return nil
}

func ptrVal(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// checkUsage implements linux.resources.memory.checkBeforeUpdate: refuse a
// new limit below current usage instead of letting the kernel reclaim or
// OOM-kill.
func checkUsage(d, file string, limit int64) error {
	s, err := readString(d, file)
	if err != nil {
		return err
	}
	usage, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("parse %s/%s: %w", d, file, err)
	}
	if usage >= uint64(limit) {
		return fmt.Errorf("%w: memory limit %d is below current usage %d", ErrInvalid, limit, usage)
	}
	return nil
}

func setCPUV1(d string, c *specs.LinuxCPU) error {
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(d, "cpu.shares", u64(*c.Shares)); err != nil {
			return err
		}
	}
	// Period and quota are checked together by the kernel against the
	// parent's bandwidth; if one order is refused, try the other.
	var period, quota func() error
	if c.Period != nil && *c.Period != 0 {
		period = func() error { return writeFile(d, "cpu.cfs_period_us", u64(*c.Period)) }
	}
	if c.Quota != nil && *c.Quota != 0 {
		quota = func() error { return writeFile(d, "cpu.cfs_quota_us", i64(*c.Quota)) }
	}
	if err := pair(period, quota); err != nil {
		return err
	}
	if c.Burst != nil {
		if err := writeFile(d, "cpu.cfs_burst_us", u64(*c.Burst)); err != nil {
			return err
		}
	}
	var rtPeriod, rtRuntime func() error
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		rtPeriod = func() error { return writeFile(d, "cpu.rt_period_us", u64(*c.RealtimePeriod)) }
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		rtRuntime = func() error { return writeFile(d, "cpu.rt_runtime_us", i64(*c.RealtimeRuntime)) }
	}
	if err := pair(rtPeriod, rtRuntime); err != nil {
		return err
	}
	if c.Idle != nil {
		if err := writeFile(d, "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	return nil
}

// pair runs a then b; if a fails with EINVAL while b is set, it runs b
// first and a again.
func pair(a, b func() error) error {
	if a == nil {
		if b == nil {
			return nil
		}
		return b()
	}
	err := a()
	if err == nil {
		if b != nil {
			return b()
		}
		return nil
	}
	if b == nil || !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := b(); err != nil {
		return err
	}
	return a()
}

func setBlkioV1(d string, b *specs.LinuxBlockIO) error {
	// CFQ's blkio.weight is gone since Linux 5.0; BFQ exposes
	// blkio.bfq.weight with the same 10..1000 range.
	weightFile := "blkio.weight"
	weightDevFile := "blkio.weight_device"
	if exists(d + "/blkio.bfq.weight") {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := writeFile(d, weightFile, strconv.Itoa(int(*b.Weight))); err != nil {
			return err
		}
	}
	// Leaf weights are CFQ-only (the spec says so) and CFQ left the kernel
	// in 5.0: without the file they are ignored rather than failing every
	// config written for older hosts.
	leaf := exists(d + "/blkio.leaf_weight")
	if leaf && b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeFile(d, "blkio.leaf_weight", strconv.Itoa(int(*b.LeafWeight))); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil {
			if err := writeFile(d, weightDevFile, devLine(wd.Major, wd.Minor, strconv.Itoa(int(*wd.Weight)))); err != nil {
				return err
			}
		}
		if leaf && wd.LeafWeight != nil {
			if err := writeFile(d, "blkio.leaf_weight_device", devLine(wd.Major, wd.Minor, strconv.Itoa(int(*wd.LeafWeight)))); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, dev := range t.devs {
			if err := writeFile(d, t.file, devLine(dev.Major, dev.Minor, u64(dev.Rate))); err != nil {
				return err
			}
		}
	}
	return nil
}

func devLine(major, minor int64, v string) string {
	return fmt.Sprintf("%d:%d %s", major, minor, v)
}
