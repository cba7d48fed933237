// Package sync is the typed conversation between the runtime (parent) and
// "hako init" (the child that becomes the container's process).
//
// It runs over one SOCK_STREAM socketpair as newline-free JSON values. For a
// new container ("create" mode) it goes:
//
//	parent                                   init (in the new namespaces)
//	  | clone(CLONE_NEW*) + exec hako init        |
//	  |---- Bootstrap{spec, rootfs, ...} -------->|
//	  | cgroup v1: write pid to cgroup.procs      | mount rootfs (rootfs.Prepare) ...
//	  | (slow: the kernel waits for an RCU grace  |
//	  |  period, so init mounts meanwhile)        |
//	  |---- Cgroup ------------------------------>| ... waiting for it only before the
//	  |                                           | cgroup mount or a cgroup namespace
//	  |<--- Hooks  (only if prestart/createRuntime hooks exist)
//	  | run prestart + createRuntime hooks        |
//	  |---- Ack ---------------------------------->|
//	  |                                           | createContainer hooks, pivot_root,
//	  |                                           | console, sysctl, masks, hostname...
//	  |<--- Ready (or Error at any step) ---------|
//	  | write state.json, exit (create)           | block on exec.fifo until `start`
//	                                              | startContainer hooks, drop privs, execve
//
// In "exec" mode the child has already joined the container's namespaces in
// the nsenter constructor; the parent sends Bootstrap then Cgroup, the child
// answers Ready once it is about to execve; EOF (the socket is close-on-exec)
// then means the execve succeeded, an Error that it did not. `run` (no
// exec.fifo) ends the same way.
//
// Any failure in init is sent as Error before init exits; the parent rolls
// back everything it created. EOF without Ready means init died.
//
// A rootless container mapping more than the caller's own ids starts one
// step earlier: init is cloned into its user namespace as hako-nsenter,
// which waits for the parent to write the maps with the set-uid
// newuidmap/newgidmap and send Maps, and only then execs hako init:
//
//	| clone(CLONE_NEW*) + exec hako-nsenter     |
//	| newuidmap PID ..., newgidmap PID ...      |
//	|---- Maps -------------------------------->| exec hako init (root of the namespace)
//
// Id-mapped mounts (runtime-spec "Mounts" uidMappings, idmap/ridmap) need
// one step more, only for containers that have them: the parent makes them
// detached after the clone (the container's user namespace exists by then)
// and passes their fds (SCM_RIGHTS) before anything else:
//
//	|---- [mount fds] (EnvIDMapFDs=N told init to expect N) -->|
//	|---- Bootstrap{..., IDMapMounts: indices in spec.Mounts} ->|
//
// The fds travel on a one-byte message of their own, which init receives
// with RecvFiles before its first Recv: a JSON decoder reads ahead, and a
// read(2) that swallowed the fds' message would close them.
package sync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Message types.
const (
	TypeBootstrap = "bootstrap"
	TypeCgroup    = "cgroup" // parent -> init: you are in your cgroup now
	TypePid       = "pid"    // hako-nsenter -> parent: the pid of init, forked into a joined pid namespace
	TypeMaps      = "maps"   // parent -> hako-nsenter: the new user namespace's maps are written (rootless, newuidmap)
	TypeHooks     = "hooks"
	TypeAck       = "ack"
	TypeReady     = "ready"
	TypeError     = "error"
)

// Bootstrap is everything init needs, so that it never reads config.json.
type Bootstrap struct {
	Mode    string      `json:"mode"` // "create" or "exec"
	ID      string      `json:"id"`
	Bundle  string      `json:"bundle"`
	Rootfs  string      `json:"rootfs,omitempty"`
	Spec    *specs.Spec `json:"spec"`
	NoPivot bool        `json:"noPivot,omitempty"`
	// NoNewKeyring keeps the caller's session keyring (--no-new-keyring).
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	ConsoleFD    int  `json:"consoleFD,omitempty"` // connected unix socket to send the pty master on; 0 = none
	FifoFD       int  `json:"fifoFD,omitempty"`    // create mode: exec.fifo opened O_RDWR; 0 = start at once
	PreserveFD   int  `json:"preserveFDs,omitempty"`
	// ExecFDs are kept open across execve in addition to stdio: fds 3..3+PreserveFD-1.
	TimeNS bool `json:"timeNS,omitempty"` // create a new time namespace (clone(2) cannot)
	// CgroupV1 lists the v1 controllers the container is in, when the
	// runtime joined only some (hybrid hosts); nil means all.
	CgroupV1 []string `json:"cgroupV1"` // null (all) differs from [] (none)
	// Debug asks init to report how long each step took.
	Debug bool `json:"debug,omitempty"`
	// NoMountNS: the container shares the runtime's mount namespace, so
	// nothing may be mounted; the rootfs is entered with chroot(2) only.
	NoMountNS bool `json:"noMountNS,omitempty"`
	// ListenerFD is a socket connected to linux.seccomp.listenerPath, and
	// ProcessState what to send on it with the notify fd.
	ListenerFD   int                          `json:"listenerFD,omitempty"`
	ProcessState *specs.ContainerProcessState `json:"processState,omitempty"`
	// NewCgroupNS: unshare the cgroup namespace after the parent moved init
	// into its cgroup, so that the container's cgroup becomes its root.
	NewCgroupNS bool `json:"newCgroupNS,omitempty"`
	// IDMapMounts are the indices in Spec.Mounts of the id-mapped mounts
	// whose fds init received before the Bootstrap, in that order.
	IDMapMounts []int `json:"idmapMounts,omitempty"`
}

