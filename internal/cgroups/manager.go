package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// manager is the one Manager: v1 controllers and the cgroup2 directory side
// by side, so Legacy, Hybrid and Unified differ only in which are set.
type manager struct {
	mode     Mode
	root     string
	rootless bool
	v1       map[string]string // v1 controller -> dir, the hierarchies joined
	deferred map[string]string // Hybrid: v1 controller -> dir, not joined yet
	unified  string            // cgroup2 dir, "" in Legacy mode
	created  []string

	// enabled caches the v2 controllers known to be on in the parent's
	// cgroup.subtree_control during one Create/Update.
	enabled map[string]bool
}

func (m *manager) State() State {
	p := make(map[string]string, len(m.v1)+1)
	for k, v := range m.v1 {
		p[k] = v
	}
	if m.unified != "" {
		p[UnifiedKey] = m.unified
	}
	st := State{Mode: m.mode, Paths: p, Created: slices.Clone(m.created)}
	if len(m.deferred) > 0 {
		st.Deferred = make(map[string]string, len(m.deferred))
		for k, v := range m.deferred {
			st.Deferred[k] = v
		}
	}
	return st
}

// dirs lists each distinct directory once, v1 first, cgroup2 last.
func (m *manager) dirs() []string {
	var d []string
	for _, v := range m.v1 {
		if !slices.Contains(d, v) {
			d = append(d, v)
		}
	}
	slices.Sort(d)
	if m.unified != "" {
		d = append(d, m.unified)
	}
	return d
}

// v2Root is the mount point of the cgroup2 hierarchy.
func (m *manager) v2Root() string {
	if m.mode == Hybrid {
		return filepath.Join(m.root, "unified")
	}
	return m.root
}

func (m *manager) Create(r *specs.LinuxResources) (err error) {
	if err := m.validate(r); err != nil {
		return err
	}
	limits := hasLimits(r)
	defer func() {
		if err != nil {
			_ = m.Destroy()
		}
	}()
	m.join(r)
	for _, d := range m.dirs() {
		if err := m.mkdir(d); err != nil {
			if m.rootless && !limits && isPerm(err) {
				m.drop(d)
				continue
			}
			return err
		}
	}
	if cs := m.v1["cpuset"]; cs != "" {
		if err := m.initCpuset(cs); err != nil {
			return err
		}
	}
	return m.apply(r, false)
}

// drop forgets a directory we may not use (rootless without limits).
func (m *manager) drop(d string) {
	for k, v := range m.v1 {
		if v == d {
			delete(m.v1, k)
		}
	}
	if m.unified == d {
		m.unified = ""
	}
}

func (m *manager) Update(r *specs.LinuxResources) (err error) {
	if err := m.validate(r); err != nil {
		return err
	}
	added := m.join(r)
	if len(added) == 0 {
		return m.apply(r, true)
	}
	// New v1 hierarchies: create them and set the limits before any
	// process arrives, then move the container's processes in. Until the
	// move succeeds a failure takes the new directories away again.
	before := len(m.created)
	defer func() {
		if err != nil {
			m.unjoin(added, before)
		}
	}()
	for _, d := range added {
		if err := m.mkdir(d); err != nil {
			return err
		}
		if d == m.v1["cpuset"] {
			if err := m.initCpuset(d); err != nil {
				return err
			}
		}
	}
	if err := m.apply(r, true); err != nil {
		return err
	}
	return m.migrate(added)
}

// join moves the v1 controllers that r sets limits for from deferred to
// joined (Hybrid), with every controller co-mounted with them, and returns
// the directories newly joined. It only changes the maps.
func (m *manager) join(r *specs.LinuxResources) []string {
	var added []string
	for _, c := range v1Needs(r) {
		d, ok := m.deferred[c]
		if !ok {
			continue
		}
		for k, v := range m.deferred {
			if v == d {
				m.v1[k] = v
				delete(m.deferred, k)
			}
		}
		added = append(added, d)
	}
	return added
}

// unjoin undoes join for dirs after a failed Update, removing the
// directories made since m.created had length before.
func (m *manager) unjoin(dirs []string, before int) {
	made := m.created[before:]
	for i := len(made) - 1; i >= 0; i-- {
		_ = rmdir(made[i])
	}
	m.created = m.created[:before]
	for k, v := range m.v1 {
		if slices.Contains(dirs, v) {
			m.deferred[k] = v
			delete(m.v1, k)
		}
	}
}

