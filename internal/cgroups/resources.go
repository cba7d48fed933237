package cgroups

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/cgroups/devices"
)

// validPageSize checks the runtime-spec hugepage size format ("2MB", "1GB",
// config-linux.md "Huge page limits"): it becomes part of a file name, so it
// is checked strictly. (No regexp: compiling one at init costs every start.)
func validPageSize(s string) bool {
	n := strings.TrimSuffix(s, "B")
	if n == s {
		return false
	}
	if l := len(n); l > 0 && strings.IndexByte("KMGTP", n[l-1]) >= 0 {
		n = n[:l-1]
	}
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// validate rejects resources that are malformed whatever the host, before
// anything is written.
func (m *manager) validate(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if len(r.Unified) > 0 && m.unified == "" {
		return fmt.Errorf("%w: linux.resources.unified needs cgroup v2", ErrNotSupported)
	}
	for k := range r.Unified {
		if err := validUnifiedKey(k); err != nil {
			return err
		}
		if m.mode == Hybrid {
			c := controllerOf(k)
			_, joined := m.v1[c]
			_, deferred := m.deferred[c]
			if joined || deferred {
				return fmt.Errorf("%w: unified key %q: controller is on cgroup v1 here", ErrNotSupported, k)
			}
		}
	}
	for _, v := range r.Unified {
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: unified value with NUL", ErrInvalid)
		}
	}
	if _, err := devices.Normalise(r.Devices); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if mem := r.Memory; mem != nil && mem.Swappiness != nil && *mem.Swappiness > 100 {
		return fmt.Errorf("%w: memory.swappiness %d > 100", ErrInvalid, *mem.Swappiness)
	}
	for _, h := range r.HugepageLimits {
		if !validPageSize(h.Pagesize) {
			return fmt.Errorf("%w: hugepage size %q", ErrInvalid, h.Pagesize)
		}
	}
	if c := r.CPU; c != nil && (badListField(c.Cpus) || badListField(c.Mems)) {
		return fmt.Errorf("%w: cpu.cpus %q / cpu.mems %q", ErrInvalid, c.Cpus, c.Mems)
	}
	if n := r.Network; n != nil {
		for _, p := range n.Priorities {
			if badName(p.Name) {
				return fmt.Errorf("%w: network priority interface %q", ErrInvalid, p.Name)
			}
		}
	}
	for dev := range r.Rdma {
		if badName(dev) {
			return fmt.Errorf("%w: rdma device %q", ErrInvalid, dev)
		}
	}
	return nil
}

// badName rejects names that would smuggle a second entry into a
// line-oriented control file.
func badName(s string) bool {
	return s == "" || strings.ContainsAny(s, " \t\n\x00")
}

func badListField(s string) bool {
	return strings.ContainsAny(s, "\n\x00")
}

// validUnifiedKey: a key of linux.resources.unified names a file in the
// container's cgroup directory (config-linux.md "Unified"); it must stay a
// plain file name there.
func validUnifiedKey(k string) error {
	switch {
	case k == "", k == ".", k == "..", strings.ContainsAny(k, "/\x00"), strings.Contains(k, ".."):
		return fmt.Errorf("%w: unified key %q", ErrInvalid, k)
	case !strings.Contains(k, "."):
		return fmt.Errorf("%w: unified key %q is not a controller file", ErrInvalid, k)
	case k == "cgroup.procs", k == "cgroup.threads":
		// Moving arbitrary processes in is what Enter is for.
		return fmt.Errorf("%w: unified key %q", ErrInvalid, k)
	}
	return nil
}

// controllerOf is the controller a cgroup2 file belongs to ("memory.max" ->
// "memory"); "cgroup" files are core and need none.
func controllerOf(file string) string {
	c, _, _ := strings.Cut(file, ".")
	return c
}

