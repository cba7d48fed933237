package runtime

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"github.com/hako-runtime/hako/internal/linux/sync"
	"github.com/hako-runtime/hako/internal/nsenter"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Stdio is what the container's process gets as fds 0, 1 and 2.
type Stdio struct {
	In, Out, Err *os.File
}

// DefaultStdio is the calling process's own stdio.
func DefaultStdio() Stdio { return Stdio{os.Stdin, os.Stdout, os.Stderr} }

// spawnOpts describes one "hako init" child.
type spawnOpts struct {
	stdio       Stdio
	preserveFDs int        // the caller's fds 3..3+n-1 go to the child as the same numbers
	extra       []*os.File // placed after the sync socket
	join        []nsFile   // namespaces init (or hako-nsenter) joins, placed after extra
	unshare     int
	pidNS       *os.File
	sys         *syscall.SysProcAttr
	dir         string   // working directory of init (the bundle: relative mount sources resolve there)
	env         []string // added to init's environment
	// waitMaps: init is cloned into a new user namespace whose maps the
	// caller writes after spawn (newuidmap): start it as hako-nsenter,
	// which waits for sync.TypeMaps before it execs hako init.
	waitMaps bool
}

// child is a started init process and our end of its sync socket.
type child struct {
	proc *os.Process
	conn *sync.Conn
	// fd numbers of the extra files inside the child
	extraFD []int
}

// spawn starts /proc/self/exe init with the layout:
//
//	0-2 stdio | 3..3+P-1 preserved | sync | extra... | namespace fds...
func spawn(o spawnOpts) (_ *child, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(pair[0]), "sync-parent")
	theirs := os.NewFile(uintptr(pair[1]), "sync-child")
	defer theirs.Close()
	defer func() {
		if err != nil {
			ours.Close()
		}
	}()

	files := []*os.File{o.stdio.In, o.stdio.Out, o.stdio.Err}
	for i := 0; i < o.preserveFDs; i++ {
		files = append(files, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	syncFD := len(files)
	files = append(files, theirs)
	c := &child{conn: sync.NewConn(ours)}
	for _, f := range o.extra {
		c.extraFD = append(c.extraFD, len(files))
		files = append(files, f)
	}
	// With hako-nsenter in the way, it joins the pid namespace too (after
	// the user namespace, which an unprivileged parent needs first) and
	// forks into it; we adopt its child as a subreaper.
	helperForks := false
	if o.pidNS != nil && needsHelper(o.join, o.unshare) {
		o.join = append(o.join, nsFile{specs.PIDNamespace, o.pidNS})
		o.pidNS = nil
		helperForks = true
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			ours.Close()
			return nil, fmt.Errorf("become child subreaper: %w", err)
		}
	}
	nsFirst := len(files)
	for _, j := range o.join {
		files = append(files, j.f)
	}
	// Exec ourselves through a read-only, detached mount of our binary, so
	// that nothing in the container can ever open it for writing through
	// /proc/<pid>/exe (CVE-2019-5736).
	exe, err := readOnlyExe("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	exeFD := len(files)
	files = append(files, exe)
	exePath, argv := "/proc/self/fd/"+strconv.Itoa(exeFD), []string{"hako", "init"}
	env := append([]string{nsenter.EnvSyncFD + "=" + strconv.Itoa(syncFD)}, o.env...)
	if len(o.join) > 0 {
		env = append(env, nsenter.EnvSetns+"="+setnsEnv(o.join, nsFirst))
	}
	if o.unshare != 0 {
		env = append(env, nsenter.EnvUnshare+"="+strconv.Itoa(o.unshare))
	}
	if o.waitMaps {
		env = append(env, nsenter.EnvWaitMaps+"=1")
	}
	if o.waitMaps || needsHelper(o.join, o.unshare) {
		// A user or time namespace can only be joined by a single-threaded
		// process: hako-nsenter joins, then execs hako init from exeFD. It
		// runs inside those namespaces too, so it is protected the same way.
		path, err := nsenter.HelperPath()
		if err != nil {
			return nil, err
		}
		helper, err := readOnlyExe(path)
		if err != nil {
			return nil, err
		}
		defer helper.Close()
		exePath = "/proc/self/fd/" + strconv.Itoa(len(files))
		argv = []string{nsenter.HelperName, strconv.Itoa(exeFD)}
		files = append(files, helper)
	}
	attr := &os.ProcAttr{Dir: o.dir, Env: env, Files: files, Sys: o.sys}
	start := func() (*os.Process, error) {
		return os.StartProcess(exePath, argv, attr)
	}
	var p *os.Process
	if o.pidNS != nil {
		p, err = startInPidNS(o.pidNS, start)
	} else {
		p, err = start()
	}
	if err != nil {
		return nil, fmt.Errorf("start init: %w", err)
	}
	c.proc = p
	if helperForks {
		if err := c.adoptForked(); err != nil {
			c.kill()
			return nil, err
		}
	}
	return c, nil
}

// startInPidNS runs start on a thread that has joined the pid namespace for
// its children (setns(2) CLONE_NEWPID changes pid_for_children of the calling
// thread only). The thread is never unlocked, so Go discards it afterwards.
func startInPidNS(ns *os.File, start func() (*os.Process, error)) (*os.Process, error) {
	type result struct {
		p   *os.Process
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWPID); err != nil {
			ch <- result{nil, fmt.Errorf("join pid namespace: %w", err)}
			return
		}
		p, err := start()
		ch <- result{p, err}
	}()
	r := <-ch
	return r.p, r.err
}

// adoptForked replaces the hako-nsenter process by the child it forked into
// the pid namespace: it reports the pid and exits, and the child becomes
// ours (we are a child subreaper).
func (c *child) adoptForked() error {
	m, err := c.conn.Expect(sync.TypePid)
	helper := c.proc
	if err != nil {
		helper.Kill()
		helper.Wait()
		return fmt.Errorf("start init: %w", err)
	}
	if _, err := helper.Wait(); err != nil {
		return fmt.Errorf("start init: wait for hako-nsenter: %w", err)
	}
	p, err := os.FindProcess(m.Pid)
	if err != nil || m.Pid <= 0 {
		return fmt.Errorf("start init: forked pid %d: %v", m.Pid, err)
	}
	c.proc = p
	return nil
}

// kill stops a child that failed and reaps it.
func (c *child) kill() {
	c.conn.Close()
	c.proc.Kill()
	c.proc.Wait()
}

// readOnlyExe returns the executable at path (our own binary is
// /proc/self/exe) on a private, read-only, detached bind mount
// (open_tree(2) + mount_setattr(2)): exec'ing it through this fd makes
// /proc/<pid>/exe of the child refer to a file that cannot be opened for
// writing (EROFS), whatever a process in the container does with it. Unlike
// copying the binary into a memfd (runc's first fix, which made its start-up
// 1.65x slower and charged 10 MB to the container), this costs two
// syscalls and no memory.
func readOnlyExe(path string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == unix.EPERM {
		// Not allowed to make mounts (rootless): a sealed copy protects
		// as well, for the price of copying the binary.
		return sealedCopy(path)
	}
	if err != nil {
		return nil, fmt.Errorf("protect %s: open_tree: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("protect %s: mount_setattr: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "ro-exe"), nil
}
