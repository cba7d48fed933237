package rootfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupMount handles a spec mount of type "cgroup" (config-linux.md
// "Default File Systems" lists /sys/fs/cgroup). What gets mounted depends on
// the host:
//   - cgroup v2 (unified): a cgroup2 filesystem; in a cgroup namespace it
//     shows the container's own cgroup as its root;
//   - cgroup v1 (and hybrid): a tmpfs at dest, then one directory per
//     hierarchy the process belongs to: a new cgroup filesystem with that
//     hierarchy's controllers inside a cgroup namespace, otherwise a bind of
//     the host's directory for the container's own cgroup (as runc does);
//     on hybrid hosts the v2 tree goes to "unified".
func (p *preparer) cgroupMount(m *specs.Mount, dest string, o mountOpts) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("statfs host /sys/fs/cgroup: %w", err)
	}
	cgroupNS := p.hasNamespace(specs.CgroupNamespace)
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		tree, err := newFS("cgroup2", "cgroup2", nil, o.data, o.attr.set|o.rattr.set)
		if err != nil && !cgroupNS {
			// No permission for a new cgroup2 superblock (a user namespace
			// without a cgroup namespace): bind the host's tree, as runc.
			tree, err = cloneTree("/sys/fs/cgroup", true)
			if err == nil {
				err = setAttr(tree, o.attr, false)
			}
		}
		if err != nil {
			return err
		}
		defer unix.Close(tree)
		return p.place(tree, dest, true, o)
	}
	return p.cgroupV1(dest, o, cgroupNS)
}

func (p *preparer) hasNamespace(t specs.LinuxNamespaceType) bool {
	for _, ns := range p.linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// cgroupLine is one line of /proc/self/cgroup: "id:controllers:path".
type cgroupLine struct {
	controllers string // "cpu,cpuacct", "name=systemd", "" for v2
	path        string
}

// readProcCgroup reads the calling thread's cgroups: a cgroup namespace that
// init unshared on its locked thread is only visible there, not through
// /proc/self (the thread-group leader). Before pivot_root this is the host's
// /proc, which is trusted.
func readProcCgroup() ([]cgroupLine, error) {
	data, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, err
	}
	var out []cgroupLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		out = append(out, cgroupLine{controllers: parts[1], path: parts[2]})
	}
	return out, sc.Err()
}

func (p *preparer) cgroupV1(dest string, o mountOpts, cgroupNS bool) error {
	lines, err := readProcCgroup()
	if err != nil {
		return fmt.Errorf("read /proc/thread-self/cgroup: %w", err)
	}
	mounts, err := p.mountTable()
	if err != nil {
		return err
	}
	// The tmpfs stays writable until the hierarchy directories exist.
	ro := o.attr.set&unix.MOUNT_ATTR_RDONLY != 0
	tmpAttr := o.attr
	tmpAttr.set &^= unix.MOUNT_ATTR_RDONLY
	tmp, err := newFS("tmpfs", "tmpfs", nil, []string{"mode=755"}, tmpAttr.set)
	if err != nil {
		return err
	}
	defer unix.Close(tmp)
	if err := p.place(tmp, dest, true, mountOpts{}); err != nil {
		return err
	}

	for _, l := range lines {
		var (
			fstype, name string
			opts         []string
		)
		if l.controllers == "" {
			fstype, name = "cgroup2", "unified"
		} else if !p.joinedV1(l.controllers) {
			continue
		} else {
			fstype, name = "cgroup", strings.TrimPrefix(l.controllers, "name=")
			opts = strings.Split(l.controllers, ",")
		}
		// The host's mount of this hierarchy names the directory (it may
		// hold several controllers) and, without a cgroup namespace, is
		// where the container's cgroup is bound from. In a cgroup namespace
		// mountinfo shows roots relative to the namespace, so any mount of
		// the hierarchy will do.
		var src string
		for _, mi := range mounts {
			if mi.FSType != fstype || (fstype == "cgroup" && !hasAll(mi.VFSOptions, opts)) {
				continue
			}
			rel, ok := relCgroup(mi.Root, l.path)
			if !ok && !cgroupNS {
				continue
			}
			src = path.Join(mi.Mountpoint, rel)
			if fstype == "cgroup" {
				name = path.Base(mi.Mountpoint)
			}
			break
		}
		if src == "" {
			continue // hierarchy not mounted on the host: nothing to show
		}
		var tree int
		if cgroupNS {
			tree, err = newFS(fstype, fstype, nil, opts, o.attr.set|o.rattr.set)
		} else {
			tree, err = cloneTree(src, false)
			if err == nil {
				err = setAttr(tree, o.attr, false)
			}
		}
		if err != nil {
			closeFd(tree)
			return fmt.Errorf("cgroup %s: %w", l.controllers, err)
		}
		err = p.place(tree, path.Join(dest, name), true, mountOpts{propagation: o.propagation, propRec: o.propRec})
		unix.Close(tree)
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", l.controllers, err)
		}
		// "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
		if strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				if err := unix.Symlinkat(name, tmp, c); err != nil && err != unix.EEXIST {
					return fmt.Errorf("cgroup symlink %s: %w", c, err)
				}
			}
		}
	}
	if ro {
		return setAttr(tmp, attrChange{set: unix.MOUNT_ATTR_RDONLY}, false)
	}
	return nil
}

// joinedV1 reports whether the container is in the v1 hierarchy with these
// controllers ("cpu,cpuacct"): always when the runtime did not say.
func (p *preparer) joinedV1(controllers string) bool {
	if p.v1Joined == nil {
		return true
	}
	for _, c := range strings.Split(controllers, ",") {
		for _, j := range p.v1Joined {
			if c == j {
				return true
			}
		}
	}
	return false
}

// hasAll reports whether the comma-separated superblock options list every
// one of want.
func hasAll(vfsOptions string, want []string) bool {
	have := strings.Split(vfsOptions, ",")
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// relCgroup turns a cgroup path from /proc/self/cgroup into a path below a
// mount of that hierarchy whose root is mountRoot.
func relCgroup(mountRoot, cgPath string) (string, bool) {
	if mountRoot == "/" {
		return cgPath, true
	}
	if cgPath == mountRoot {
		return "/", true
	}
	if strings.HasPrefix(cgPath, mountRoot+"/") {
		return strings.TrimPrefix(cgPath, mountRoot), true
	}
	return "", false
}
