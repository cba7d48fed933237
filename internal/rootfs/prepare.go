package rootfs

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Prepare builds the container's mount tree under rootfs, in the container's
// new mount namespace and before pivot_root:
//
//  1. "/" gets linux.rootfsPropagation (runc's default when unset: rslave),
//     so nothing done below propagates back to the host;
//  2. the parent mount of rootfs is made private if it is still shared
//     (pivot_root(2) refuses a new root whose parent is shared);
//  3. rootfs is rbind-mounted onto itself so that it is a mount point;
//  4. every spec "mounts" entry is mounted, in order (runtime-spec config.md
//     "Mounts": "The runtime MUST mount entries in the listed order");
//  5. linux.devices are created, and, when /dev is a tmpfs from the spec, the
//     default devices and /dev symlinks (config-linux.md "Default Devices",
//     "Default File Systems").
func Prepare(s *specs.Spec, rootfs string) error {
	return PrepareWith(s, rootfs, Options{})
}

// Options tune Prepare.
type Options struct {
	// BeforeCgroup, if set, is called once before the first "cgroup"
	// mount. Init uses it to wait for the runtime to move it into its
	// cgroup only when that is needed (the cgroup mount shows the
	// container's own cgroup), so that the kernel's slow cgroup migration
	// overlaps with the mounts before it.
	BeforeCgroup func() error
	// CgroupV1, when not nil, lists the v1 controllers the container's
	// process is in ("memory", "cpu", "name=systemd", ...); the cgroup
	// mount then shows only those hierarchies (and cgroup2). On hybrid
	// hosts the runtime joins v1 hierarchies only for configured limits:
	// any other hierarchy would show the runtime's own cgroup, that is a
	// part of the host's tree.
	CgroupV1 []string
	// IDMapped are the id-mapped mounts the runtime made for this
	// container (OpenIDMapped), by index in spec.Mounts. PrepareWith
	// attaches them in the spec's order and closes every fd.
	IDMapped map[int]int
}

// PrepareWith is Prepare with options.
func PrepareWith(s *specs.Spec, rootfs string, opts Options) error {
	rootfs, err := hostPath(rootfs)
	if err != nil {
		return err
	}
	var lx specs.Linux
	if s.Linux != nil {
		lx = *s.Linux
	}
	defer func() {
		for _, fd := range opts.IDMapped {
			unix.Close(fd)
		}
	}()
	p := &preparer{linux: &lx, rootfs: rootfs, beforeCgroup: opts.BeforeCgroup, v1Joined: opts.CgroupV1}
	if err := p.prepareRoot(); err != nil {
		return err
	}
	p.root, err = openRoot(rootfs)
	if err != nil {
		return err
	}
	defer p.root.Close()
	for i := range s.Mounts {
		m := &s.Mounts[i]
		tree, ok := opts.IDMapped[i]
		if !ok {
			tree = -1
		}
		if err := p.mount(m, tree); err != nil {
			return fmt.Errorf("mount %s on %s (type %q): %w", m.Source, m.Destination, m.Type, err)
		}
	}
	return p.createDevices()
}

