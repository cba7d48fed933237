package linux

import (
	"encoding/json"
	"fmt"

	"github.com/hako-runtime/hako/internal/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// loadSeccomp installs the container's filter on this thread. With a
// SCMP_ACT_NOTIFY rule the kernel hands us a listener fd, which goes to the
// supervisor at listenerPath through the socket the parent connected for us
// (that path is a host path, unreachable after pivot_root), together with the
// container process state (runtime.md "Container process state").
func loadSeccomp(s *specs.Spec, listenerFD int, st *specs.ContainerProcessState) error {
	prog, err := seccomp.Compile(s.Linux.Seccomp)
	if err != nil {
		return err
	}
	notifyFD, err := prog.Load()
	if err != nil {
		return err
	}
	if notifyFD < 0 {
		return nil
	}
	defer unix.Close(notifyFD)
	if listenerFD <= 0 {
		return fmt.Errorf("SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath")
	}
	defer unix.Close(listenerFD)
	msg := *st
	msg.Fds = []string{specs.SeccompFdName}
	msg.Metadata = s.Linux.Seccomp.ListenerMetadata
	data, err := json.Marshal(&msg)
	if err != nil {
		return err
	}
	if err := unix.Sendmsg(listenerFD, data, unix.UnixRights(notifyFD), nil, 0); err != nil {
		return fmt.Errorf("send seccomp notify fd to %s: %w", s.Linux.Seccomp.ListenerPath, err)
	}
	return nil
}
