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
	v1       map[string]string // v1 controller -> dir
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
	return State{Mode: m.mode, Paths: p, Created: slices.Clone(m.created)}
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

func (m *manager) Update(r *specs.LinuxResources) error {
	if err := m.validate(r); err != nil {
		return err
	}
	return m.apply(r, true)
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
	if m.mode != Unified || m.unified == "" {
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
		if err := writeFile(d, "cgroup.procs", s); err != nil {
			if m.rootless && isPerm(err) {
				continue
			}
			return fmt.Errorf("enter pid %d: %w", pid, err)
		}
	}
	return nil
}

// Destroy removes what Create made, deepest first. Sub-cgroups the container
// made inside its own cgroup go with it; a parent we created that now holds
// other containers' cgroups stays.
func (m *manager) Destroy() error {
	dirs := slices.Clone(m.created)
	slices.SortStableFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	leaves := m.dirs()
	var errs []error
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
	d := m.unified
	if m.mode != Unified {
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
