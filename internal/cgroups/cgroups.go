// Package cgroups places a container in its cgroup(s) and applies the
// runtime-spec linux.resources to them (config-linux.md "Control groups").
//
// One cgroupfs writer serves all three host layouts:
//
//   - Legacy: only v1 hierarchies, one directory per controller under Root;
//   - Hybrid: v1 controllers plus a cgroup2 hierarchy at Root/unified that
//     only tracks processes (this is the layout of the hosts hako is built
//     on, and the one crun refuses);
//   - Unified: a single cgroup2 hierarchy at Root.
//
// A Manager knows, per controller, the directory it uses (State.Paths) and
// writes only the files for the resources that are set, so the start-up path
// (New + Create + Enter) costs one read of /proc/self/cgroup, a mkdir per
// hierarchy used and one write per limit. Nothing reads whole trees except Pids
// and Destroy of nested cgroups.
//
// On a Hybrid host the container's cgroup in the unified (cgroup2)
// hierarchy is the one that matters at start-up: the child is cloned
// straight into it (clone3 CLONE_INTO_CGROUP, see CgroupFD), it tracks the
// container's processes (Pids, kill --all), freezes them (cgroup.freeze
// needs no controller), and carries the eBPF device filter (the kernel
// checks BPF_CGROUP_DEVICE programs of cgroup2 cgroups on top of the v1
// devices controller, which hako then leaves alone, as systemd does). A v1
// hierarchy is created and joined only for a controller whose resources
// are set (memory, cpu+cpuacct, cpuset, pids, blkio, hugetlb, net_cls,
// net_prio, rdma). The reason is cost: the first write of a pid to any
// cgroup.procs makes the kernel take cgroup_threadgroup_rwsem for writing,
// and from idle that waits a full RCU grace period (10-16 ms here), more
// than the rest of a container start; cloning into a cgroup migrates
// nothing. The v1 controllers not yet used are kept in State.Deferred, and
// Update joins them later (moving every process of the container) when a
// limit for them is first set.
//
// A v2-only controller on a Hybrid host (hugetlb here) is used through the
// unified hierarchy when a limit for it is set: that is the only place the
// kernel offers it.
//
// Typical use by the runtime:
//
//	m, err := cgroups.New(spec.Linux.CgroupsPath, id, cgroups.Options{Rootless: rootless})
//	err = m.Create(spec.Linux.Resources)   // rolls back on error
//	if fd, ok, _ := m.CgroupFD(); ok {     // v2 and hybrid: clone3 straight into it
//		attr.UseCgroupFD, attr.CgroupFD = true, fd
//	}
//	... start init ...
//	err = m.Enter(pid)                     // v1 hierarchies; no write where the child already is
//	save m.State() in state.json; later: cgroups.Load(st, opts)
//	after m.Update(r), save m.State() again (it may have joined v1 hierarchies)
//
// linux.resources.devices is applied as given; the runtime appends the
// default devices (devices.Defaults) before calling Apply.
package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where cgroup hierarchies are mounted on every distribution
// hako targets.
const DefaultRoot = "/sys/fs/cgroup"

// Mode is the cgroup layout of a host.
type Mode int

const (
	// Legacy: cgroup v1 hierarchies only.
	Legacy Mode = iota + 1
	// Hybrid: cgroup v1 controllers plus cgroup2 at <root>/unified.
	Hybrid
	// Unified: pure cgroup v2 at <root>.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// MarshalText makes state.json readable ("hybrid", not 2).
func (m Mode) MarshalText() ([]byte, error) {
	switch m {
	case Legacy, Hybrid, Unified:
		return []byte(m.String()), nil
	}
	return nil, fmt.Errorf("%w: mode %d", ErrInvalid, int(m))
}

// UnmarshalText is the inverse of MarshalText.
func (m *Mode) UnmarshalText(b []byte) error {
	for _, c := range []Mode{Legacy, Hybrid, Unified} {
		if string(b) == c.String() {
			*m = c
			return nil
		}
	}
	return fmt.Errorf("%w: mode %q", ErrInvalid, b)
}

// Errors, classified once so that callers can map them with errors.Is.
var (
	// ErrInvalid: a bad cgroupsPath, resource value or unified key.
	ErrInvalid = errors.New("invalid cgroup configuration")
	// ErrNotSupported: the resource cannot be applied on this host or cgroup
	// version (for example realtime CPU limits on v2, unified keys on v1).
	ErrNotSupported = errors.New("not supported by the host cgroups")
)

// DetectMode reports the cgroup layout mounted at root. A tree that is not a
// real cgroupfs but carries the files the kernel would create
// (cgroup.controllers at the top for v2, at unified/ for hybrid) is
// recognised the same way, so tests can work on a fake tree in tmpfs.
func DetectMode(root string) (Mode, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", root, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC || exists(filepath.Join(root, "cgroup.controllers")) {
		return Unified, nil
	}
	u := filepath.Join(root, "unified")
	if err := unix.Statfs(u, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Hybrid, nil
	}
	if exists(filepath.Join(u, "cgroup.controllers")) {
		return Hybrid, nil
	}
	return Legacy, nil
}