// hostPath makes the rootfs path absolute and symlink-free. It is the
// caller's (trusted) host path; resolving it lets it be compared with the
// mount points of mountinfo.
func hostPath(rootfs string) (string, error) {
	abs, err := filepath.Abs(rootfs)
	if err != nil {
		return "", fmt.Errorf("rootfs path: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("rootfs path: %w", err)
	}
	return real, nil
}

// preparer carries what Prepare learns along the way.
type preparer struct {
	linux  *specs.Linux
	rootfs string
	root   *root

	mounts []*mountinfo.Info // host mount table, read at most once

	devMount  uint64 // mount id of the spec's tmpfs at /dev, 0 if none
	devRO     bool   // that tmpfs asked for "ro": applied after the devices
	devBind   bool   // /dev is bound from elsewhere: create no devices
	procMount bool   // the spec mounts proc at /proc
	ptsMount  bool   // the spec mounts devpts at /dev/pts

	beforeCgroup func() error // Options.BeforeCgroup, cleared once called
	v1Joined     []string     // Options.CgroupV1
}

// mountTable reads /proc/self/mountinfo once per Prepare, only if a step
// needs it (a shared rootfs parent, cgroup v1 hierarchies).
func (p *preparer) mountTable() ([]*mountinfo.Info, error) {
	if p.mounts == nil {
		m, err := mountinfo.GetMounts(nil)
		if err != nil {
			return nil, fmt.Errorf("read mountinfo: %w", err)
		}
		p.mounts = m
	}
	return p.mounts, nil
}

// rootPropagation maps linux.rootfsPropagation (config-linux.md "Rootfs
// Mount Propagation": slave, private, shared or unbindable; runc also takes
// the r-prefixed forms) to mount flags.
func rootPropagation(v string) (uintptr, error) {
	if v == "" {
		return unix.MS_SLAVE | unix.MS_REC, nil
	}
	p, ok := propagationOptions[v]
	if !ok {
		return 0, fmt.Errorf("linux.rootfsPropagation %q: %w", v, ErrInvalid)
	}
	f := uintptr(p.flag)
	if p.rec {
		f |= unix.MS_REC
	}
	return f, nil
}

func (p *preparer) prepareRoot() error {
	flag, err := rootPropagation(p.linux.RootfsPropagation)
	if err != nil {
		return err
	}
	if flag&unix.MS_UNBINDABLE != 0 {
		// An unbindable "/" would make the rootfs bind below fail; use the
		// default now, Finish applies "unbindable" to the new root.
		flag = unix.MS_SLAVE | unix.MS_REC
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return fmt.Errorf("set propagation of / (%q): %w", p.linux.RootfsPropagation, err)
	}
	// After a recursive slave/private/unbindable, no mount of this namespace
	// is shared, and the mountinfo read below is not needed.
	if flag&unix.MS_REC == 0 || flag&unix.MS_SHARED != 0 {
		if err := p.privatizeParent(); err != nil {
			return err
		}
	}
	if err := unix.Mount(p.rootfs, p.rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind rootfs %s onto itself: %w", p.rootfs, err)
	}
	return nil
}

// privatizeParent makes the mount holding rootfs private if it is shared,
// so that binding rootfs onto itself does not propagate to the host and
// pivot_root(2) accepts it (it fails with EINVAL on a shared parent).
func (p *preparer) privatizeParent() error {
	mounts, err := p.mountTable()
	if err != nil {
		return err
	}
	var parent *mountinfo.Info
	for _, m := range mounts {
		if m.Mountpoint == p.rootfs || isUnder(p.rootfs, m.Mountpoint) {
			if parent == nil || len(m.Mountpoint) >= len(parent.Mountpoint) {
				parent = m
			}
		}
	}
	if parent == nil || !strings.Contains(parent.Optional, "shared:") {
		return nil
	}
	if err := unix.Mount("", parent.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make rootfs parent mount %s private: %w", parent.Mountpoint, err)
	}
	return nil
}

// isUnder reports whether p is strictly below dir (both clean, absolute).
func isUnder(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// cleanDest makes a spec destination absolute and clean. runtime-spec says it
// MUST be absolute; like runc, a relative one is taken relative to the root.
func cleanDest(d string) string {
	return path.Clean("/" + d)
}

// procAllowed are the destinations inside /proc a spec may mount over: the
// files lxcfs and similar tools replace (runc allows the same list).
var procAllowed = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true,
	"/proc/stat": true, "/proc/swaps": true, "/proc/uptime": true,
	"/proc/loadavg": true, "/proc/slabinfo": true, "/proc/net/dev": true,
	"/proc/sys/kernel/ns_last_pid": true,
}

// checkProcTarget refuses mounts whose target (already resolved, fd) lies on
// a procfs unless the destination is one of procAllowed: a symlink such as
// /data -> /proc/self/attr would otherwise let a volume cover LSM or sysctl
// files (CVE-2019-16884, CVE-2023-27561).
func checkProcTarget(fd int, dest string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs target: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC || procAllowed[dest] || strings.HasPrefix(dest, "/proc/pressure/") {
		return nil
	}
	return fmt.Errorf("%w: destination %s is on procfs, only %s and some lxcfs files may be mounted there", ErrUnsafe, dest, "/proc")
}

// requireProcfs refuses to put anything but a procfs at /proc: the init and
// the tools that run later write to /proc/self/attr, /proc/self/oom_score_adj
// and the like through it, and a fake /proc from a volume would take those
// writes (CVE-2019-19921, CVE-2019-16884).
func requireProcfs(tree int) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(tree, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%w: only a procfs may be mounted at /proc (got filesystem type %#x)", ErrUnsafe, st.Type)
	}
	return nil
}

// mount mounts one spec entry; idmapped is the mount the runtime made for
// it when it is id-mapped, -1 otherwise.
func (p *preparer) mount(m *specs.Mount, idmapped int) error {
	dest := cleanDest(m.Destination)
	if dest == "/" {
		return fmt.Errorf("%w: a mount over the container's / is not supported", ErrInvalid)
	}
	o, err := parseOptions(m.Options)
	if err != nil {
		return err
	}
	if (o.idmap || len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0) != (idmapped >= 0) {
		return fmt.Errorf("%w: id-mapped mount not made by the runtime", ErrInvalid)
	}
	if m.Type == "bind" {
		o.bind = true
	}
	if o.bind || m.Type != "tmpfs" {
		o.tmpcopyup = false // an extension for tmpfs only (runc, crun)
	}
	switch {
	case idmapped >= 0:
		err = p.placeIDMapped(idmapped, dest, o)
	case o.bind:
		err = p.bindMount(m, dest, o)
	case o.remount:
		err = p.remount(dest, o)
	case m.Type == "cgroup":
		if p.beforeCgroup != nil {
			wait := p.beforeCgroup
			p.beforeCgroup = nil
			if err := wait(); err != nil {
				return err
			}
		}
		err = p.cgroupMount(m, dest, o)
	case m.Type == "":
		err = fmt.Errorf("%w: mount has no type and is not a bind mount", ErrInvalid)
	default:
		err = p.fsMount(m, dest, o)
	}
	if err != nil {
		return err
	}
	p.note(m, dest, o)
	return nil
}

// note remembers what later steps need to know about /dev, /proc, /dev/pts.
func (p *preparer) note(m *specs.Mount, dest string, o mountOpts) {
	switch dest {
	case "/dev":
		p.devBind = o.bind
		if !o.bind && m.Type == "tmpfs" {
			p.devRO = o.attr.set&unix.MOUNT_ATTR_RDONLY != 0
		} else {
			p.devMount, p.devRO = 0, false
		}
	case "/proc":
		p.procMount = m.Type == "proc" || o.bind
	case "/dev/pts":
		p.ptsMount = m.Type == "devpts"
	}
}

// bindMount: open_tree(OPEN_TREE_CLONE) copies the source (AT_RECURSIVE for
// rbind), the attributes are set on the still-detached copy (so the mount is
// never visible with the wrong flags, where runc binds and then remounts),
// and move_mount attaches it onto the safely resolved target.
func (p *preparer) bindMount(m *specs.Mount, dest string, o mountOpts) error {
	tree, err := cloneTree(m.Source, o.rbind)
	if err != nil {
		return fmt.Errorf("open_tree source: %w", err)
	}
	defer unix.Close(tree)
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("stat source: %w", err)
	}
	// The attribute flags of a bind are per mount; the "r" variants reach
	// every submount of an rbind. Only what the options name changes: the
	// source's other flags (and any locked in a user namespace) are kept.
	if err := setAttr(tree, o.attr, false); err != nil {
		return err
	}
	if err := setAttr(tree, o.rattr, true); err != nil {
		return err
	}
	return p.place(tree, dest, st.Mode&unix.S_IFMT == unix.S_IFDIR, o)
}

