package runtime

import (
	"fmt"
	"os"

	"github.com/hako-runtime/hako/internal/linux/sync"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// consoleReceiver holds our end of a socketpair when the caller wants the pty
// master itself instead of sending it to a --console-socket.
type consoleReceiver struct{ f *os.File }

// consoleSocket returns the socket init sends the pty master on: a
// connection to path, or (path == "") one end of a new socketpair whose other
// end is returned as the receiver.
func consoleSocket(path string) (*os.File, *consoleReceiver, error) {
	if path != "" {
		f, err := dialUnix(path)
		if err != nil {
			return nil, nil, fmt.Errorf("console socket: %w", err)
		}
		return f, nil, nil
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socketpair: %w", err)
	}
	return os.NewFile(uintptr(pair[1]), "console-child"), &consoleReceiver{os.NewFile(uintptr(pair[0]), "console")}, nil
}

// dialListener connects to the seccomp agent at linux.seccomp.listenerPath,
// if the spec has one: init sends the notify fd on this connection.
func dialListener(s *specs.Spec) (*os.File, error) {
	if s.Linux == nil || s.Linux.Seccomp == nil || s.Linux.Seccomp.ListenerPath == "" {
		return nil, nil
	}
	f, err := dialUnix(s.Linux.Seccomp.ListenerPath)
	if err != nil {
		return nil, fmt.Errorf("seccomp listener: %w", err)
	}
	return f, nil
}

// dialUnix connects a blocking stream socket to path; init inherits it. A
// plain socket(2) + connect(2): the "net" package would be linked (and
// initialised at every start) for this alone.
func dialUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect to %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

func (r *consoleReceiver) close() {
	if r != nil {
		r.f.Close()
	}
}

// receive reads the pty master init sent (one SCM_RIGHTS message).
func (r *consoleReceiver) receive() (*os.File, error) {
	if r == nil {
		return nil, nil
	}
	buf := make([]byte, 256)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(int(r.f.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: no fd in message")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive pty master: no fd in message")
	}
	return os.NewFile(uintptr(fds[0]), "pty-master"), nil
}

// initFiles are the extra files init gets after its sync socket: exec.fifo
// (create), the console socket (terminal) and the seccomp listener.
type initFiles struct {
	fifo, console, listener *os.File
	recv                    *consoleReceiver // our end, with AllocateConsole
}

// openInitFiles connects the console socket (or makes a socketpair when
// socketPath is "") and the seccomp listener the spec asks for.
func openInitFiles(terminal bool, socketPath string, s *specs.Spec) (_ *initFiles, err error) {
	f := &initFiles{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if terminal {
		if f.console, f.recv, err = consoleSocket(socketPath); err != nil {
			return nil, err
		}
	}
	if f.listener, err = dialListener(s); err != nil {
		return nil, err
	}
	return f, nil
}

// list returns the files to pass, in the order place expects.
func (f *initFiles) list() []*os.File {
	var out []*os.File
	for _, x := range []*os.File{f.fifo, f.console, f.listener} {
		if x != nil {
			out = append(out, x)
		}
	}
	return out
}

// place records in boot the fd numbers the files got in the child.
func (f *initFiles) place(boot *sync.Bootstrap, fds []int) {
	i := 0
	next := func() int { i++; return fds[i-1] }
	if f.fifo != nil {
		boot.FifoFD = next()
	}
	if f.console != nil {
		boot.ConsoleFD = next()
	}
	if f.listener != nil {
		boot.ListenerFD = next()
	}
}

// close closes our copies (init has its own after spawn).
func (f *initFiles) close() {
	for _, x := range []*os.File{f.fifo, f.console, f.listener} {
		if x != nil {
			x.Close()
		}
	}
	f.recv.close()
}