func exists(p string) bool {
	return unix.Access(p, unix.F_OK) == nil
}

// Options configure New and Load.
type Options struct {
	// Root is where the hierarchies are mounted; DefaultRoot if empty.
	Root string
	// Rootless tolerates EPERM/EACCES when creating or joining a cgroup for
	// which no limits are requested (an unprivileged user usually owns no
	// part of the hierarchy); with limits requested the error is returned,
	// so that limits never silently do nothing.
	Rootless bool
	// ProcSelfCgroup is the file that says which cgroups the caller is in,
	// used to resolve relative cgroupsPath values; "/proc/self/cgroup" if
	// empty. Tests point it at a fixture.
	ProcSelfCgroup string
}

func (o Options) root() string {
	if o.Root == "" {
		return DefaultRoot
	}
	return filepath.Clean(o.Root)
}

// UnifiedKey is the State.Paths key of the cgroup2 directory (Hybrid and
// Unified), as in runc's state.json.
const UnifiedKey = ""

// State is what the runtime keeps in state.json to rebuild the Manager
// cheaply (Load does no I/O).
type State struct {
	Mode Mode `json:"mode"`
	// Paths maps a v1 controller name ("cpu", "memory", "name=systemd", ...)
	// to its directory, and UnifiedKey to the cgroup2 directory: the
	// hierarchies the container is in.
	Paths map[string]string `json:"paths"`
	// Deferred (Hybrid only) maps the v1 controllers the container is not
	// in yet to the directory it would get there: Update creates and joins
	// one when a limit for it is first set, and then moves it to Paths.
	Deferred map[string]string `json:"deferred,omitempty"`
	// Created lists the directories Create made, parents first; Destroy
	// removes exactly these.
	Created []string `json:"created,omitempty"`
}

// Manager is a container's cgroup.
type Manager interface {
	// Create makes the cgroup directories (joining existing ones is fine)
	// and applies r. On error nothing it created is left behind.
	Create(r *specs.LinuxResources) error
	// CgroupFD opens the cgroup2 directory for clone3 CLONE_INTO_CGROUP
	// (syscall.SysProcAttr.UseCgroupFD). ok is true in Unified mode, where
	// it places the child in every controller at once, and in Hybrid mode,
	// where it places it in the unified cgroup without a migration (Enter
	// then adds the v1 hierarchies in use, if any). ok is false in Legacy
	// mode. The caller closes fd.
	CgroupFD() (fd int, ok bool, err error)
	// Enter moves pid into the cgroup in every hierarchy in use; where
	// /proc/PID/cgroup shows it already there (cloned in with CgroupFD) it
	// writes nothing.
	Enter(pid int) error
	// Update applies r to a running container (`hako update`). On a
	// Hybrid host it may join v1 hierarchies (State changes: save it).
	Update(r *specs.LinuxResources) error
	// Freeze stops every process in the cgroup and waits until it is frozen.
	Freeze() error
	// Thaw resumes a frozen cgroup.
	Thaw() error
	// FreezerState is "FROZEN", "FREEZING" or "THAWED".
	FreezerState() (string, error)
	// Pids lists the processes in the cgroup and its descendants.
	Pids() ([]int, error)
	// Stats reads usage counters (the data of runc's `events --stats`).
	Stats() (*Stats, error)
	// OOMEvents delivers a value each time the kernel OOM-kills in the
	// cgroup; the channel closes when ctx ends or the cgroup is removed.
	OOMEvents(ctx context.Context) (<-chan struct{}, error)
	// OOMKills is the number of OOM kills in the cgroup so far
	// (ErrNotSupported without a memory controller).
	OOMKills() (uint64, error)
	// Destroy removes the directories Create and Update made, deepest
	// first; it kills nothing and may be called again.
	Destroy() error
	// State is what Load needs.
	State() State
}

// New resolves the runtime-spec linux.cgroupsPath for container id.
//
// Per config-linux.md "Cgroups path": an absolute path is taken relative to
// each hierarchy's mount point; a relative path is relative to the cgroup the
// calling process is in, per hierarchy (so on this host the memory cgroup may
// land under /process_api/... while cpu lands under /). An empty path means
// the relative path "<id>", which is what runc does with the cgroupfs driver:
// the container's cgroup nests under the caller's. A path that would climb
// above a hierarchy's root with ".." is rejected.
func New(cgroupsPath, id string, opts Options) (Manager, error) {
	root := opts.root()
	mode, err := DetectMode(root)
	if err != nil {
		return nil, err
	}
	p := cgroupsPath
	if p == "" {
		if id == "" || id == "." || id == ".." || containsSlash(id) {
			return nil, fmt.Errorf("%w: container id %q as cgroup name", ErrInvalid, id)
		}
		p = id
	}
	self, err := readSelfCgroup(opts.ProcSelfCgroup)
	if err != nil {
		return nil, err
	}
	m := &manager{mode: mode, root: root, rootless: opts.Rootless, v1: map[string]string{}}
	if mode == Hybrid {
		m.deferred = map[string]string{}
	}
	if mode != Unified {
		for _, h := range self.v1 {
			mnt := v1Mount(root, h.controllers)
			if mnt == "" {
				continue // hierarchy not mounted under root: not ours to manage
			}
			inner, err := resolve(p, h.path)
			if err != nil {
				return nil, err
			}
			for _, c := range h.controllers {
				switch {
				case mode == Legacy:
					m.v1[c] = mnt + inner
				case slices.Contains(hybridV1, c):
					m.deferred[c] = mnt + inner
				}
			}
		}
	}
	switch mode {
	case Hybrid:
		inner, err := resolve(p, self.unified)
		if err != nil {
			return nil, err
		}
		m.unified = filepath.Join(root, "unified") + inner
	case Unified:
		inner, err := resolve(p, self.unified)
		if err != nil {
			return nil, err
		}
		m.unified = root + inner
	}
	if len(m.v1) == 0 && m.unified == "" {
		return nil, fmt.Errorf("%w: no cgroup hierarchy mounted under %s", ErrNotSupported, root)
	}
	return m, nil
}