// EnvIDMapFDs, in init's environment, is the number of mount fds the parent
// sends (SendFiles) before the Bootstrap.
const EnvIDMapFDs = "_HAKO_IDMAPFDS"

// Message is one value on the wire.
type Message struct {
	Type      string     `json:"type"`
	Error     string     `json:"error,omitempty"`
	Pid       int        `json:"pid,omitempty"`
	Bootstrap *Bootstrap `json:"bootstrap,omitempty"`
	Warnings  []string   `json:"warnings,omitempty"`
	// Timings are init's step durations, sent with Ready when Debug is set.
	Timings []string `json:"timings,omitempty"`
}

// Conn wraps the socket.
type Conn struct {
	f   *os.File
	enc *json.Encoder
	dec *json.Decoder
}

// NewConn wraps an already connected socket.
func NewConn(f *os.File) *Conn {
	return &Conn{f: f, enc: json.NewEncoder(f), dec: json.NewDecoder(f)}
}

// File returns the underlying socket.
func (c *Conn) File() *os.File { return c.f }

// Close closes the socket.
func (c *Conn) Close() error { return c.f.Close() }

// Send writes one message.
func (c *Conn) Send(m *Message) error {
	if err := c.enc.Encode(m); err != nil {
		return fmt.Errorf("send %s: %w", m.Type, err)
	}
	return nil
}

// SendType sends a message with only a type.
func (c *Conn) SendType(t string) error { return c.Send(&Message{Type: t}) }

// SendError reports err to the other side.
func (c *Conn) SendError(err error) error {
	return c.Send(&Message{Type: TypeError, Error: err.Error()})
}

// ErrClosed is returned when the peer went away without a message.
var ErrClosed = errors.New("peer closed the sync socket")

// Recv reads one message. An Error message is returned as an error.
func (c *Conn) Recv() (*Message, error) {
	var m Message
	if err := c.dec.Decode(&m); err != nil {
		// A peer that dies with our last message unread resets the
		// connection instead of closing it: the same thing here.
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("receive: %w", err)
	}
	if m.Type == TypeError {
		return &m, errors.New(m.Error)
	}
	return &m, nil
}

// Expect reads one message and checks its type.
func (c *Conn) Expect(t string) (*Message, error) {
	m, err := c.Recv()
	if err != nil {
		return nil, err
	}
	if m.Type != t {
		return nil, fmt.Errorf("expected %q message, got %q", t, m.Type)
	}
	return m, nil
}

// SendFiles passes fds to the peer (SCM_RIGHTS) on a one-byte message. The
// peer must take it with RecvFiles before it reads anything after it.
func (c *Conn) SendFiles(fds []int) error {
	rights := unix.UnixRights(fds...)
	for {
		err := unix.Sendmsg(int(c.f.Fd()), []byte{0}, rights, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("send %d fds: %w", len(fds), err)
		}
		return nil
	}
}

// RecvFiles receives the n fds of a SendFiles message, close-on-exec. It
// reads exactly that message's one byte, so messages after it stay queued
// for Recv; it must come before the first Recv (whose decoder reads ahead).
func (c *Conn) RecvFiles(n int) ([]int, error) {
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(n*4))
	var got, oobn, flags int
	var err error
	for {
		got, oobn, flags, _, err = unix.Recvmsg(int(c.f.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receive fds: %w", err)
	}
	if got == 0 {
		return nil, ErrClosed
	}
	var fds []int
	if cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, cm := range cmsgs {
			f, err := unix.ParseUnixRights(&cm)
			if err == nil {
				fds = append(fds, f...)
			}
		}
	}
	if flags&unix.MSG_CTRUNC != 0 || len(fds) != n {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive fds: got %d, want %d", len(fds), n)
	}
	return fds, nil
}
