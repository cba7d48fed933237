package cgroups

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// Stats is the "data" object of `runc events --stats`, with the same JSON
// keys so that tools parsing runc's output parse hako's.
type Stats struct {
	CPU     CPU                `json:"cpu"`
	Memory  Memory             `json:"memory"`
	Pids    Pids               `json:"pids"`
	Blkio   Blkio              `json:"blkio"`
	Hugetlb map[string]Hugetlb `json:"hugetlb,omitempty"`
}

// CPU times are in nanoseconds.
type CPU struct {
	Usage      CPUUsage   `json:"usage,omitempty"`
	Throttling Throttling `json:"throttling,omitempty"`
}

type CPUUsage struct {
	Total        uint64   `json:"total,omitempty"`
	PerCPU       []uint64 `json:"percpu,omitempty"`
	PerCPUKernel []uint64 `json:"percpu_kernel,omitempty"`
	PerCPUUser   []uint64 `json:"percpu_user,omitempty"`
	Kernel       uint64   `json:"kernel"`
	User         uint64   `json:"user"`
}

type Throttling struct {
	Periods          uint64 `json:"periods,omitempty"`
	ThrottledPeriods uint64 `json:"throttledPeriods,omitempty"`
	ThrottledTime    uint64 `json:"throttledTime,omitempty"`
}

type Memory struct {
	Cache     uint64            `json:"cache,omitempty"`
	Usage     MemoryEntry       `json:"usage,omitempty"`
	Swap      MemoryEntry       `json:"swap,omitempty"`
	Kernel    MemoryEntry       `json:"kernel,omitempty"`
	KernelTCP MemoryEntry       `json:"kernelTCP,omitempty"`
	Raw       map[string]uint64 `json:"raw,omitempty"`
}