// v1Needs lists the v1 controllers that apply writes to for r: the same
// conditions apply uses to pick a file.
func v1Needs(r *specs.LinuxResources) []string {
	if r == nil {
		return nil
	}
	var c []string
	if r.Memory != nil {
		c = append(c, "memory")
	}
	if r.CPU != nil {
		if cpuSet(r.CPU) {
			c = append(c, "cpu", "cpuacct") // cpuacct: usage in Stats
		}
		if r.CPU.Cpus != "" || r.CPU.Mems != "" {
			c = append(c, "cpuset")
		}
	}
	if r.Pids != nil && r.Pids.Limit != nil {
		c = append(c, "pids")
	}
	if r.BlockIO != nil {
		c = append(c, "blkio")
	}
	if len(r.HugepageLimits) > 0 {
		c = append(c, "hugetlb")
	}
	if n := r.Network; n != nil {
		if n.ClassID != nil {
			c = append(c, "net_cls")
		}
		if len(n.Priorities) > 0 {
			c = append(c, "net_prio")
		}
	}
	if len(r.Rdma) > 0 {
		c = append(c, "rdma")
	}
	return c
}

// migrate moves every process of the container (the unified cgroup and its
// descendants) into the v1 directories dirs. A process may fork while the
// list is read; the forks are caught by listing again until a pass finds
// nothing left to move.
func (m *manager) migrate(dirs []string) error {
	for pass := 0; pass < 20; pass++ {
		pids, err := m.Pids()
		if err != nil {
			return err
		}
		moved := false
		for _, d := range dirs {
			in, err := procsOf(d)
			if err != nil {
				return err
			}
			for _, p := range pids {
				if in[p] {
					continue
				}
				moved = true
				if err := writeFile(d, "cgroup.procs", strconv.Itoa(p)); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("move pid %d: %w", p, err)
				}
			}
		}
		if !moved {
			return nil
		}
	}
	return fmt.Errorf("move processes into %v: still forking after 20 passes", dirs)
}

func procsOf(d string) (map[int]bool, error) {
	s, err := readString(d, "cgroup.procs")
	if err != nil {
		return nil, err
	}
	in := map[int]bool{}
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s/cgroup.procs: %w", d, err)
		}
		in[n] = true
	}
	return in, nil
}

func hasLimits(r *specs.LinuxResources) bool {
	if r == nil {
		return false
	}
	return r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil ||
		len(r.HugepageLimits) > 0 || r.Network != nil || len(r.Rdma) > 0 ||
		len(r.Unified) > 0 || len(r.Devices) > 0
}

func isPerm(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS)
}

// mkdir creates d and any missing parents, recording each directory it made
// (parents first) so that Destroy removes exactly those. The common case, a
// parent that exists, is a single mkdir.
func (m *manager) mkdir(d string) error {
	if !m.cgroupDir(d) {
		return fmt.Errorf("%w: %s is not a cgroup below %s", ErrInvalid, d, m.root)
	}
	err := unix.Mkdir(d, 0o755)
	switch {
	case err == nil:
		m.created = append(m.created, d)
		return nil
	case errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.ENOENT):
		parent := filepath.Dir(d)
		if !m.cgroupDir(parent) {
			// Never create a hierarchy's mount point in the tmpfs above.
			return fmt.Errorf("mkdir cgroup %s: hierarchy not mounted: %w", d, err)
		}
		if err := m.mkdir(parent); err != nil {
			return err
		}
		return m.mkdir(d)
	}
	return fmt.Errorf("mkdir cgroup %s: %w", d, err)
}

