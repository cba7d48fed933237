// Package linux is the child side of hako: "hako init", the process that is
// cloned into the container's namespaces, prepares them step by step and
// finally execve's the container's process.
//
// Every step is a named call; a failure is wrapped with the step's name and
// sent to the parent over the sync socket (see package sync), which rolls
// back what it created. Init runs on the main OS thread, locked by
// cmd/hako before main: namespaces, credentials, capabilities and the
// seccomp filter are per-thread, and the execve comes from that thread.
package linux

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"

	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/sync"
	"github.com/hako-runtime/hako/internal/nsenter"
	"github.com/hako-runtime/hako/internal/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// IsInit reports whether this process was started as "hako init" (by
// hako or by hako-engine, which both dispatch it first thing in main).
func IsInit() bool { return len(os.Args) > 1 && os.Args[1] == "init" }

func init() {
	// "hako init" becomes the container's process: namespaces, credentials
	// and seccomp are per thread, so it must stay on the main thread. A
	// LockOSThread during package initialisation keeps main on it.
	// (GOMAXPROCS(1) here cost time: it stops the world to resize the Ps.)
	if IsInit() {
		goruntime.LockOSThread()
	}
}

// Init is "hako init". It never returns.
func Init() {
	fd, err := strconv.Atoi(os.Getenv(nsenter.EnvSyncFD))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hako init: not started by hako (no sync fd)")
		os.Exit(1)
	}
	conn := sync.NewConn(os.NewFile(uintptr(fd), "sync"))
	// Join the namespaces the parent asked for, on this (locked, main)
	// thread: the one that execve's the container's process. A user or
	// time namespace was joined by hako-nsenter before we started.
	if err := nsenter.JoinFromEnv(); err != nil {
		fail(conn, err)
	}
	// Id-mapped mounts made by the parent come first, on a message of
	// their own (package sync).
	var idmapped []int
	if n, _ := strconv.Atoi(os.Getenv(sync.EnvIDMapFDs)); n > 0 {
		if idmapped, err = conn.RecvFiles(n); err != nil {
			fail(conn, step("receive id-mapped mounts", err))
		}
	}
	m, err := conn.Expect(sync.TypeBootstrap)
	if err != nil || m.Bootstrap == nil || m.Bootstrap.Spec == nil {
		fail(conn, fmt.Errorf("read bootstrap: %v", err))
	}
	b := m.Bootstrap
	if b.Mode == "exec" {
		err = execProcess(conn, b)
	} else {
		err = createContainer(conn, b, idmapped)
	}
	fail(conn, err)
}

// fail reports err to the parent and exits. After `create` returned nobody
// reads the sync socket any more, so the error also goes to the container's
// stderr, which is where its user looks.
func fail(conn *sync.Conn, err error) {
	if err == nil {
		err = fmt.Errorf("init returned without exec")
	}
	if conn.SendError(err) != nil || afterReady {
		fmt.Fprintln(os.Stderr, "hako init:", err)
	}
	os.Exit(1)
}

// afterReady is set once create has been told we are ready: from then on
// the parent may be gone. (init is a single-use process: this is its state,
// not shared configuration.)
var afterReady bool

