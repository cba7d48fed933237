package spec

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// idmapOptions are the mount options of id-mapped mounts (runtime-spec
// config.md "Mounts", runc 1.2, crun), advertised only where the kernel can
// make such mounts.
var idmapOptions = []string{"idmap", "ridmap"}

// kernelIDMap reports whether the running kernel has id-mapped mounts:
// mount_setattr(2) with MOUNT_ATTR_IDMAP came in Linux 5.12. Each file
// system opts in on its own (ext4, xfs, btrfs since 5.12, tmpfs since 6.3),
// which only a mount attempt tells; the runtime says so when one refuses.
func kernelIDMap() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 12)
}

// releaseAtLeast compares a kernel release ("6.18.0-1-amd64") with
// major.minor.
func releaseAtLeast(release string, major, minor int) bool {
	ma, rest, _ := strings.Cut(release, ".")
	mi, _, _ := strings.Cut(rest, ".")
	mi, _, _ = strings.Cut(mi, "-")
	m1, err1 := strconv.Atoi(ma)
	m2, err2 := strconv.Atoi(mi)
	if err1 != nil || err2 != nil {
		return false
	}
	return m1 > major || m1 == major && m2 >= minor
}
