// Package rootfs builds a container's root filesystem from inside the
// container's new mount namespace: the mounts of the spec, /dev, pivot_root,
// masked and read-only paths, /dev/console and sysctls. It is called by
// "hako init" (internal/linux), in this order:
//
//	Prepare(spec, rootfs)   before pivot_root: propagation, rootfs bind, mounts, devices
//	Pivot(rootfs, noPivot)  pivot_root(".", ".") or MS_MOVE + chroot
//	SetupConsoleFD(slave)   when process.terminal is set (or SetupConsole(path))
//	WriteSysctls(spec)      linux.sysctl
//	Finish(spec)            readonlyPaths, maskedPaths, root.readonly, propagation
//
// One function runs in the runtime instead, in the host's namespaces:
// OpenIDMapped makes the detached mount of an id-mapped mount entry (the
// kernel allows MOUNT_ATTR_IDMAP only to a caller privileged over the
// host's user namespace); Prepare attaches it (Options.IDMapped).
//
// # Safety
//
// The rootfs comes from an image and is untrusted: any path in it may be a
// symlink pointing out of it, and (with shared volumes) may change while we
// work. So no container path is ever handed to mount(2). Each destination is
// resolved with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) relative to an
// fd on the root (missing directories are made one component at a time with
// mkdirat on held fds and re-opened with RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV),
// giving an O_PATH fd on the target; the mount is prepared detached and
// attached to that fd. Destinations that resolve onto procfs are refused
// (except lxcfs-style files), and only a procfs may sit at /proc.
//
// Writes to /proc (sysctls) go through a private procfs instance obtained
// with pathrs-lite's procfs package, never through the container's /proc.
//
// # Why the new mount API
//
// The alternative, mount(2) onto /proc/thread-self/fd/N, needs a trusted
// /proc in every step, and after the rootfs is in place the /proc in reach is
// the container's. With the new mount API (Linux 5.2+, mount_setattr 5.12+):
//
//   - open_tree(OPEN_TREE_CLONE) makes bind mounts, fsopen/fsconfig/fsmount
//     new filesystems, both as detached mounts that nobody else can see;
//   - mount_setattr sets ro/nosuid/nodev/... on the detached mount before it
//     is visible, and only the attributes asked for (no bind-then-remount
//     window, no clobbering of flags locked in a user namespace);
//   - move_mount(MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH) attaches
//     it to the target fd: no path lookup happens at attach time at all;
//   - fsconfig reports why a filesystem refused its options.
//
// After attaching, the destination is resolved again and its mount id
// (statx STATX_MNT_ID_UNIQUE) must be the new mount's. Objects bound from
// inside the container (/dev/null for masking, the pty for the console) are
// opened once, checked on the fd (char device 1:3; devpts), and cloned from
// that same fd.
//
// Host paths (bind sources, the rootfs path itself) are the caller's and are
// used as given.
package rootfs
