package rootfs

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Finish completes the root after Pivot (runc applies the same steps in the
// same order): linux.readonlyPaths, linux.maskedPaths, root.readonly, then
// linux.rootfsPropagation on the new "/". Paths are resolved inside the new
// root with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS); paths that do not
// exist are skipped, as config-linux.md allows for both lists.
func Finish(s *specs.Spec) error {
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.Close()
	var lx specs.Linux
	if s.Linux != nil {
		lx = *s.Linux
	}
	for _, p := range lx.ReadonlyPaths {
		if err := r.readonlyPath(p); err != nil {
			return fmt.Errorf("readonly path %s: %w", p, err)
		}
	}
	if len(lx.MaskedPaths) > 0 {
		null, err := r.openDevNull()
		if err != nil {
			return fmt.Errorf("masked paths: %w", err)
		}
		defer unix.Close(null)
		for _, p := range lx.MaskedPaths {
			if err := r.maskPath(p, null); err != nil {
				return fmt.Errorf("masked path %s: %w", p, err)
			}
		}
	}
	if s.Root != nil && s.Root.Readonly {
		// Only the read-only attribute changes: nosuid, nodev and the rest
		// of the root mount stay as they are (a plain MS_REMOUNT would reset
		// them, and fail for locked ones in a user namespace).
		if err := setAttr(r.fd(), attrChange{set: unix.MOUNT_ATTR_RDONLY}, false); err != nil {
			return fmt.Errorf("read-only root: %w", err)
		}
	}
	if lx.RootfsPropagation != "" {
		// Prepare applied it to the old "/", which is gone; the new "/"
		// (the rootfs mount) gets it now (runc does the same after pivot).
		flag, err := rootPropagation(lx.RootfsPropagation)
		if err != nil {
			return err
		}
		if err := unix.Mount("", "/", "", flag, ""); err != nil {
			return fmt.Errorf("rootfs propagation %q: %w", lx.RootfsPropagation, err)
		}
	}
	return nil
}

// readonlyPath binds the path onto itself (recursively) and makes the whole
// bound tree read-only. The clone is taken from the in-root fd, so the bind
// covers exactly the object that was resolved.
func (r *root) readonlyPath(p string) error {
	fd, err := r.lookup(p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tree, err := cloneFd(fd, true)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	// Recursive, where runc changes only the top mount: a read-only path
	// should not stay writable through a submount.
	if err := setAttr(tree, attrChange{set: unix.MOUNT_ATTR_RDONLY}, true); err != nil {
		return err
	}
	if err := attach(tree, fd); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return r.verify(tree, p)
}

// openDevNull opens the container's /dev/null and proves it is the null
// device: a character device 1:3, checked on the open fd. A /dev/null that
// is a symlink, a regular file or another device (CVE-2025-31133) is
// refused rather than bound over masked paths.
func (r *root) openDevNull() (int, error) {
	fd, err := openat2(r.fd(), "/dev/null", unix.O_PATH|unix.O_CLOEXEC,
		unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return -1, fmt.Errorf("%w: /dev/null is a symlink (%v)", ErrUnsafe, err)
	}
	if err != nil {
		return -1, fmt.Errorf("open /dev/null: %w", err)
	}
	if err := isDevNull(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func isDevNull(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return fmt.Errorf("%w: /dev/null is not the null device (mode %#o, rdev %d:%d)",
			ErrUnsafe, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

// maskPath hides a path (config-linux.md "Masked Paths"): a file gets the
// verified /dev/null bound over it, a directory a read-only empty tmpfs.
func (r *root) maskPath(p string, null int) error {
	fd, err := r.lookup(p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	var tree int
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		tree, err = newFS("tmpfs", "tmpfs", []string{"ro"}, []string{"mode=0555", "nr_inodes=1"},
			unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	} else {
		tree, err = cloneFd(null, false)
	}
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := attach(tree, fd); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return r.verify(tree, p)
}
