package runtime

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"

	"github.com/hako-runtime/hako/internal/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// idmapMounts returns the indices of the spec's id-mapped mounts. A
// container without any costs this loop and nothing else.
func idmapMounts(s *specs.Spec) []int {
	var idx []int
	for i := range s.Mounts {
		if rootfs.IDMapped(&s.Mounts[i]) {
			idx = append(idx, i)
		}
	}
	return idx
}

// makeIDMapped makes the detached id-mapped mounts listed by idx, in the
// host's namespaces (see package rootfs, OpenIDMapped), for init to attach.
// Each gets the user namespace that carries its mappings:
//
//   - no mappings, or the container's own: the container's user namespace
//     (config.md "Mounts", idmap: without mappings the runtime MAY use the
//     container's; with no user namespace at all it MUST fail);
//   - other mappings: a user namespace made for them (usernsHolder), one
//     per distinct set, gone again when this returns.
//
// containerNS is the container's user namespace, nil if it has none. The
// caller closes the returned fds.
func makeIDMapped(s *specs.Spec, idx []int, bundle string, containerNS *os.File) (fds []int, err error) {
	defer func() {
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			fds = nil
		}
	}()
	var holders []*usernsHolder
	defer func() {
		for _, h := range holders {
			h.close()
		}
	}()
	for _, i := range idx {
		m := &s.Mounts[i]
		fail := func(err error) ([]int, error) {
			return fds, fmt.Errorf("mounts[%d] (%s): id-mapped mount: %w", i, m.Destination, err)
		}
		var ns *os.File
		switch {
		case len(m.UIDMappings) == 0 && containerNS == nil:
			return fail(fmt.Errorf("the idmap option without uidMappings/gidMappings needs a user namespace in linux.namespaces (runtime-spec config.md)"))
		case len(m.UIDMappings) == 0 || (containerNS != nil && sameMappings(m, s.Linux)):
			ns = containerNS
		default:
			for _, h := range holders {
				if slices.Equal(h.uid, m.UIDMappings) && slices.Equal(h.gid, m.GIDMappings) {
					ns = h.ns
				}
			}
			if ns == nil {
				h, err := newUsernsHolder(m.UIDMappings, m.GIDMappings, bundle)
				if err != nil {
					return fail(err)
				}
				holders = append(holders, h)
				ns = h.ns
			}
		}
		fd, err := rootfs.OpenIDMapped(m, bundle, int(ns.Fd()))
		if err != nil {
			return fail(err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

func sameMappings(m *specs.Mount, l *specs.Linux) bool {
	return slices.Equal(m.UIDMappings, l.UIDMappings) && slices.Equal(m.GIDMappings, l.GIDMappings)
}

// usernsHolder is a process that does nothing but hold a user namespace
// with given mappings open, while we take an fd on it.
type usernsHolder struct {
	uid, gid []specs.LinuxIDMapping
	proc     *os.Process
	ns       *os.File
}

// newUsernsHolder creates a user namespace with the mappings. A user
// namespace needs a process to be created in (unshare(2) of one refuses a
// multi-threaded caller), so we clone a child into it, with the maps
// written by Go's fork code, and have it stop before it runs anything:
// PTRACE_TRACEME makes the kernel stop it with SIGTRAP at the end of its
// execve. The exec'd file is never run; it is our own binary only because
// it is at hand. We open its /proc/PID/ns/user, then kill it by pid.
func newUsernsHolder(uid, gid []specs.LinuxIDMapping, dir string) (_ *usernsHolder, err error) {
	p, err := os.StartProcess("/proc/self/exe", []string{"hako-idmap-userns"}, &os.ProcAttr{
		// In the bundle, so that a holder left behind would show whose it is.
		Dir: dir,
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: idMaps(uid),
			GidMappings: idMaps(gid),
			Ptrace:      true,
			Pdeathsig:   syscall.SIGKILL,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create a user namespace with the mount's mappings: %w (the kernel refuses overlapping ranges and more than 340 of them)", err)
	}
	h := &usernsHolder{uid: uid, gid: gid, proc: p}
	f, err := os.Open("/proc/" + strconv.Itoa(p.Pid) + "/ns/user")
	if err != nil {
		h.close()
		return nil, fmt.Errorf("open the mappings' user namespace: %w", err)
	}
	h.ns = f
	return h, nil
}

// close kills and reaps the holder; the namespace lives on in the mounts
// made with it.
func (h *usernsHolder) close() {
	if h.ns != nil {
		h.ns.Close()
	}
	h.proc.Kill()
	h.proc.Wait()
}

// sendIDMapped makes the id-mapped mounts of a container whose init ch is
// cloned (in its user namespace) and waits for them, and passes them on.
func sendIDMapped(ch *child, s *specs.Spec, idx []int, bundle string, plan *nsPlan) error {
	var ns *os.File
	for _, j := range plan.join {
		if j.typ == specs.UserNamespace {
			ns = j.f
		}
	}
	if ns == nil && plan.newUserNS {
		// Cloned with CLONE_NEWUSER: init is in it since before its exec,
		// which spawn waited for.
		f, err := os.Open("/proc/" + strconv.Itoa(ch.proc.Pid) + "/ns/user")
		if err != nil {
			return fmt.Errorf("open the container's user namespace: %w", err)
		}
		defer f.Close()
		ns = f
	}
	fds, err := makeIDMapped(s, idx, bundle, ns)
	if err != nil {
		return err
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	return ch.conn.SendFiles(fds)
}
