package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hako-runtime/hako/internal/hooks"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Start runs the user process of a created container (runtime.md "start"),
// then the poststart hooks.
func (c *Container) Start(ctx context.Context) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusCreated {
		return fmt.Errorf("cannot start container %s in state %s: %w", c.rec.ID, st, ErrBadState)
	}
	if c.rec.NoProcess {
		// runtime.md "start": MUST fail if process was not set. Init
		// has nothing to run; stop it so the container can be deleted.
		c.killAndWait()
		os.Remove(filepath.Join(c.dir, "exec.fifo"))
		return fmt.Errorf("cannot start container %s: process is not set in config.json: %w", c.rec.ID, ErrBadState)
	}
	fifo := filepath.Join(c.dir, "exec.fifo")
	// A read end of our own tells us when init has exec'd: init holds the
	// fifo open read-write and close-on-exec, so once it execve's (or
	// dies) no writer is left and our end reports POLLHUP. Poststart hooks
	// must only run after the process started (config.md "poststart").
	rfd, err := unix.Open(fifo, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(rfd)
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENXIO) {
			return fmt.Errorf("container %s: init is gone: %w", c.rec.ID, ErrNotRunning)
		}
		return fmt.Errorf("open exec fifo: %w", err)
	}
	_, err = unix.Write(fd, []byte{0})
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("signal start: %w", err)
	}
	if err := os.Remove(fifo); err != nil {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	// Return only once the process runs: a signal that `kill` sends right
	// after `start` must reach the container's process, not hako init,
	// whose Go runtime would swallow SIGUSR1 and friends (the suite's
	// killsig test lost one that way under load). It also means that the
	// startContainer hooks have run, and that poststart hooks run after
	// the process started (config.md "poststart").
	waitHangup(rfd)
	c.runPoststart(ctx)
	return nil
}

// waitHangup waits until no writer holds the fifo open any more: init has
// exec'd the container's process (or died). Until init reads the start
// byte the fifo is also readable; we must not read it (it is init's), so a
// level-triggered poll would spin. Edge-triggered epoll reports the
// readable state once and then sleeps until the next change, the hangup.
func waitHangup(fd int) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	defer unix.Close(ep)
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return
	}
	events := make([]unix.EpollEvent, 1)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil || (n == 1 && events[0].Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0) {
			return
		}
	}
}

// runPoststart runs poststart hooks; per runtime.md a failure is logged and
// the lifecycle continues.
func (c *Container) runPoststart(ctx context.Context) {
	if c.rec.Hooks == nil || len(c.rec.Hooks.Poststart) == 0 {
		return
	}
	// The process has been started: that is the state poststart hooks are
	// about, even if a short-lived process has already exited by now.
	st := c.State()
	st.Status, st.Pid = StatusRunning, c.rec.Pid
	if err := hooks.Run(ctx, "poststart", c.rec.Hooks.Poststart, &st); err != nil {
		slog.Warn("poststart hook failed", "id", c.rec.ID, "err", err)
	}
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup (runtime.md "kill").
func (c *Container) Kill(sig syscall.Signal, all bool) error {
	st := c.Status()
	if st == StatusStopped {
		return fmt.Errorf("container %s: %w", c.rec.ID, ErrNotRunning)
	}
	if all {
		return c.signalAll(sig)
	}
	if c.rec.Pid <= 0 {
		return fmt.Errorf("container %s is still being created: %w", c.rec.ID, ErrBadState)
	}
	if err := unix.Kill(c.rec.Pid, sig); err != nil {
		return fmt.Errorf("kill %d: %w", c.rec.Pid, err)
	}
	return nil
}

func (c *Container) signalAll(sig syscall.Signal) error {
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	// Freeze first so nothing forks past the list (as runc does), unless
	// it is already frozen.
	frozen := false
	if s, err := cg.FreezerState(); err == nil && s != "FROZEN" {
		if cg.Freeze() == nil {
			frozen = true
		}
	}
	pids, err := cg.Pids()
	if err == nil {
		for _, p := range pids {
			if kerr := unix.Kill(p, sig); kerr != nil && kerr != unix.ESRCH {
				err = fmt.Errorf("kill %d: %w", p, kerr)
			}
		}
	}
	if frozen {
		cg.Thaw()
	}
	return err
}

// Delete removes a stopped (or, with force, any) container: runtime.md
// "delete", then poststop hooks.
func (c *Container) Delete(ctx context.Context, force bool) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	switch st := c.Status(); st {
	case StatusStopped:
	default:
		// runtime.md "delete": a container that is not stopped MUST NOT
		// be touched and the attempt MUST fail. runc deletes created
		// containers anyway; we follow the spec (use --force).
		if !force {
			return fmt.Errorf("cannot delete container %s that is %s (use --force): %w", c.rec.ID, st, ErrBadState)
		}
		if err := c.killAndWait(); err != nil {
			return err
		}
	}
	return c.destroy(ctx)
}