// apply writes every resource that is set, each through the hierarchy that
// carries its controller.
func (m *manager) apply(r *specs.LinuxResources, update bool) error {
	m.enabled = nil
	if r == nil {
		return nil
	}
	if r.Memory != nil {
		if d := m.v1["memory"]; d != "" {
			if err := setMemoryV1(d, r.Memory, update); err != nil {
				return err
			}
		} else if err := m.onV2("memory", func(d string) error { return setMemoryV2(d, r.Memory, update) }); err != nil {
			return err
		}
	}
	if c := r.CPU; c != nil {
		if cpuSet(c) {
			if d := m.v1["cpu"]; d != "" {
				if err := setCPUV1(d, c); err != nil {
					return err
				}
			} else if err := m.onV2("cpu", func(d string) error { return setCPUV2(d, c) }); err != nil {
				return err
			}
		}
		if c.Cpus != "" || c.Mems != "" {
			if d := m.v1["cpuset"]; d != "" {
				if err := setCpuset(d, c); err != nil {
					return err
				}
			} else if err := m.onV2("cpuset", func(d string) error { return setCpuset(d, c) }); err != nil {
				return err
			}
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		v := "max"
		if *p.Limit > 0 {
			v = strconv.FormatInt(*p.Limit, 10)
		}
		if d := m.v1["pids"]; d != "" {
			if err := writeFile(d, "pids.max", v); err != nil {
				return err
			}
		} else if err := m.onV2("pids", func(d string) error { return writeFile(d, "pids.max", v) }); err != nil {
			return err
		}
	}
	if b := r.BlockIO; b != nil {
		if d := m.v1["blkio"]; d != "" {
			if err := setBlkioV1(d, b); err != nil {
				return err
			}
		} else if err := m.onV2("io", func(d string) error { return setIOV2(d, b) }); err != nil {
			return err
		}
	}
	if len(r.HugepageLimits) > 0 {
		if d := m.v1["hugetlb"]; d != "" {
			if err := setHugetlb(d, r.HugepageLimits, "limit_in_bytes"); err != nil {
				return err
			}
		} else if err := m.onV2("hugetlb", func(d string) error { return setHugetlb(d, r.HugepageLimits, "max") }); err != nil {
			return err
		}
	}
	if n := r.Network; n != nil {
		if err := m.setNetwork(n); err != nil {
			return err
		}
	}
	if len(r.Rdma) > 0 {
		if d := m.v1["rdma"]; d != "" {
			if err := setRdma(d, r.Rdma); err != nil {
				return err
			}
		} else if err := m.onV2("rdma", func(d string) error { return setRdma(d, r.Rdma) }); err != nil {
			return err
		}
	}
	if r.Devices != nil {
		if err := m.setDevices(r.Devices, update); err != nil {
			return err
		}
	}
	return m.setUnified(r.Unified)
}

// onV2 runs set on the cgroup2 directory after making sure ctrl is enabled
// for it; on a Hybrid host only controllers that are not bound to a v1
// hierarchy can be used there.
func (m *manager) onV2(ctrl string, set func(dir string) error) error {
	if m.unified == "" {
		return fmt.Errorf("%w: controller %s is not mounted", ErrNotSupported, ctrl)
	}
	if err := m.enable(ctrl); err != nil {
		return err
	}
	return set(m.unified)
}

// enable turns ctrl on in cgroup.subtree_control of every ancestor of the
// container's cgroup2 directory (Documentation/admin-guide/cgroup-v2.rst,
// "Enabling and Disabling"). The parent is read first: when the controller
// is already delegated there, as on any host where containers ran before,
// that single read is all it costs.
func (m *manager) enable(ctrl string) error {
	if m.enabled[ctrl] {
		return nil
	}
	parent := parentDir(m.unified)
	if has, err := listHas(parent, "cgroup.subtree_control", ctrl); err != nil {
		return err
	} else if !has {
		top := m.v2Root()
		if !strings.HasPrefix(parent, top+"/") && parent != top {
			return fmt.Errorf("%w: %s is not below %s", ErrInvalid, m.unified, top)
		}
		if ok, err := listHas(top, "cgroup.controllers", ctrl); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("%w: cgroup v2 controller %s is not available", ErrNotSupported, ctrl)
		}
		for d := top; ; {
			has, err := listHas(d, "cgroup.subtree_control", ctrl)
			if err != nil {
				return err
			}
			if !has {
				if err := writeFile(d, "cgroup.subtree_control", "+"+ctrl); err != nil {
					return fmt.Errorf("enable controller %s: %w", ctrl, err)
				}
			}
			if d == parent {
				break
			}
			rest := strings.TrimPrefix(parent, d+"/")
			next, _, _ := strings.Cut(rest, "/")
			d = d + "/" + next
		}
	}
	if m.enabled == nil {
		m.enabled = map[string]bool{}
	}
	m.enabled[ctrl] = true
	return nil
}

func parentDir(d string) string {
	i := strings.LastIndexByte(d, '/')
	if i <= 0 {
		return "/"
	}
	return d[:i]
}

func listHas(dir, file, word string) (bool, error) {
	s, err := readString(dir, file)
	if err != nil {
		return false, err
	}
	for _, f := range strings.Fields(s) {
		if f == word {
			return true, nil
		}
	}
	return false, nil
}

