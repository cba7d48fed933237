package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hako-runtime/hako/internal/linux/sync"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecOpts are the options of `exec`.
type ExecOpts struct {
	Process         *specs.Process
	ConsoleSocket   string
	AllocateConsole bool // see CreateOpts.AllocateConsole
	PidFile         string
	PreserveFDs     int
	Stdio           Stdio
	StartGate       <-chan struct{} // see CreateOpts.StartGate
}

// Spec returns the spec the container was created with.
func (c *Container) Spec() (*specs.Spec, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read spec of %s: %w", c.rec.ID, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse spec of %s: %w", c.rec.ID, err)
	}
	return &s, nil
}

// Execed is a process started by Exec: our child.
type Execed struct {
	Process *os.Process
	Console *os.File // the pty master, with AllocateConsole
}

// Exec starts an additional process in the container's namespaces and
// cgroup.
func (c *Container) Exec(ctx context.Context, o ExecOpts) (_ *Execed, err error) {
	switch st := c.Status(); st {
	case StatusRunning, StatusCreated:
	default:
		return nil, fmt.Errorf("cannot exec in container %s in state %s: %w", c.rec.ID, st, ErrBadState)
	}
	p := o.Process
	if p == nil || len(p.Args) == 0 {
		return nil, fmt.Errorf("exec: process args are empty")
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if !filepath.IsAbs(p.Cwd) {
		return nil, fmt.Errorf("exec: cwd %q is not absolute", p.Cwd)
	}
	if p.Terminal && o.ConsoleSocket == "" && !o.AllocateConsole {
		return nil, fmt.Errorf("exec: a terminal needs --console-socket")
	}
	s, err := c.Spec()
	if err != nil {
		return nil, err
	}
	join, pidNS, err := openContainerNamespaces(c.rec.Pid)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, j := range join {
			j.f.Close()
		}
		if pidNS != nil {
			pidNS.Close()
		}
	}()
	// The namespace files are open: if init is still the same process now,
	// they are its namespaces and not those of a reused pid.
	if !processAlive(c.rec.Pid, c.rec.PidStart) {
		return nil, fmt.Errorf("container %s: %w", c.rec.ID, ErrNotRunning)
	}
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	sys := &syscall.SysProcAttr{}
	if fd, ok, err := cg.CgroupFD(); err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	} else if ok {
		sys.UseCgroupFD, sys.CgroupFD = true, fd
		defer unix.Close(fd)
	}
	files, err := openInitFiles(p.Terminal, o.ConsoleSocket, s)
	if err != nil {
		return nil, err
	}
	defer files.close()
	stdio := o.Stdio
	if stdio.In == nil {
		stdio = DefaultStdio()
	}
	ch, err := spawn(spawnOpts{stdio: stdio, preserveFDs: o.PreserveFDs, extra: files.list(), join: join, pidNS: pidNS, sys: sys})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			ch.kill()
		}
	}()
	defer ch.conn.Close()
	execSpec := &specs.Spec{Version: s.Version, Process: p, Linux: &specs.Linux{}}
	if s.Linux != nil {
		execSpec.Linux.Seccomp = s.Linux.Seccomp
	}
	boot := &sync.Bootstrap{Mode: "exec", ID: c.rec.ID, Bundle: c.rec.Bundle, Spec: execSpec, PreserveFD: o.PreserveFDs}
	files.place(boot, ch.extraFD)
	if files.listener != nil {
		boot.ProcessState = &specs.ContainerProcessState{
			Version: specs.Version, Pid: ch.proc.Pid, State: c.State(),
		}
	}
	if err := ch.conn.Send(&sync.Message{Type: sync.TypeBootstrap, Bootstrap: boot}); err != nil {
		return nil, initError(ch, cg, err)
	}
	if err := cg.Enter(ch.proc.Pid); err != nil {
		return nil, fmt.Errorf("enter cgroup: %w", err)
	}
	if err := waitGate(ctx, o.StartGate); err != nil {
		return nil, err
	}
	if err := ch.conn.SendType(sync.TypeCgroup); err != nil {
		return nil, initError(ch, cg, err)
	}
	if _, err := ch.conn.Expect(sync.TypeReady); err != nil {
		return nil, initError(ch, cg, err)
	}
	// After Ready, init execve's; the sync socket is close-on-exec, so EOF
	// means the exec succeeded and an error message means it did not.
	if _, err := ch.conn.Recv(); !errors.Is(err, sync.ErrClosed) {
		if err == nil {
			err = fmt.Errorf("unexpected message after ready")
		}
		return nil, fmt.Errorf("exec: %w", err)
	}
	out := &Execed{Process: ch.proc}
	if out.Console, err = files.recv.receive(); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, ch.proc.Pid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// openContainerNamespaces opens the namespaces of pid that differ from ours,
// in join order, and its pid namespace separately.
func openContainerNamespaces(pid int) (join []nsFile, pidNS *os.File, err error) {
	defer func() {
		if err != nil {
			for _, j := range join {
				j.f.Close()
			}
			if pidNS != nil {
				pidNS.Close()
			}
		}
	}()
	base := "/proc/" + strconv.Itoa(pid) + "/ns/"
	for _, typ := range append(joinOrder, specs.PIDNamespace) {
		name := procNames[typ]
		var self, theirs unix.Stat_t
		if err := unix.Stat("/proc/self/ns/"+name, &self); err != nil {
			continue // the kernel has no such namespace
		}
		f, err := os.OpenFile(base+name, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s namespace of %d: %w", name, pid, err)
		}
		if err := unix.Fstat(int(f.Fd()), &theirs); err != nil || (theirs.Ino == self.Ino && theirs.Dev == self.Dev) {
			f.Close()
			continue
		}
		if typ == specs.PIDNamespace {
			pidNS = f
		} else {
			join = append(join, nsFile{typ, f})
		}
	}
	return join, pidNS, nil
}
