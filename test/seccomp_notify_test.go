package test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/testenv"
)

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// TestSeccompNotify: SCMP_ACT_NOTIFY with listenerPath hands the listener fd
// and the container process state to a supervisor, which then decides the
// result of the container's syscalls (config-linux.md "Seccomp",
// runtime.md "Container process state").
func TestSeccompNotify(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	sock := filepath.Join(testenv.ShortTempDir(t), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Args = []string{"mkdir", "/tmp/by-agent"}
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			ListenerPath:     sock,
			ListenerMetadata: "agent-metadata",
			Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
		}
	})
	id := newID(t)
	r.cleanupContainer(id)
	done := make(chan result, 1)
	go func() { done <- r.run("run", "--bundle", bundle, id) }()

	l.SetDeadline(time.Now().Add(20 * time.Second))
	conn, err := l.AcceptUnix()
	if err != nil {
		t.Fatalf("no connection from the runtime: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		t.Fatalf("state: %v: %q", err, buf[:n])
	}
	if len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName || st.Metadata != "agent-metadata" || st.Pid <= 0 || st.State.ID != id {
		t.Errorf("container process state = %+v", st)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("no fd with the state: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("no fd with the state: %v", err)
	}
	nfd := fds[0]
	defer unix.Close(nfd)

	// Answer the container's mkdir with ENOSPC: only the agent can have
	// said that.
	var req seccompNotif
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(nfd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
		t.Fatalf("NOTIF_RECV: %v", e)
	}
	if req.Nr != unix.SYS_MKDIR && req.Nr != unix.SYS_MKDIRAT {
		t.Errorf("notified syscall %d, want mkdir or mkdirat", req.Nr)
	}
	resp := seccompNotifResp{ID: req.ID, Error: -int32(unix.ENOSPC)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(nfd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e != 0 {
		t.Fatalf("NOTIF_SEND: %v", e)
	}
	select {
	case res := <-done:
		if res.code == 0 || !strings.Contains(res.stderr+res.stdout, "No space left") {
			t.Fatalf("mkdir result does not show the agent's ENOSPC: %v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not finish after the agent answered")
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "tmp", "by-agent")); err == nil {
		t.Error("the directory was created despite the agent's answer")
	}
}
