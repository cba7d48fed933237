package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Load installs the program on the calling OS thread with seccomp(2)
// (SECCOMP_SET_MODE_FILTER and the spec's flags). The caller must hold
// runtime.LockOSThread and exec from this thread, and must already have set
// no_new_privs or hold CAP_SYS_ADMIN (runtime-spec config-linux.md
// "Seccomp"; the order of noNewPrivileges and seccomp is the runtime's job).
//
// It returns the user-notification listener fd when the program notifies
// (the kernel creates it close-on-exec), else -1.
func (p *Program) Load() (notifyFD int, err error) {
	if len(p.filter) == 0 {
		return -1, errors.New("load seccomp filter: empty program")
	}
	prog := unix.SockFprog{Len: uint16(len(p.filter)), Filter: &p.filter[0]}
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		uintptr(p.flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	if errno != 0 {
		switch errno {
		case unix.EACCES:
			return -1, fmt.Errorf("load seccomp filter: %w (needs no_new_privs or CAP_SYS_ADMIN)", errno)
		case unix.EINVAL:
			return -1, fmt.Errorf("load seccomp filter (flags %#x): %w (flag not supported by this kernel?)", p.flags, errno)
		}
		return -1, fmt.Errorf("load seccomp filter: %w", errno)
	}
	if p.flags&flagNewListener != 0 {
		return int(r), nil
	}
	return -1, nil
}