// destroy removes the cgroup and state after the container stopped, and runs
// poststop hooks (failures are warnings, runtime.md).
func (c *Container) destroy(ctx context.Context) error {
	cg, err := c.cgroup()
	if err == nil {
		if c.rec.SharedPidNS {
			// No pid namespace to take the rest down with init.
			c.signalAll(unix.SIGKILL)
		}
		// Destroy itself waits (about a second) for killed processes to
		// leave the cgroup.
		if derr := cg.Destroy(); derr != nil {
			return fmt.Errorf("remove cgroup: %w", derr)
		}
	}
	if c.rec.Hooks != nil && len(c.rec.Hooks.Poststop) > 0 {
		st := c.State()
		st.Status = StatusStopped
		if err := hooks.Run(ctx, "poststop", c.rec.Hooks.Poststop, &st); err != nil {
			slog.Warn("poststop hook failed", "id", c.rec.ID, "err", err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// killAndWait SIGKILLs the container and waits until init is gone.
func (c *Container) killAndWait() error {
	if cg, err := c.cgroup(); err == nil {
		if s, err := cg.FreezerState(); err == nil && s == "FROZEN" && c.rec.Pid > 0 {
			// A frozen process cannot die; kill first, then thaw.
			unix.Kill(c.rec.Pid, unix.SIGKILL)
			cg.Thaw()
		}
	}
	if c.rec.SharedPidNS {
		c.signalAll(unix.SIGKILL)
	}
	if c.rec.Pid <= 0 { // still being created: nothing of ours to signal by pid
		return c.signalAll(unix.SIGKILL)
	}
	if err := unix.Kill(c.rec.Pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill %d: %w", c.rec.Pid, err)
	}
	return waitGone(c.rec.Pid, c.rec.PidStart, 10*time.Second)
}

// waitGone waits for a process that is not our child to exit, with a pidfd
// when possible.
func waitGone(pid int, start uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		defer unix.Close(fd)
		if !processAlive(pid, start) { // pid reused between state and open
			return nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for time.Now().Before(deadline) {
			n, err := unix.Poll(fds, int(time.Until(deadline)/time.Millisecond)+1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				break
			}
		}
	}
	for time.Now().Before(deadline) {
		if !processAlive(pid, start) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !processAlive(pid, start) {
		return nil
	}
	return fmt.Errorf("process %d did not exit within %s", pid, timeout)
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusRunning && st != StatusCreated {
		return fmt.Errorf("cannot pause container %s in state %s: %w", c.rec.ID, st, ErrBadState)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st := c.Status(); st != StatusPaused {
		return fmt.Errorf("cannot resume container %s in state %s: %w", c.rec.ID, st, ErrBadState)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Pids lists the processes of the container (from its cgroup).
func (c *Container) Pids() ([]int, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	pids, err := cg.Pids()
	if err != nil && !c.rec.SharedPidNS && processAlive(c.rec.Pid, c.rec.PidStart) {
		// No cgroup of its own (rootless): its processes are those of its
		// pid namespace.
		return pidsInNamespaceOf(c.rec.Pid)
	}
	return pids, err
}

// pidsInNamespaceOf lists the processes in the pid namespace of pid, from
// /proc (only those this user may see).
func pidsInNamespaceOf(pid int) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &want); err != nil {
		return nil, fmt.Errorf("pid namespace of %d: %w", pid, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/pid", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			out = append(out, p)
		}
	}
	return out, nil
}

// Update changes the resources of a live container.
func (c *Container) Update(r *specs.LinuxResources) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if c.Status() == StatusStopped {
		return fmt.Errorf("container %s: %w", c.rec.ID, ErrNotRunning)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	// Update may join hierarchies (hybrid hosts): record them even when it
	// fails part way, so that delete removes what it made.
	err = cg.Update(r)
	c.rec.Cgroup = cg.State()
	if serr := c.save(); err == nil {
		err = serr
	}
	return err
}

// Run creates a container whose process starts at once (no exec.fifo round
// trip) and runs the poststart hooks: `run`, and `run --detach`.
func (r *Runtime) Run(ctx context.Context, id string, o CreateOpts) (*Created, error) {
	o.StartNow = true
	c, err := r.Create(ctx, id, o)
	if err != nil {
		return nil, err
	}
	c.runPoststart(ctx)
	return c, nil
}

// Remove deletes a container whose process is known to have exited (run).
func (c *Container) Remove(ctx context.Context) error {
	unlock, err := c.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return c.destroy(ctx)
}