// step wraps the error of one init step with its name.
func step(name string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func state(b *sync.Bootstrap, status specs.ContainerState) *specs.State {
	return &specs.State{
		Version:     specs.Version,
		ID:          b.ID,
		Status:      status,
		Pid:         os.Getpid(),
		Bundle:      b.Bundle,
		Annotations: b.Spec.Annotations,
	}
}

// createContainer is the list of steps for a new container, in the order the
// runtime-spec lifecycle (runtime.md "Lifecycle") requires.
// idmapped are the fds of the id-mapped mounts the parent made, for the
// mounts b.IDMapMounts lists.
func createContainer(conn *sync.Conn, b *sync.Bootstrap, idmapped []int) error {
	s := b.Spec
	if len(idmapped) != len(b.IDMapMounts) {
		return fmt.Errorf("received %d id-mapped mounts for %d mounts", len(idmapped), len(b.IDMapMounts))
	}
	var byMount map[int]int
	if len(idmapped) > 0 {
		byMount = make(map[int]int, len(idmapped))
		for i, fd := range idmapped {
			byMount[b.IDMapMounts[i]] = fd
		}
	}
	var warnings []string
	t := newTimer(b.Debug)
	inCgroup := false
	waitCgroup := func() error {
		if inCgroup {
			return nil
		}
		if _, err := conn.Expect(sync.TypeCgroup); err != nil {
			return step("wait for cgroup", err)
		}
		inCgroup = true
		t.mark("wait for cgroup")
		return nil
	}

	// 1. Namespaces that clone(2) cannot create for us. A cgroup
	//    namespace is rooted where we are: only after the parent moved us.
	if b.NewCgroupNS {
		if err := waitCgroup(); err != nil {
			return err
		}
		if err := step("unshare cgroup namespace", unix.Unshare(unix.CLONE_NEWCGROUP)); err != nil {
			return err
		}
	}
	if b.TimeNS {
		if err := step("unshare time namespace", unshareTime(s.Linux.TimeOffsets)); err != nil {
			return err
		}
	}
	// 2. The root filesystem and every mount, before pivot_root.
	if !b.NoMountNS {
		if err := step("prepare rootfs", rootfs.PrepareWith(s, b.Rootfs, rootfs.Options{BeforeCgroup: waitCgroup, CgroupV1: b.CgroupV1, IDMapped: byMount})); err != nil {
			return err
		}
		t.mark("prepare rootfs")
	}
	if err := waitCgroup(); err != nil {
		return err
	}
	// 3. prestart and createRuntime hooks run in the runtime namespace: the
	//    parent runs them while we wait.
	if s.Hooks != nil && (len(s.Hooks.Prestart) > 0 || len(s.Hooks.CreateRuntime) > 0) { //nolint:staticcheck // prestart is deprecated but still part of the spec
		if err := conn.SendType(sync.TypeHooks); err != nil {
			return err
		}
		if _, err := conn.Expect(sync.TypeAck); err != nil {
			return step("wait for runtime hooks", err)
		}
	}
	// 4. createContainer hooks: container namespaces, before pivot_root.
	if s.Hooks != nil && len(s.Hooks.CreateContainer) > 0 {
		if err := hooks.Run(context.Background(), "createContainer", s.Hooks.CreateContainer, state(b, specs.StateCreated)); err != nil {
			return err
		}
	}
	// 5. Switch root. Without a mount namespace of its own the container
	//    must not change the host's mounts: chroot is all there is.
	if b.NoMountNS {
		if err := step("chroot", chroot(b.Rootfs)); err != nil {
			return err
		}
	} else if err := step("pivot root", rootfs.Pivot(b.Rootfs, b.NoPivot)); err != nil {
		return err
	}
	t.mark("pivot root")
	// 6. The console, before masking: /dev/console is bound to our pty.
	if s.Process != nil && s.Process.Terminal {
		if err := step("set up console", setupConsole(b.ConsoleFD, s.Process.ConsoleSize, true)); err != nil {
			return err
		}
	}
	// 7. Kernel parameters, then masked and read-only paths, read-only root.
	if err := step("write sysctls", rootfs.WriteSysctls(s)); err != nil {
		return err
	}
	if !b.NoMountNS {
		if err := step("finish rootfs", rootfs.Finish(s)); err != nil {
			return err
		}
	}
	if err := step("set hostname", setHostname(s)); err != nil {
		return err
	}
	// A session keyring of its own, so that the container cannot see or
	// use the keys of whoever started it (runc does the same unless
	// --no-new-keyring).
	if !b.NoNewKeyring {
		if err := joinSessionKeyring(b.ID); err != nil {
			return step("join session keyring", err)
		}
	}
	// 8. Process attributes that need privilege: rlimits, oom_score_adj.
	//    A container may be created without a process (runtime.md: start
	//    then fails); init then only holds the namespaces.
	var path string
	if s.Process != nil {
		w, err := prepareProcess(s.Process)
		if err != nil {
			return err
		}
		warnings = append(warnings, w...)
		if path, err = lookPath(s.Process); err != nil {
			return step("find executable", err)
		}
	}
	t.mark("finish")
	// 9. Tell the parent we are created; it records state and exits.
	if err := conn.Send(&sync.Message{Type: sync.TypeReady, Warnings: warnings, Timings: t.steps}); err != nil {
		return err
	}
	// With exec.fifo the parent returns now; without it (run) it keeps
	// reading the sync socket until we execve.
	afterReady = b.FifoFD > 0
	// 10. Wait for `start`.
	if b.FifoFD > 0 {
		if err := step("wait for start", waitStart(b.FifoFD)); err != nil {
			return err
		}
	}
	if s.Process == nil {
		return fmt.Errorf("start: process is not set in config.json")
	}
	// 11. startContainer hooks: container namespace, after start.
	if s.Hooks != nil && len(s.Hooks.StartContainer) > 0 {
		if err := hooks.Run(context.Background(), "startContainer", s.Hooks.StartContainer, state(b, specs.StateCreated)); err != nil {
			return err
		}
	}
	// 12. Drop to the process's identity and execve.
	return finalizeAndExec(s, path, b)
}

// execProcess runs a new process in a running container. Init has already
// joined the container's namespaces (package nsenter) and the parent
// has moved us into its cgroup.
func execProcess(conn *sync.Conn, b *sync.Bootstrap) error {
	s := b.Spec
	if _, err := conn.Expect(sync.TypeCgroup); err != nil {
		return step("wait for cgroup", err)
	}
	if s.Process.Terminal {
		if err := step("set up console", setupConsole(b.ConsoleFD, s.Process.ConsoleSize, false)); err != nil {
			return err
		}
	}
	if _, err := prepareProcess(s.Process); err != nil {
		return err
	}
	path, err := lookPath(s.Process)
	if err != nil {
		return step("find executable", err)
	}
	if err := conn.SendType(sync.TypeReady); err != nil {
		return err
	}
	return finalizeAndExec(s, path, b)
}

func joinSessionKeyring(id string) error {
	_, err := unix.KeyctlJoinSessionKeyring("_ses." + id)
	// Kernels without keys, or seccomp/LSM policies refusing keyctl:
	// carry on, as runc does.
	if err == unix.ENOSYS || err == unix.EACCES || err == unix.EPERM {
		return nil
	}
	return err
}

func chroot(dir string) error {
	if err := unix.Chroot(dir); err != nil {
		return err
	}
	return unix.Chdir("/")
}

func setHostname(s *specs.Spec) error {
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return err
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("set domainname: %w", err)
		}
	}
	return nil
}

// waitStart blocks on exec.fifo until `hako start` writes to it.
func waitStart(fd int) error {
	buf := make([]byte, 1)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("exec fifo closed")
		}
		// Keep the fifo open until execve closes it: `start` waits for
		// the last writer to go away to know the process runs, before it
		// runs poststart hooks. Close-on-exec also keeps it out of the
		// startContainer hooks we are about to run.
		unix.CloseOnExec(fd)
		return nil
	}
}

// unshareTime creates a time namespace with the spec's offsets; the process
// enters it at execve (time_for_children, time_namespaces(7)).
func unshareTime(offsets map[string]specs.LinuxTimeOffset) error {
	if err := unix.Unshare(unix.CLONE_NEWTIME); err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	var buf []byte
	for clock, off := range offsets {
		buf = fmt.Appendf(buf, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
	}
	if err := os.WriteFile("/proc/self/timens_offsets", buf, 0); err != nil {
		return fmt.Errorf("write timens_offsets: %w", err)
	}
	return nil
}