func (m *manager) setDevices(list []specs.LinuxDeviceCgroup, update bool) error {
	rules, err := devices.Normalise(list)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if d := m.v1["devices"]; d != "" {
		writes := devices.V1Writes(rules)
		if update {
			// A running container: move between the two lists without
			// the leading deny-all when the kernel's state allows it.
			list, err := readString(d, "devices.list")
			if err != nil {
				return err
			}
			cur, known, err := devices.ParseV1List(list)
			if err != nil {
				return fmt.Errorf("%s: %w", d, err)
			}
			if t, ok := devices.V1Transition(cur, devices.Target(rules)); known && ok {
				writes = t
			}
		}
		for _, w := range writes {
			if err := writeFile(d, w.File, w.Line); err != nil {
				return fmt.Errorf("device rule: %w", err)
			}
		}
		return nil
	}
	if m.unified == "" {
		return fmt.Errorf("%w: no devices controller", ErrNotSupported)
	}
	fd, err := unix.Open(m.unified, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup %s: %w", m.unified, err)
	}
	defer unix.Close(fd)
	if err := devices.Compile(rules).Attach(fd); err != nil {
		return fmt.Errorf("device filter on %s: %w", m.unified, err)
	}
	return nil
}

// setNetwork: net_cls/net_prio exist only in cgroup v1; on v2 the spec's
// network block has no equivalent (eBPF socket programs replace it), so a
// value there is an error instead of a silent no-op.
func (m *manager) setNetwork(n *specs.LinuxNetwork) error {
	if n.ClassID != nil {
		d := m.v1["net_cls"]
		if d == "" {
			return fmt.Errorf("%w: network.classID needs the v1 net_cls controller", ErrNotSupported)
		}
		if err := writeFile(d, "net_cls.classid", strconv.FormatUint(uint64(*n.ClassID), 10)); err != nil {
			return err
		}
	}
	if len(n.Priorities) > 0 {
		d := m.v1["net_prio"]
		if d == "" {
			return fmt.Errorf("%w: network.priorities needs the v1 net_prio controller", ErrNotSupported)
		}
		for _, p := range n.Priorities {
			if err := writeFile(d, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setRdma writes rdma.max, the same syntax in v1 and v2.
func setRdma(d string, limits map[string]specs.LinuxRdma) error {
	for dev, l := range limits {
		var parts []string
		if l.HcaHandles != nil {
			parts = append(parts, "hca_handle="+strconv.FormatUint(uint64(*l.HcaHandles), 10))
		}
		if l.HcaObjects != nil {
			parts = append(parts, "hca_object="+strconv.FormatUint(uint64(*l.HcaObjects), 10))
		}
		if len(parts) == 0 {
			continue
		}
		if err := writeFile(d, "rdma.max", dev+" "+strings.Join(parts, " ")); err != nil {
			return err
		}
	}
	return nil
}

// setHugetlb writes hugetlb.<size>.<suffix>, and the reservation limit
// (hugetlb.<size>.rsvd.<suffix>) where the kernel has it: the spec asks for
// reservation limits when supported, and limiting only faults lets a
// process be SIGBUS-killed at first touch instead of failing at mmap.
func setHugetlb(d string, limits []specs.LinuxHugepageLimit, suffix string) error {
	for _, h := range limits {
		v := strconv.FormatUint(h.Limit, 10)
		if err := writeFile(d, "hugetlb."+h.Pagesize+"."+suffix, v); err != nil {
			return err
		}
		rsvd := "hugetlb." + h.Pagesize + ".rsvd." + suffix
		if exists(d + "/" + rsvd) {
			if err := writeFile(d, rsvd, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func setCpuset(d string, c *specs.LinuxCPU) error {
	if c.Cpus != "" {
		if err := writeFile(d, "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := writeFile(d, "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

func cpuSet(c *specs.LinuxCPU) bool {
	return c.Shares != nil || c.Quota != nil || c.Period != nil || c.Burst != nil ||
		c.RealtimePeriod != nil || c.RealtimeRuntime != nil || c.Idle != nil
}

func (m *manager) setUnified(u map[string]string) error {
	for k, v := range u {
		ctrl := controllerOf(k)
		if ctrl != "cgroup" {
			if ok, err := listHas(m.v2Root(), "cgroup.controllers", ctrl); err != nil {
				return err
			} else if ok {
				if err := m.enable(ctrl); err != nil {
					return err
				}
			}
		}
		if err := writeFile(m.unified, k, v); err != nil {
			return fmt.Errorf("unified %s: %w", k, err)
		}
	}
	return nil
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }
