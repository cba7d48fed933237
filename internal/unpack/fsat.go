package unpack

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// removeAllAt removes name in dirfd and, for a directory, everything below
// it, never following a symlink.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readDirNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(fd, n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// readDirNames lists a directory fd opened O_RDONLY. All names are read
// before the caller deletes any, so deletions cannot make getdents skip.
func readDirNames(fd int) ([]string, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

// chmodAt sets the mode of name in dirfd without following a symlink
// (fchmodat2, Linux 6.6). Older kernels fall back to fchmodat, which
// follows: safe here because the caller has just created name itself as a
// non-symlink in a directory only this process writes.
func chmodAt(dirfd int, name string, mode uint32) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	err := unix.Fchmodat(dirfd, name, mode, flags)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	if name == "" {
		return unix.Fchmodat(unix.AT_FDCWD, fdPath(dirfd, ""), mode, 0)
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}

// setXattrAt sets an xattr on name in dirfd without following a symlink.
// There is no lsetxattrat before Linux 6.13, so the directory is named
// through its /proc/self/fd magic link, which only resolves the directory
// fd itself; name is a single component and lsetxattr does not follow it.
func setXattrAt(dirfd int, name, attr, value string) error {
	var err error
	if name == "" {
		// The magic link itself must be followed to reach the directory.
		err = unix.Setxattr(fdPath(dirfd, ""), attr, []byte(value), 0)
	} else {
		err = unix.Lsetxattr(fdPath(dirfd, name), attr, []byte(value), 0)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", attr, err)
	}
	return nil
}

func fdPath(fd int, name string) string {
	p := "/proc/self/fd/" + strconv.Itoa(fd)
	if name != "" {
		p += "/" + name
	}
	return p
}
