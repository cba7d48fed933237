package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hako-runtime/hako/internal/cgroups"
	"github.com/hako-runtime/hako/internal/hooks"
	"github.com/hako-runtime/hako/internal/linux/sync"
	"github.com/hako-runtime/hako/internal/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CreateOpts are the options of `create` (and of `run`).
type CreateOpts struct {
	Bundle        string
	ConsoleSocket string // path of a unix socket to send the pty master to
	// AllocateConsole, instead of ConsoleSocket, hands the pty master back
	// in Created.Console (run without --console-socket).
	AllocateConsole bool
	PidFile         string
	NoPivot         bool
	NoNewKeyring    bool
	PreserveFDs     int
	Stdio           Stdio
	// StartNow skips exec.fifo: the container's process starts as soon as
	// it is created (`run`), saving a round trip through the file system.
	StartNow bool
	// StartGate, if set, must be closed before init may go on past the
	// cgroup step, i.e. before the container's process can start: `run`
	// installs its signal forwarder meanwhile, so no signal is lost.
	StartGate <-chan struct{}
}

// Created is a container that has just been created by this process: it is
// our child, so the caller can wait for it.
type Created struct {
	*Container
	Process *os.Process
	Console *os.File // the pty master, with AllocateConsole
}

// Create creates a container from a bundle (runtime.md "create"): on return
// the container's process waits in "created" state for Start. On any error
// nothing is left behind: no state, cgroup, mount or process.
func (r *Runtime) Create(ctx context.Context, id string, o CreateOpts) (_ *Created, err error) {
	if err := spec.ValidateID(id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", o.Bundle, err)
	}
	s, config, err := spec.Read(bundle)
	if err != nil {
		return nil, err
	}
	if s.Process == nil && o.StartNow {
		return nil, fmt.Errorf("config.json: process is required to run a container")
	}
	if s.Linux == nil {
		return nil, fmt.Errorf("config.json: linux section is required")
	}
	rootfs := s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("root.path %s: not a directory", rootfs)
	}
	terminal := s.Process != nil && s.Process.Terminal
	if terminal && o.ConsoleSocket == "" && !o.AllocateConsole {
		return nil, fmt.Errorf("process.terminal is true but no --console-socket was given")
	}
	plan, err := planNamespaces(s.Linux.Namespaces)
	if err != nil {
		return nil, err
	}
	defer plan.close()

	if err := os.MkdirAll(r.Root, 0o711); err != nil {
		return nil, fmt.Errorf("create state root %s: %w", r.Root, err)
	}
	dir := r.dir(id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
			os.RemoveAll(dir)
		}
	}()
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Cgroup first: with cgroup v2 the child is cloned straight into it.
	cg, err := cgroups.New(s.Linux.CgroupsPath, id, r.cgroupOptions())
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	if err := cg.Create(withDeviceRules(s)); err != nil {
		cg.Destroy()
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	cleanups = append(cleanups, func() { cg.Destroy() })
	// A first state.json (no pid yet): should this process die before the
	// end, `delete --force` still finds the cgroup to remove.
	c := &Container{rt: r, dir: dir, rec: record{
		OCIVersion: specs.Version, ID: id, Bundle: bundle, Rootfs: rootfs,
		Created: time.Now().UTC(), Owner: owner(), Annotations: s.Annotations,
		Cgroup: cg.State(), SharedPidNS: !hasNamespace(s, specs.PIDNamespace),
		NoProcess: s.Process == nil,
	}}
	if err := c.save(); err != nil {
		return nil, err
	}

	sys := &syscall.SysProcAttr{Cloneflags: plan.cloneFlags}
	// Rootless with more than our own ids: the maps are written with
	// newuidmap/newgidmap while init waits in hako-nsenter (usermaps.go).
	idHelpers := plan.newUserNS && r.Rootless && needsIDHelpers(s.Linux)
	if idHelpers {
		if err := checkRootlessMaps(s.Linux); err != nil {
			return nil, err
		}
	} else if plan.newUserNS {
		sys.UidMappings = idMaps(s.Linux.UIDMappings)
		sys.GidMappings = idMaps(s.Linux.GIDMappings)
		sys.GidMappingsEnableSetgroups = !r.Rootless
		// Become root of the new namespace before exec'ing init: with the
		// host uid left unmapped, execve would drop every capability.
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: r.Rootless}
	}
	if fd, ok, err := cg.CgroupFD(); err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	} else if ok {
		sys.UseCgroupFD, sys.CgroupFD = true, fd
		defer unix.Close(fd)
	}

	boot := &sync.Bootstrap{
		Mode: "create", ID: id, Bundle: bundle, Rootfs: rootfs, Spec: s,
		NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, PreserveFD: o.PreserveFDs,
		TimeNS: plan.newTimeNS, NewCgroupNS: plan.newCgroupNS,
		NoMountNS: !hasNamespace(s, specs.MountNamespace),
		Debug:     slog.Default().Enabled(ctx, slog.LevelDebug),
	}
	if st := cg.State(); st.Mode == cgroups.Hybrid {
		boot.CgroupV1 = []string{}
		for c := range st.Paths {
			if c != cgroups.UnifiedKey {
				boot.CgroupV1 = append(boot.CgroupV1, c)
			}
		}
	}
	files, err := openInitFiles(terminal, o.ConsoleSocket, s)
	if err != nil {
		return nil, err
	}
	defer files.close()
	if !o.StartNow {
		if files.fifo, err = makeFifo(filepath.Join(dir, "exec.fifo")); err != nil {
			return nil, err
		}
	}
	stdio := o.Stdio
	if stdio.In == nil {
		stdio = DefaultStdio()
	}
	var env []string
	idmapIdx := idmapMounts(s)
	if len(idmapIdx) > 0 {
		if r.Rootless {
			return nil, fmt.Errorf("mounts[%d] (%s): id-mapped mounts need CAP_SYS_ADMIN in the host's user namespace: not available rootless", idmapIdx[0], s.Mounts[idmapIdx[0]].Destination)
		}
		env = append(env, sync.EnvIDMapFDs+"="+strconv.Itoa(len(idmapIdx)))
	}
	ch, err := spawn(spawnOpts{
		stdio: stdio, preserveFDs: o.PreserveFDs, extra: files.list(),
		join: plan.join, unshare: plan.unshareFlags, pidNS: plan.pidNS, sys: sys, dir: bundle, env: env,
		waitMaps: idHelpers,
	})
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, ch.kill)
	defer ch.conn.Close()
	pid := ch.proc.Pid
	if idHelpers {
		if err := writeRootlessMaps(pid, s.Linux); err != nil {
			return nil, err
		}
		if err := ch.conn.SendType(sync.TypeMaps); err != nil {
			return nil, initError(ch, cg, err)
		}
	}
	if len(idmapIdx) > 0 {
		if err := sendIDMapped(ch, s, idmapIdx, bundle, plan); err != nil {
			return nil, err
		}
		boot.IDMapMounts = idmapIdx
	}
	files.place(boot, ch.extraFD)
	if files.listener != nil {
		boot.ProcessState = &specs.ContainerProcessState{
			Version: specs.Version, Pid: pid,
			State: specs.State{Version: specs.Version, ID: id, Status: StatusCreating, Pid: pid, Bundle: bundle, Annotations: s.Annotations},
		}
	}
	if err := ch.conn.Send(&sync.Message{Type: sync.TypeBootstrap, Bootstrap: boot}); err != nil {
		return nil, initError(ch, cg, err)
	}
	// Moving a process between cgroup v1 hierarchies waits for an RCU
	// grace period in the kernel (milliseconds); init mounts meanwhile.
	if err := cg.Enter(pid); err != nil {
		return nil, fmt.Errorf("enter cgroup: %w", err)
	}
	if err := waitGate(ctx, o.StartGate); err != nil {
		return nil, err
	}
	if err := ch.conn.SendType(sync.TypeCgroup); err != nil {
		return nil, initError(ch, cg, err)
	}
	// While init prepares the container: our copy of config.json (exec
	// reads it), as read from the bundle, not encoded again.
	if err := writeFileAtomic(filepath.Join(dir, "config.json"), config, 0o600); err != nil {
		return nil, err
	}
	// Hooks run after the environment exists: status "created"
	// (runtime.md "State" and "Lifecycle" step 2).
	st := &specs.State{Version: specs.Version, ID: id, Status: StatusCreated, Pid: pid, Bundle: bundle, Annotations: s.Annotations}
	for {
		m, err := ch.conn.Recv()
		if err != nil {
			return nil, initError(ch, cg, err)
		}
		if m.Type == sync.TypeReady {
			for _, w := range m.Warnings {
				slog.Warn(w, "id", id)
			}
			if len(m.Timings) > 0 {
				slog.Debug("init steps", "id", id, "timings", m.Timings)
			}
			if o.StartNow {
				// Init goes straight on to execve; the sync socket is
				// close-on-exec, so EOF means the process runs and an
				// Error message that it could not be started.
				if _, err := ch.conn.Recv(); !errors.Is(err, sync.ErrClosed) {
					if err == nil {
						err = fmt.Errorf("init: unexpected message after ready")
					}
					return nil, initError(ch, cg, err)
				}
			}
			break
		}
		if m.Type != sync.TypeHooks {
			return nil, fmt.Errorf("init: unexpected %q message", m.Type)
		}
		// runtime.md: prestart (deprecated) then createRuntime, in the
		// runtime namespace; a failure stops the container.
		if err := hooks.Run(ctx, "prestart", s.Hooks.Prestart, st); err != nil { //nolint:staticcheck
			return nil, err
		}
		if err := hooks.Run(ctx, "createRuntime", s.Hooks.CreateRuntime, st); err != nil {
			return nil, err
		}
		if err := ch.conn.SendType(sync.TypeAck); err != nil {
			return nil, initError(ch, cg, err)
		}
	}

	start, _, err := processStartTime(pid)
	if err != nil {
		return nil, initError(ch, cg, fmt.Errorf("read init start time: %w", err))
	}
	c.rec.Pid, c.rec.PidStart = pid, start
	if s.Hooks != nil && (len(s.Hooks.Poststart) > 0 || len(s.Hooks.Poststop) > 0) {
		c.rec.Hooks = &specs.Hooks{Poststart: s.Hooks.Poststart, Poststop: s.Hooks.Poststop}
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if err := writePidFile(o.PidFile, pid); err != nil {
			return nil, err
		}
	}
	out := &Created{Container: c, Process: ch.proc}
	if out.Console, err = files.recv.receive(); err != nil {
		return nil, err
	}
	return out, nil
}

