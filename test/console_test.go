package test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/testenv"
)

// consoleSocket listens on a unix socket for the pty master that a runtime
// sends with SCM_RIGHTS when process.terminal is true and --console-socket
// is given (the protocol runc defines and containerd, podman and CRI-O use).
type consoleSocket struct {
	t    *testing.T
	path string
	ln   *net.UnixListener
}

func newConsoleSocket(t *testing.T) *consoleSocket {
	t.Helper()
	path := filepath.Join(testenv.ShortTempDir(t), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatalf("listen %s: %v", path, err)
	}
	t.Cleanup(func() { ln.Close() })
	return &consoleSocket{t: t, path: path, ln: ln}
}

// received is what one console-socket connection delivered.
type received struct {
	master *os.File
	err    error
}

// accept starts accepting one connection in the background: the runtime
// connects during create/exec, which we are running concurrently.
func (c *consoleSocket) accept() <-chan received {
	ch := make(chan received, 1)
	go func() {
		f, err := c.receive()
		if f != nil {
			c.t.Cleanup(func() { f.Close() })
		}
		ch <- received{f, err}
	}()
	return ch
}

// wait returns the pty master delivered by accept, failing the test if none.
func (c *consoleSocket) wait(ch <-chan received) *os.File {
	c.t.Helper()
	got := <-ch
	if got.err != nil {
		c.t.Fatalf("console socket: %v", got.err)
	}
	return got.master
}

// receive accepts one connection and returns the pty master it carries.
func (c *consoleSocket) receive() (*os.File, error) {
	if err := c.ln.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("message carries %d control messages (%v), want 1", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("message carries fds %v (%v), want exactly one", fds, err)
	}
	fd := fds[0]
	// A pty master answers TCGETS; anything else sent here is a bug.
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("received fd is not a terminal: %w", err)
	}
	// Non-blocking, so that os.File uses the poller and read deadlines work.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pty-master:"+string(buf[:n])), nil
}

// readUntil reads from the pty master until the output contains want.
func readUntil(t *testing.T, f *os.File, want string) string {
	t.Helper()
	var out strings.Builder
	buf := make([]byte, 4096)
	deadline := time.Now().Add(10 * time.Second)
	if err := f.SetReadDeadline(deadline); err != nil {
		t.Fatalf("set read deadline on pty: %v", err)
	}
	for !strings.Contains(out.String(), want) {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("no %q on the terminal within 10s; got %q", want, out.String())
			}
			// EIO: the slave side closed, the process is gone.
			t.Fatalf("read terminal: %v; got %q, want %q", err, out.String(), want)
		}
	}
	return out.String()
}

// TestConsoleSocket creates a container with process.terminal true, takes
// the pty master from the console socket, types commands into the shell and
// reads their output: the container's stdio is the terminal (config.md
// "terminal"; runtime.md create --console-socket as runc defines it).
func TestConsoleSocket(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	cs := newConsoleSocket(t)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.Args = []string{"sh", "-c", ttyScript}
	})
	r.cleanupContainer(id)

	// The runtime connects to the socket during create; accept concurrently
	// so that a runtime that waits for the receiver cannot deadlock us.
	pending := cs.accept()
	r.ok("create", "--bundle", bundle, "--console-socket", cs.path, id)
	master := cs.wait(pending)
	// The window size set on the master is what the container sees.
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 41, Col: 99}); err != nil {
		t.Fatalf("set window size: %v", err)
	}
	st := r.mustState(id)
	r.ok("start", id)

	out := typeAndRead(t, master)
	if !strings.Contains(out, "size 41 99") {
		t.Errorf("stty size in container does not show 41 99: %q", out)
	}
	r.waitStatus(id, specs.StateStopped)
	waitGone(t, st.Pid)
	r.ok("delete", id)
}

// ttyScript checks from inside that stdin and stdout are a terminal, prints
// its size, and echoes a line typed on it. It is a script rather than an
// interactive shell: busybox's line editing flushes typed-ahead input when
// it sets up the terminal, which makes a test that types early racy.
const ttyScript = `if test -t 0 && test -t 1; then echo tty-yes; else echo tty-no; fi; echo "size $(stty size)"; read line; echo "got-$line"`

// typeAndRead types a line into the terminal (the tty buffers it until the
// script reads) and returns the output up to the script's answer.
func typeAndRead(t *testing.T, master *os.File) string {
	t.Helper()
	if _, err := master.Write([]byte("ping\n")); err != nil {
		t.Fatalf("write terminal: %v", err)
	}
	out := readUntil(t, master, "got-ping")
	if !strings.Contains(out, "tty-yes") {
		t.Errorf("container stdio is not the terminal: %q", out)
	}
	return out
}

// TestExecConsoleSocket runs `exec --tty --detach --console-socket` and talks
// to the exec'd process over its own terminal.
func TestExecConsoleSocket(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	id, _, _ := r.createRunning(nil)
	cs := newConsoleSocket(t)
	pending := cs.accept()
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	r.ok("exec", "--tty", "--detach", "--console-socket", cs.path, "--pid-file", pidFile, id, "sh", "-c", ttyScript)
	master := cs.wait(pending)
	typeAndRead(t, master)
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file holds %q", data)
	}
	waitGone(t, pid)
	// The container's init is unaffected by the exec'd process leaving.
	if st := r.mustState(id); st.Status != specs.StateRunning {
		t.Errorf("container status %q after exec'd process exit, want running", st.Status)
	}
}