// place attaches a detached mount at dest inside the root, checks that it
// landed there, then applies the propagation options.
func (p *preparer) place(tree int, dest string, dir bool, o mountOpts) error {
	target, err := p.root.target(dest, dir)
	if err != nil {
		return fmt.Errorf("mount point: %w", err)
	}
	defer unix.Close(target)
	if err := checkProcTarget(target, dest); err != nil {
		return err
	}
	if dest == "/proc" {
		if err := requireProcfs(tree); err != nil {
			return err
		}
	}
	if o.tmpcopyup {
		if err := copyUp(target, tree); err != nil {
			return fmt.Errorf("tmpcopyup: %w", err)
		}
	}
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	if err := p.root.verify(tree, dest); err != nil {
		return err
	}
	return setPropagation(tree, o.propagation, o.propRec)
}

// fsMount mounts a new filesystem of m.Type (proc, sysfs, tmpfs, devpts,
// mqueue, cgroup2, overlay, ...) with m.Source and the data options.
func (p *preparer) fsMount(m *specs.Mount, dest string, o mountOpts) error {
	ro := o.attr.set&unix.MOUNT_ATTR_RDONLY != 0
	attrs, sbFlags := o.attr.set|o.rattr.set, o.sbFlags
	deferRO := dest == "/dev" && ro
	if deferRO {
		// Devices are created in /dev later; runc likewise remounts it
		// read-only only at the end.
		attrs &^= unix.MOUNT_ATTR_RDONLY
		sbFlags = without(sbFlags, "ro")
	}
	tree, err := newFS(m.Type, m.Source, sbFlags, o.data, attrs)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := p.place(tree, dest, true, o); err != nil {
		return err
	}
	if dest == "/dev" && m.Type == "tmpfs" {
		id, err := mountID(tree)
		if err != nil {
			return err
		}
		p.devMount = id
	}
	return nil
}

func without(list []string, s string) []string {
	out := list[:0:0]
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}

// remount changes the attributes of the mount already at dest ("remount"
// without "bind").
func (p *preparer) remount(dest string, o mountOpts) error {
	fd, err := p.root.lookup(dest)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := checkProcTarget(fd, dest); err != nil {
		return err
	}
	tree, err := openMountRoot(fd)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := setAttr(tree, o.attr, false); err != nil {
		return err
	}
	if err := setAttr(tree, o.rattr, true); err != nil {
		return err
	}
	return setPropagation(tree, o.propagation, o.propRec)
}

// openMountRoot checks that fd is the root of a mount (mount_setattr acts on
// the mount of its path, whatever dentry inside it is named).
func openMountRoot(fd int) (int, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &st); err != nil {
		return -1, err
	}
	if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && st.Attributes&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return -1, fmt.Errorf("%w: not a mount point", ErrInvalid)
	}
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}
