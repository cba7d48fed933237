package seccomp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SendNotifyFD hands the seccomp listener fd to the supervisor listening on
// listenerPath (runtime-spec config-linux.md "Seccomp": listenerPath,
// listenerMetadata; runtime.md "Container process state"). It connects a
// SOCK_STREAM unix socket and sends, in one sendmsg, the JSON
// ContainerProcessState as data and fd as SCM_RIGHTS, as runc does. st.Fds is
// set to ["seccompFd"]; the caller fills Pid, State and Metadata
// (= listenerMetadata).
func SendNotifyFD(listenerPath string, fd int, st *specs.ContainerProcessState) error {
	return SendNotifyFDContext(context.Background(), listenerPath, fd, st)
}

// SendNotifyFDContext is SendNotifyFD bounded by ctx: a deadline becomes the
// socket's send timeout.
func SendNotifyFDContext(ctx context.Context, listenerPath string, fd int, st *specs.ContainerProcessState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st == nil {
		st = &specs.ContainerProcessState{}
	}
	msg := *st
	msg.Fds = []string{specs.SeccompFdName}
	if msg.Version == "" {
		msg.Version = specs.Version
	}
	data, err := json.Marshal(&msg)
	if err != nil {
		return fmt.Errorf("seccomp notify: encode state: %w", err)
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("seccomp notify: socket: %w", err)
	}
	defer unix.Close(sock)
	if dl, ok := ctx.Deadline(); ok {
		tv := unix.NsecToTimeval(max(time.Until(dl), time.Millisecond).Nanoseconds())
		if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
			return fmt.Errorf("seccomp notify: set send timeout: %w", err)
		}
	}
	if err := connectRetry(sock, &unix.SockaddrUnix{Name: listenerPath}); err != nil {
		return fmt.Errorf("seccomp notify: connect %s: %w", listenerPath, err)
	}
	oob := unix.UnixRights(fd)
	for {
		n, err := unix.SendmsgN(sock, data, oob, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("seccomp notify: send to %s: %w", listenerPath, err)
		}
		if n != len(data) {
			return fmt.Errorf("seccomp notify: short send to %s (%d of %d bytes)", listenerPath, n, len(data))
		}
		return nil
	}
}

func connectRetry(sock int, sa unix.Sockaddr) error {
	for {
		err := unix.Connect(sock, sa)
		if err != unix.EINTR {
			return err
		}
	}
}
