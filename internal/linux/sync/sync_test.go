package sync

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewConn(os.NewFile(uintptr(fds[0]), "a")), NewConn(os.NewFile(uintptr(fds[1]), "b"))
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// The fds go first and the messages after them are already queued when
// the receiver starts: RecvFiles must take the fds' message alone (one
// byte), leaving every message after it intact for the decoder.
func TestFilesThenMessages(t *testing.T) {
	parent, child := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := parent.SendFiles([]int{int(r.Fd()), int(w.Fd())}); err != nil {
		t.Fatal(err)
	}
	boot := &Bootstrap{Mode: "create", ID: "x", IDMapMounts: []int{3, 7}}
	if err := parent.Send(&Message{Type: TypeBootstrap, Bootstrap: boot}); err != nil {
		t.Fatal(err)
	}
	if err := parent.SendType(TypeCgroup); err != nil {
		t.Fatal(err)
	}
	fds, err := child.RecvFiles(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		defer unix.Close(fd)
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("received fd %d: flags %#x, %v: want close-on-exec", fd, flags, err)
		}
	}
	// The received write end is the pipe's.
	if _, err := unix.Write(fds[1], []byte("z")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if n, err := r.Read(buf); n != 1 || buf[0] != 'z' {
		t.Fatalf("read through the passed fd: %d %v", n, err)
	}
	m, err := child.Expect(TypeBootstrap)
	if err != nil || m.Bootstrap.ID != "x" || len(m.Bootstrap.IDMapMounts) != 2 {
		t.Fatalf("bootstrap after the fds: %+v, %v", m, err)
	}
	if _, err := child.Expect(TypeCgroup); err != nil {
		t.Fatal(err)
	}
}

func TestRecvFilesCountMismatch(t *testing.T) {
	parent, child := pair(t)
	if err := parent.SendFiles([]int{0}); err != nil {
		t.Fatal(err)
	}
	if _, err := child.RecvFiles(2); err == nil {
		t.Fatal("RecvFiles(2) of one fd succeeded")
	}
	parent.Close()
	if _, err := child.RecvFiles(1); err != ErrClosed {
		t.Fatalf("RecvFiles after close: %v, want ErrClosed", err)
	}
}