// waitGate waits until gate (if any) is closed.
func waitGate(ctx context.Context, gate <-chan struct{}) error {
	if gate == nil {
		return nil
	}
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// initError turns a failure talking to init into the most useful error: the
// error init reported, or how it died.
// oomCounter is the part of the cgroup manager initError needs.
type oomCounter interface{ OOMKills() (uint64, error) }

// initError turns a failure talking to init into the most useful error: the
// error init reported, or how it died (an OOM kill says so: a memory limit
// too small to start in is a common mistake, runc#1980).
func initError(ch *child, cg oomCounter, err error) error {
	if !errors.Is(err, sync.ErrClosed) {
		return err
	}
	ch.conn.Close()
	st, werr := ch.proc.Wait()
	if werr != nil {
		return fmt.Errorf("container init exited before it was ready")
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		if n, err := cg.OOMKills(); err == nil && n > 0 {
			return fmt.Errorf("container init was killed by the OOM killer before it was ready: linux.resources.memory.limit is too small to start the container")
		}
		return fmt.Errorf("container init was killed (SIGKILL) before it was ready")
	}
	return fmt.Errorf("container init exited before it was ready: %s", st)
}

func idMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

func hasNamespace(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// makeFifo creates exec.fifo and opens it read-write: init blocks reading
// it, and `start` opening it for writing fails with ENXIO once init is gone.
func makeFifo(path string) (*os.File, error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("create exec fifo: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	return f, nil
}

func writePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return writeFileAtomic(abs, []byte(strconv.Itoa(pid)), 0o644)
}

func owner() string {
	uid := os.Getuid()
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return "#" + strconv.Itoa(uid)
}