// initCpuset gives every cpuset directory we created the CPUs and memory
// nodes of its parent: a v1 cpuset starts empty and refuses tasks until both
// are set (Documentation/admin-guide/cgroup-v1/cpusets.rst).
func (m *manager) initCpuset(leaf string) error {
	for _, d := range m.created {
		if d != leaf && !strings.HasPrefix(leaf, d+"/") {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := readString(d, f)
			if err != nil {
				return err
			}
			if cur != "" {
				continue
			}
			parent, err := readString(filepath.Dir(d), f)
			if err != nil {
				return err
			}
			if err := writeFile(d, f, parent); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *manager) CgroupFD() (int, bool, error) {
	if m.unified == "" {
		return -1, false, nil
	}
	fd, err := unix.Open(m.unified, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open cgroup %s: %w", m.unified, err)
	}
	return fd, true, nil
}

func (m *manager) Enter(pid int) error {
	s := strconv.Itoa(pid)
	for _, d := range m.dirs() {
		if d == m.unified && m.inUnified(pid) {
			// Cloned in with CgroupFD: a write would still take the
			// kernel's migration lock (and its RCU wait) for nothing.
			continue
		}
		if err := writeFile(d, "cgroup.procs", s); err != nil {
			if m.rootless && isPerm(err) {
				continue
			}
			return fmt.Errorf("enter pid %d: %w", pid, err)
		}
	}
	return nil
}

// inUnified reports whether /proc/PID/cgroup already places pid in the
// container's cgroup2 directory. Any doubt (no such file, a cgroup
// namespace with other paths) answers false, and Enter writes.
func (m *manager) inUnified(pid int) bool {
	self, err := readSelfCgroup("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil || self.unified == "" {
		return false
	}
	top := m.v2Root()
	return strings.TrimSuffix(top, "/")+self.unified == m.unified
}

// Destroy removes what Create made, deepest first. Sub-cgroups the container
// made inside its own cgroup go with it; a parent we created that now holds
// other containers' cgroups stays.
func (m *manager) Destroy() error {
	dirs := slices.Clone(m.created)
	slices.SortStableFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	leaves := m.dirs()
	var errs []error
	if m.unified != "" && slices.Contains(m.created, m.unified) {
		m.removeStaleDeferred()
	}
	for _, d := range dirs {
		if slices.Contains(leaves, d) {
			if err := removeChildren(d); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := rmdir(d); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := rmdir(d); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	m.created = nil
	return nil
}

// removeStaleDeferred is a net for a caller that ran Update (which may
// create v1 directories) without saving the new State: a deferred
// directory that exists then is most likely that one, since the container's
// own path did not exist in the unified hierarchy before Create. Only an
// empty cgroup can be removed (rmdir fails with EBUSY while it holds tasks
// or children), so nothing that is in use goes.
func (m *manager) removeStaleDeferred() {
	var seen []string
	for _, d := range m.deferred {
		if slices.Contains(seen, d) {
			continue
		}
		seen = append(seen, d)
		_ = unix.Rmdir(d)
	}
}

// removeChildren removes nested cgroups below d, bottom up.
func removeChildren(d string) error {
	ents, err := os.ReadDir(d)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("read cgroup %s: %w", d, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c := filepath.Join(d, e.Name())
		if err := removeChildren(c); err != nil {
			return err
		}
		if err := rmdir(c); err != nil {
			return err
		}
	}
	return nil
}

// rmdir retries EBUSY for about a second: the kernel keeps a cgroup busy
// for a moment after its last task exits (v1 memory, v2 css offlining).
func rmdir(d string) error {
	delay := time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(d)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || i >= 12 {
			return fmt.Errorf("rmdir cgroup %s: %w", d, err)
		}
		time.Sleep(delay)
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *manager) Pids() ([]int, error) {
	// The cgroup2 directory holds every process of the container (on a
	// Hybrid host it is the one hierarchy always joined).
	d := m.unified
	if d == "" {
		for _, c := range []string{"freezer", "pids", "memory", "cpu", "devices", "name=systemd"} {
			if p := m.v1[c]; p != "" {
				d = p
				break
			}
		}
	}
	if d == "" {
		return nil, fmt.Errorf("%w: no cgroup to list", ErrNotSupported)
	}
	var pids []int
	err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) && p != d {
				return nil // a nested cgroup went away while walking
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parse %s/cgroup.procs: %w", p, err)
			}
			pids = append(pids, n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pids of %s: %w", d, err)
	}
	return pids, nil
}

// writeFile writes one cgroup control file. No O_CREAT: every control file
// exists when its controller is active, and a missing file must be an error
// (ENOENT means "controller not enabled here"), never a new regular file.
func writeFile(dir, name, value string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, err = f.WriteString(value)
	cerr := f.Close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
	return nil
}

func readString(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return strings.TrimSpace(string(b)), nil
}
