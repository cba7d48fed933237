package rootfs

import (
	"fmt"
	"sort"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Pivot makes rootfs the new "/" of the mount namespace and leaves the
// working directory at "/".
//
// With pivot_root(2) it uses the "pivot_root(".", ".")" idiom (documented in
// the man page): the old root ends up stacked on top of the new one at "/",
// is made a recursive slave so that unmounting it cannot propagate to the
// host, and is detached. No directory for the old root is needed in the
// image, so nothing is written into it.
//
// With noPivot (runc --no-pivot, for ramfs roots where pivot_root is
// impossible) the rootfs is moved onto "/" with MS_MOVE and chroot'ed into.
// The host's other mounts are detached first where the kernel allows it:
// chroot alone does not hide them from a process with CAP_SYS_CHROOT.
func Pivot(rootfs string, noPivot bool) error {
	rootfs, err := hostPath(rootfs)
	if err != nil {
		return err
	}
	if noPivot {
		return moveRoot(rootfs)
	}
	oldRoot, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	// The old root is now mounted over the new one, and "." (still the new
	// root's directory) reaches it through the mount stack via oldRoot.
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

func moveRoot(rootfs string) error {
	// Detaching host mounts must not reach the host through shared
	// propagation; Finish reapplies linux.rootfsPropagation afterwards.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / rslave: %w", err)
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	// Deepest first, so that children go before their parents.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		mp := m.Mountpoint
		if mp == "/" || mp == rootfs || isUnder(mp, rootfs) || isUnder(rootfs, mp) {
			continue
		}
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			// Locked mounts (user namespaces) cannot go; procfs and sysfs
			// ones are the dangerous ones, cover those.
			if m.FSType == "proc" || m.FSType == "sysfs" {
				if err := unix.Mount("tmpfs", mp, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=000"); err != nil {
					return fmt.Errorf("hide host %s at %s: %w", m.FSType, mp, err)
				}
			}
		}
	}
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir rootfs: %w", err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}