// MemoryEntry: Limit is math.MaxUint64-ish ("max") when unlimited.
type MemoryEntry struct {
	Limit   uint64 `json:"limit"`
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

type Pids struct {
	Current uint64 `json:"current,omitempty"`
	Limit   uint64 `json:"limit,omitempty"`
}

type Blkio struct {
	IoServiceBytesRecursive []BlkioEntry `json:"ioServiceBytesRecursive,omitempty"`
	IoServicedRecursive     []BlkioEntry `json:"ioServicedRecursive,omitempty"`
}

type BlkioEntry struct {
	Major uint64 `json:"major,omitempty"`
	Minor uint64 `json:"minor,omitempty"`
	Op    string `json:"op,omitempty"`
	Value uint64 `json:"value,omitempty"`
}

type Hugetlb struct {
	Usage   uint64 `json:"usage,omitempty"`
	Max     uint64 `json:"max,omitempty"`
	Failcnt uint64 `json:"failcnt"`
}

// statReader reads counters leniently: a file that does not exist means the
// kernel or controller does not offer that counter, and leaves it zero.
type statReader struct{ err error }

func (r *statReader) str(dir, file string) (string, bool) {
	if r.err != nil || dir == "" {
		return "", false
	}
	b, err := os.ReadFile(dir + "/" + file)
	if err != nil {
		if !isNotExist(err) && !errors.Is(err, os.ErrPermission) {
			r.err = err
		}
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// num parses a single value; "max" is reported as MaxUint64 like runc.
func (r *statReader) num(dir, file string) uint64 {
	s, ok := r.str(dir, file)
	if !ok {
		return 0
	}
	if s == "max" {
		return ^uint64(0)
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func (r *statReader) flat(dir, file string) map[string]uint64 {
	s, ok := r.str(dir, file)
	if !ok {
		return nil
	}
	return parseFlatKeyed(s)
}

func (r *statReader) list(dir, file string) []uint64 {
	s, ok := r.str(dir, file)
	if !ok {
		return nil
	}
	var out []uint64
	for _, f := range strings.Fields(s) {
		n, _ := strconv.ParseUint(f, 10, 64)
		out = append(out, n)
	}
	return out
}

// hugePageSizes lists the sizes the kernel supports, in the spec's format
// ("2MB"), from /sys/kernel/mm/hugepages/hugepages-<N>kB.
func hugePageSizes() []string {
	ents, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		s := strings.TrimSuffix(strings.TrimPrefix(e.Name(), "hugepages-"), "kB")
		kb, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			continue
		}
		units := []string{"KB", "MB", "GB", "TB", "PB"}
		i := 0
		for kb >= 1024 && kb%1024 == 0 && i < len(units)-1 {
			kb /= 1024
			i++
		}
		out = append(out, strconv.FormatUint(kb, 10)+units[i])
	}
	return out
}

// userHZ converts cpuacct.stat ticks to ns; USER_HZ is 100 on every
// architecture Linux exposes to user space through this file.
const userHZ = 100

func (m *manager) Stats() (*Stats, error) {
	st := &Stats{}
	r := &statReader{}
	v2 := m.unified
	onV1 := func(c string) (string, bool) {
		d, ok := m.v1[c]
		return d, ok
	}
	// CPU
	if d, ok := onV1("cpuacct"); ok {
		st.CPU.Usage.Total = r.num(d, "cpuacct.usage")
		st.CPU.Usage.PerCPU = r.list(d, "cpuacct.usage_percpu")
		st.CPU.Usage.PerCPUKernel = r.list(d, "cpuacct.usage_percpu_sys")
		st.CPU.Usage.PerCPUUser = r.list(d, "cpuacct.usage_percpu_user")
		if f := r.flat(d, "cpuacct.stat"); f != nil {
			st.CPU.Usage.User = f["user"] * (1e9 / userHZ)
			st.CPU.Usage.Kernel = f["system"] * (1e9 / userHZ)
		}
	} else if v2 != "" {
		// cgroup2's cpu.stat has usage_usec/user_usec/system_usec
		// without the cpu controller: on a Hybrid host without cpuacct
		// joined it is still the container's CPU time.
		if f := r.flat(v2, "cpu.stat"); f != nil {
			st.CPU.Usage.Total = f["usage_usec"] * 1000
			st.CPU.Usage.User = f["user_usec"] * 1000
			st.CPU.Usage.Kernel = f["system_usec"] * 1000
		}
	}
	cpuDir := v2
	if d, ok := onV1("cpu"); ok {
		cpuDir = d
	}
	if f := r.flat(cpuDir, "cpu.stat"); f != nil {
		st.CPU.Throttling.Periods = f["nr_periods"]
		st.CPU.Throttling.ThrottledPeriods = f["nr_throttled"]
		if t, ok := f["throttled_time"]; ok { // v1, ns
			st.CPU.Throttling.ThrottledTime = t
		} else {
			st.CPU.Throttling.ThrottledTime = f["throttled_usec"] * 1000
		}
	}
	// Memory
	if d, ok := onV1("memory"); ok {
		entry := func(prefix string) MemoryEntry {
			return MemoryEntry{
				Limit:   r.num(d, prefix+"limit_in_bytes"),
				Usage:   r.num(d, prefix+"usage_in_bytes"),
				Max:     r.num(d, prefix+"max_usage_in_bytes"),
				Failcnt: r.num(d, prefix+"failcnt"),
			}
		}
		st.Memory.Usage = entry("memory.")
		st.Memory.Swap = entry("memory.memsw.")
		st.Memory.Kernel = entry("memory.kmem.")
		st.Memory.KernelTCP = entry("memory.kmem.tcp.")
		st.Memory.Raw = r.flat(d, "memory.stat")
		if c, ok := st.Memory.Raw["total_cache"]; ok {
			st.Memory.Cache = c
		} else {
			st.Memory.Cache = st.Memory.Raw["cache"]
		}
	} else if m.mode == Unified {
		ev := r.flat(v2, "memory.events")
		st.Memory.Usage = MemoryEntry{
			Limit:   r.num(v2, "memory.max"),
			Usage:   r.num(v2, "memory.current"),
			Max:     r.num(v2, "memory.peak"),
			Failcnt: ev["max"],
		}
		st.Memory.Swap = MemoryEntry{
			Limit: r.num(v2, "memory.swap.max"),
			Usage: r.num(v2, "memory.swap.current"),
			Max:   r.num(v2, "memory.swap.peak"),
		}
		st.Memory.Raw = r.flat(v2, "memory.stat")
		st.Memory.Cache = st.Memory.Raw["file"]
	}
	// Pids
	pidsDir := ""
	if d, ok := onV1("pids"); ok {
		pidsDir = d
	} else if m.mode == Unified {
		pidsDir = v2
	}
	if pidsDir != "" {
		st.Pids.Current = r.num(pidsDir, "pids.current")
		if l := r.num(pidsDir, "pids.max"); l != ^uint64(0) {
			st.Pids.Limit = l
		}
	}
	// Block I/O
	if d, ok := onV1("blkio"); ok {
		prefix := "blkio.throttle."
		if _, ok := r.str(d, "blkio.bfq.io_service_bytes_recursive"); ok {
			prefix = "blkio.bfq."
		}
		st.Blkio.IoServiceBytesRecursive = r.blkioV1(d, prefix+"io_service_bytes_recursive")
		st.Blkio.IoServicedRecursive = r.blkioV1(d, prefix+"io_serviced_recursive")
	} else if m.mode == Unified {
		st.Blkio.IoServiceBytesRecursive, st.Blkio.IoServicedRecursive = r.ioStatV2(v2)
	}
	// Hugetlb: v1 directory if the controller is there, else cgroup2 files
	// (on this Hybrid layout hugetlb exists only in cgroup2).
	sizes := []string(nil)
	hd, v1h := onV1("hugetlb")
	if !v1h {
		hd = v2
	}
	if hd != "" {
		sizes = hugePageSizes()
	}
	for _, s := range sizes {
		var h Hugetlb
		var present bool
		p := "hugetlb." + s + "."
		if v1h {
			_, present = r.str(hd, p+"usage_in_bytes")
			h = Hugetlb{Usage: r.num(hd, p+"usage_in_bytes"), Max: r.num(hd, p+"max_usage_in_bytes"), Failcnt: r.num(hd, p+"failcnt")}
		} else {
			_, present = r.str(hd, p+"current")
			h = Hugetlb{Usage: r.num(hd, p+"current"), Failcnt: r.flat(hd, p+"events")["max"]}
		}
		if !present {
			continue
		}
		if st.Hugetlb == nil {
			st.Hugetlb = map[string]Hugetlb{}
		}
		st.Hugetlb[s] = h
	}
	if r.err != nil {
		return nil, r.err
	}
	return st, nil
}

// blkioV1 parses "8:0 Read 4096" lines ("Total N" lines are skipped).
func (r *statReader) blkioV1(d, file string) []BlkioEntry {
	s, ok := r.str(d, file)
	if !ok {
		return nil
	}
	var out []BlkioEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := parseDev(f[0])
		if !ok {
			continue
		}
		v, _ := strconv.ParseUint(f[2], 10, 64)
		out = append(out, BlkioEntry{Major: maj, Minor: min, Op: f[1], Value: v})
	}
	return out
}

// ioStatV2 parses io.stat ("8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...") into
// the v1-shaped entries runc reports.
func (r *statReader) ioStatV2(d string) (bytes, ios []BlkioEntry) {
	s, ok := r.str(d, "io.stat")
	if !ok {
		return nil, nil
	}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := parseDev(f[0])
		if !ok {
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				continue
			}
			e := BlkioEntry{Major: maj, Minor: min, Value: n}
			switch k {
			case "rbytes":
				e.Op = "Read"
				bytes = append(bytes, e)
			case "wbytes":
				e.Op = "Write"
				bytes = append(bytes, e)
			case "rios":
				e.Op = "Read"
				ios = append(ios, e)
			case "wios":
				e.Op = "Write"
				ios = append(ios, e)
			}
		}
	}
	return bytes, ios
}

func parseDev(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}