// hybridV1 are the v1 controllers a container on a Hybrid host may join:
// those with linux.resources fields. devices is replaced by the eBPF filter
// on the unified cgroup, freezer by cgroup.freeze there, and named
// hierarchies (name=systemd) only track processes, which the unified cgroup
// does.
var hybridV1 = []string{"memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "hugetlb", "net_cls", "net_prio", "rdma"}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

// Load rebuilds the Manager of a container from its State without touching
// the filesystem. Every path must lie inside the cgroup root: state.json is a
// file on disk and must not become a way to write elsewhere.
func Load(st State, opts Options) (Manager, error) {
	root := opts.root()
	switch st.Mode {
	case Legacy, Hybrid, Unified:
	default:
		return nil, fmt.Errorf("%w: mode %d in cgroup state", ErrInvalid, int(st.Mode))
	}
	m := &manager{mode: st.Mode, root: root, rootless: opts.Rootless, v1: map[string]string{}}
	for k, v := range st.Paths {
		if k == UnifiedKey {
			if st.Mode == Legacy {
				return nil, fmt.Errorf("%w: cgroup2 path in legacy state", ErrInvalid)
			}
			m.unified = v
		} else {
			m.v1[k] = v
		}
	}
	for k, v := range st.Paths {
		// The cgroup2 path in Hybrid mode lives under unified/, v1 paths
		// never do.
		if !m.cgroupDir(v) || m.mode == Hybrid && (k == UnifiedKey) != m.onUnified(v) {
			return nil, fmt.Errorf("%w: %s is not a cgroup below %s", ErrInvalid, v, root)
		}
	}
	if len(st.Deferred) > 0 {
		if st.Mode != Hybrid {
			return nil, fmt.Errorf("%w: deferred v1 controllers in %s state", ErrInvalid, st.Mode)
		}
		m.deferred = map[string]string{}
		for k, v := range st.Deferred {
			if k == UnifiedKey || !m.cgroupDir(v) || m.onUnified(v) {
				return nil, fmt.Errorf("%w: %s is not a v1 cgroup below %s", ErrInvalid, v, root)
			}
			if _, dup := m.v1[k]; dup {
				return nil, fmt.Errorf("%w: controller %s both joined and deferred", ErrInvalid, k)
			}
			m.deferred[k] = v
		}
	}
	for _, c := range st.Created {
		if !m.cgroupDir(c) {
			return nil, fmt.Errorf("%w: %s is not a cgroup below %s", ErrInvalid, c, root)
		}
	}
	m.created = append([]string(nil), st.Created...)
	return m, nil
}

// cgroupDir reports whether d can be a container's cgroup: a clean path
// strictly below a hierarchy's root, never a mount point or the tmpfs that
// holds them. This is what keeps Create's mkdir and Destroy's rmdir (which
// removes nested cgroups recursively) inside the cgroup filesystem whatever
// state.json says.
func (m *manager) cgroupDir(d string) bool {
	if !within(m.root, d) {
		return false
	}
	if m.mode == Unified {
		return true
	}
	// root/<hierarchy mount>/<cgroup...>; in Hybrid the cgroup2 mount is
	// root/unified.
	rel, _ := filepath.Rel(m.root, d)
	_, rest, _ := strings.Cut(rel, "/")
	return rest != ""
}

// onUnified reports whether d lies in the Hybrid cgroup2 mount.
func (m *manager) onUnified(d string) bool {
	return m.mode == Hybrid && strings.HasPrefix(d, filepath.Join(m.root, "unified")+"/")
}

// within reports whether p is a clean absolute path strictly below root.
func within(root, p string) bool {
	if p != filepath.Clean(p) || !filepath.IsAbs(p) {
		return false
	}
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && rel != ".." && !hasDotDotPrefix(rel)
}

func hasDotDotPrefix(rel string) bool {
	return len(rel) >= 3 && rel[:3] == "../"
}

// isNotExist hides the difference between fs errors and raw errnos.
func isNotExist(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT)
}
