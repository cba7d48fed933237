package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Id-mapped mounts (runtime-spec config.md "Mounts": uidMappings,
// gidMappings and the options "idmap" / "ridmap") are made in two halves,
// as runc 1.2 does:
//
//   - the runtime, still in the host's namespaces, calls OpenIDMapped: it
//     makes the mount detached (open_tree(OPEN_TREE_CLONE) or fsmount) and
//     sets MOUNT_ATTR_IDMAP on it. mount_setattr(2) allows that only on a
//     detached mount, and only to a caller with CAP_SYS_ADMIN over the user
//     namespace of the mount's file system, the host's: init, already in
//     its own user namespace, cannot;
//   - init receives the mount's fd and Prepare attaches it like any other
//     mount, at the target resolved safely inside the rootfs, in the order
//     of the spec.

// IDMapped reports whether m asks for an id-mapped mount: it has
// uidMappings/gidMappings, or the option "idmap" or "ridmap".
func IDMapped(m *specs.Mount) bool {
	return len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 ||
		slices.Contains(m.Options, "idmap") || slices.Contains(m.Options, "ridmap")
}

// OpenIDMapped returns a detached mount for m, id-mapped through the user
// namespace userns (an fd on a /proc/PID/ns/user file whose uid_map and
// gid_map are the mount's mappings). Relative bind sources are taken
// relative to base (the bundle). The mount carries m's per-mount attributes
// already (ro, nosuid, ...); Prepare only attaches it.
//
// "idmap" maps the top mount only, "ridmap" every mount of an rbind tree
// (mount_setattr AT_RECURSIVE); mappings without either option are applied
// like "idmap", as runc does (config.md: the options SHOULD be given).
func OpenIDMapped(m *specs.Mount, base string, userns int) (_ int, err error) {
	o, err := parseOptions(m.Options)
	if err != nil {
		return -1, err
	}
	if m.Type == "bind" {
		o.bind = true
	}
	var tree int
	switch {
	case o.remount:
		return -1, fmt.Errorf("%w: an id-mapped mount cannot be a remount", ErrInvalid)
	case o.bind:
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(base, src)
		}
		if tree, err = cloneTree(src, o.rbind); err != nil {
			return -1, fmt.Errorf("open_tree %s: %w", src, err)
		}
		defer func() {
			if err != nil {
				unix.Close(tree)
			}
		}()
		if err := setAttr(tree, o.attr, false); err != nil {
			return -1, err
		}
		if err := setAttr(tree, o.rattr, true); err != nil {
			return -1, err
		}
	case m.Type == "" || m.Type == "cgroup" || m.Type == "proc":
		return -1, fmt.Errorf("%w: file system type %q cannot be id-mapped", ErrInvalid, m.Type)
	default:
		if tree, err = newFS(m.Type, m.Source, o.sbFlags, o.data, o.attr.set|o.rattr.set); err != nil {
			return -1, err
		}
		defer func() {
			if err != nil {
				unix.Close(tree)
			}
		}()
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if o.ridmap {
		flags |= unix.AT_RECURSIVE
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns)}
	if err := unix.MountSetattr(tree, "", flags, attr); err != nil {
		return -1, idmapError(err)
	}
	return tree, nil
}

// idmapError says why the kernel refused MOUNT_ATTR_IDMAP, in the cases
// mount_setattr(2) documents.
func idmapError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("mount_setattr(MOUNT_ATTR_IDMAP): %w (id-mapped mounts need CAP_SYS_ADMIN in the host's user namespace: run as root)", err)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("mount_setattr(MOUNT_ATTR_IDMAP): %w (the file system does not support id-mapped mounts, or a mount of the tree is already id-mapped)", err)
	}
	return fmt.Errorf("mount_setattr(MOUNT_ATTR_IDMAP): %w", err)
}

// placeIDMapped attaches a mount made by OpenIDMapped at dest.
func (p *preparer) placeIDMapped(tree int, dest string, o mountOpts) error {
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return fmt.Errorf("stat id-mapped mount: %w", err)
	}
	o.tmpcopyup = false
	return p.place(tree, dest, st.Mode&unix.S_IFMT == unix.S_IFDIR, o)
}
