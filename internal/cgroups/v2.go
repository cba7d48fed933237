package cgroups

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroup v2 translations of the v1-shaped runtime-spec fields
// (Documentation/admin-guide/cgroup-v2.rst), the ones runc and crun use, so
// that a config behaves the same whichever runtime runs it.

func setMemoryV2(d string, mem *specs.LinuxMemory, update bool) error {
	limit := ptrVal(mem.Limit)
	if update && limit > 0 && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate {
		if err := checkUsage(d, "memory.current", limit); err != nil {
			return err
		}
	}
	// memory.swap.max limits swap alone, the spec's swap is memory+swap:
	// write it first so that lowering both never leaves swap unbounded.
	if mem.Swap != nil {
		swap, set, err := swapV2(*mem.Swap, limit)
		if err != nil {
			return err
		}
		if set {
			if !exists(d + "/memory.swap.max") {
				if swap != "max" && swap != "0" {
					return fmt.Errorf("%w: memory.swap without swap accounting (memory.swap.max)", ErrNotSupported)
				}
			} else if err := writeFile(d, "memory.swap.max", swap); err != nil {
				return err
			}
		}
	}
	if limit != 0 {
		if err := writeFile(d, "memory.max", maxOr(limit)); err != nil {
			return err
		}
	}
	if mem.Reservation != nil && *mem.Reservation != 0 {
		if err := writeFile(d, "memory.low", maxOr(*mem.Reservation)); err != nil {
			return err
		}
	}
	// kernel, kernelTCP, swappiness, disableOOMKiller and useHierarchy have
	// no cgroup v2 file: v2 accounts kernel memory with the rest, is always
	// hierarchical, and has no per-cgroup swappiness or OOM switch. They are
	// ignored, as runc and crun do, so v1-era configs keep working.
	return nil
}

// maxOr renders a limit, negative meaning unlimited.
func maxOr(v int64) string {
	if v < 0 {
		return "max"
	}
	return i64(v)
}

// swapV2 converts the spec's memory+swap total into memory.swap.max.
// set=false means "leave it alone".
func swapV2(swap, limit int64) (string, bool, error) {
	switch {
	case swap == -1:
		return "max", true, nil
	case swap == 0:
		return "", false, nil
	case limit == 0 || limit == -1:
		return "", false, fmt.Errorf("%w: memory.swap %d without a memory limit", ErrInvalid, swap)
	case swap < limit:
		return "", false, fmt.Errorf("%w: memory.swap %d below memory.limit %d (swap is memory+swap)", ErrInvalid, swap, limit)
	}
	return i64(swap - limit), true, nil
}

// SharesToWeight maps cgroup v1 cpu.shares [2, 262144] onto v2 cpu.weight
// [1, 10000]. The curve is the one crun and runc adopted in 2025: quadratic
// in log2(shares), so that the v1 default 1024 lands on the v2 default 100
// (the older linear formula gave 39) and both ends still map to both ends.
func SharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	exp := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exp)))
}

func setCPUV2(d string, c *specs.LinuxCPU) error {
	if (c.RealtimePeriod != nil && *c.RealtimePeriod != 0) || (c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) {
		return fmt.Errorf("%w: realtime CPU limits on cgroup v2", ErrNotSupported)
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(d, "cpu.weight", u64(SharesToWeight(*c.Shares))); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeFile(d, "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	quotaSet := c.Quota != nil && *c.Quota != 0
	periodSet := c.Period != nil && *c.Period != 0
	if quotaSet || periodSet {
		// cpu.max is "$MAX $PERIOD"; an unset quota means "max", an
		// unset period the kernel default 100ms.
		q := "max"
		if quotaSet && *c.Quota > 0 {
			q = i64(*c.Quota)
		}
		p := uint64(100000)
		if periodSet {
			p = *c.Period
		}
		if err := writeFile(d, "cpu.max", q+" "+u64(p)); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeFile(d, "cpu.max.burst", u64(*c.Burst)); err != nil {
			return err
		}
	}
	return nil
}

// blkioToIOWeight maps blkio.weight [10, 1000] onto io.weight [1, 10000].
func blkioToIOWeight(w uint16) uint64 {
	if w == 0 {
		return 0
	}
	return 1 + (uint64(w)-10)*9999/990
}

func setIOV2(d string, b *specs.LinuxBlockIO) error {
	// BFQ keeps the v1 weight range in io.bfq.weight; without BFQ the
	// generic io.weight takes the converted value. leafWeight has no v2
	// equivalent and is ignored.
	bfq := exists(d + "/io.bfq.weight")
	weight := func(w uint16) string {
		if bfq {
			return strconv.Itoa(int(w))
		}
		return u64(blkioToIOWeight(w))
	}
	file := "io.weight"
	if bfq {
		file = "io.bfq.weight"
	}
	if b.Weight != nil && *b.Weight != 0 {
		v := weight(*b.Weight)
		if !bfq {
			v = "default " + v
		}
		if err := writeFile(d, file, v); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.Weight != nil {
			if err := writeFile(d, file, devLine(wd.Major, wd.Minor, weight(*wd.Weight))); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		key  string
		devs []specs.LinuxThrottleDevice
	}{
		{"rbps", b.ThrottleReadBpsDevice},
		{"wbps", b.ThrottleWriteBpsDevice},
		{"riops", b.ThrottleReadIOPSDevice},
		{"wiops", b.ThrottleWriteIOPSDevice},
	} {
		for _, dev := range t.devs {
			v := u64(dev.Rate)
			if dev.Rate == 0 {
				v = "max" // 0 lifts the limit, as writing 0 does in v1
			}
			if err := writeFile(d, "io.max", devLine(dev.Major, dev.Minor, t.key+"="+v)); err != nil {
				return err
			}
		}
	}
	return nil
}

// parseFlatKeyed reads "key value" lines (memory.events, cpu.stat, ...).
func parseFlatKeyed(s string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}
