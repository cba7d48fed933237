package runtime

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// sealedCopy returns a copy of the executable at path (our own binary is
// /proc/self/exe) in a sealed memfd, for callers
// that may not create mounts (rootless: open_tree with OPEN_TREE_CLONE needs
// CAP_SYS_ADMIN). Sealed against writes, the file behind init's
// /proc/<pid>/exe cannot be changed by anything in the container, and the
// binary on disk is never reachable from it. It costs a copy of the binary
// per container start, which is why it is only readOnlyExe's fallback.
func sealedCopy(path string) (*os.File, error) {
	fd, err := unix.MemfdCreate("hako", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("protect runtime binary: memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "hako-memfd")
	self, err := os.Open(path)
	if err != nil {
		mem.Close()
		return nil, fmt.Errorf("protect runtime binary: %w", err)
	}
	defer self.Close()
	if _, err := io.Copy(mem, self); err != nil {
		mem.Close()
		return nil, fmt.Errorf("protect runtime binary: copy: %w", err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("protect runtime binary: seal: %w", err)
	}
	return mem, nil
}
