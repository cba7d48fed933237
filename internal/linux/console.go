package linux

import (
	"fmt"

	"github.com/hako-runtime/hako/internal/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupConsole allocates a pty in the container's devpts, binds the slave
// onto /dev/console (create only, by fd: no path lookup), makes it our controlling terminal and
// stdio, and sends the master over the console socket as runc does (one
// SCM_RIGHTS message whose payload is the master's name).
func setupConsole(consoleFD int, size *specs.Box, bindConsole bool) error {
	if consoleFD <= 0 {
		return fmt.Errorf("terminal requested but no console socket")
	}
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master, so no path lookup in
	// the container can hand us something else.
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return fmt.Errorf("open pty slave: %w", errno)
	}
	slave := int(r)
	defer unix.Close(slave)
	// Default to 80x24 when the spec has no size: a 0x0 terminal confuses
	// programs that read their size (runc does not set one either, but
	// consoleSize is the documented way to ask).
	if size != nil {
		ws := &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)}
		if err := unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("set console size: %w", err)
		}
	}
	if bindConsole {
		if err := rootfs.SetupConsoleFD(slave); err != nil {
			return fmt.Errorf("bind /dev/console: %w", err)
		}
	}
	rights := unix.UnixRights(master)
	if err := unix.Sendmsg(consoleFD, []byte("/dev/ptmx"), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	unix.Close(consoleFD)
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup pty slave: %w", err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}
