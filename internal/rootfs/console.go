package rootfs

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// devptsSuperMagic is DEVPTS_SUPER_MAGIC from linux/magic.h.
const devptsSuperMagic = 0x1cd1

// SetupConsole bind-mounts the pty slave slavePath (a path inside the
// container after Pivot, such as /dev/pts/0) onto /dev/console
// (config-linux.md "Default Devices": with process.terminal, /dev/console is
// set up "by bind mounting the pseudoterminal pty" ).
//
// The slave is opened inside the root and must be a character device on a
// devpts filesystem; /dev/console, created as an empty file if missing, must
// be a regular file or a character device, never a symlink: a /dev/console
// that points to, say, /proc/sys/kernel/core_pattern would otherwise get the
// pty mounted over it (CVE-2025-52565).
func SetupConsole(slavePath string) error {
	p := cleanDest(slavePath)
	if !strings.HasPrefix(p, "/dev/pts/") {
		return fmt.Errorf("console %s: %w: not under /dev/pts", slavePath, ErrInvalid)
	}
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.Close()
	slave, err := openat2(r.fd(), p, unix.O_PATH|unix.O_CLOEXEC,
		unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return fmt.Errorf("console: open %s: %w", p, err)
	}
	defer unix.Close(slave)
	if err := bindConsole(r, slave); err != nil {
		return fmt.Errorf("console %s: %w", p, err)
	}
	return nil
}

// SetupConsoleFD is SetupConsole for a pty slave already open, such as the
// fd ioctl(TIOCGPTPEER) returns: that very inode is bound onto /dev/console
// and no path is looked up for it at all. Preferred when the caller has it.
func SetupConsoleFD(slave int) error {
	r, err := openRoot("/")
	if err != nil {
		return err
	}
	defer r.Close()
	if err := bindConsole(r, slave); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

func bindConsole(r *root, slave int) error {
	if err := isPtySlave(slave); err != nil {
		return err
	}
	dev, err := r.mkdirAll("/dev")
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	defer unix.Close(dev)
	target, err := consoleTarget(dev)
	if err != nil {
		return fmt.Errorf("/dev/console: %w", err)
	}
	defer unix.Close(target)
	tree, err := cloneFd(slave, false)
	if err != nil {
		return fmt.Errorf("open_tree pty slave: %w", err)
	}
	defer unix.Close(tree)
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("bind pty slave onto /dev/console: %w", err)
	}
	return r.verify(tree, "/dev/console")
}

func isPtySlave(fd int) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return err
	}
	if sfs.Type != devptsSuperMagic {
		return fmt.Errorf("%w: not on a devpts filesystem", ErrUnsafe)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("%w: not a character device", ErrUnsafe)
	}
	return nil
}

// consoleTarget opens (creating if needed) dev/console without following a
// symlink and checks what it is.
func consoleTarget(dev int) (int, error) {
	fd, err := unix.Openat(dev, "console", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		f, cerr := unix.Openat(dev, "console", unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o600)
		if cerr != nil {
			return -1, fmt.Errorf("create: %w", cerr)
		}
		unix.Close(f)
		fd, err = unix.Openat(dev, "console", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFCHR:
		return fd, nil
	}
	unix.Close(fd)
	return -1, fmt.Errorf("%w: existing %s is not a regular file or character device (mode %#o)", ErrUnsafe, path.Join("/dev", "console"), st.Mode)
}
