// Package runtime is hako's container lifecycle: create, start, state, kill,
// delete, exec, pause and resume over a state directory, as the runtime-spec
// (runtime.md) defines them. The runc-compatible CLI and, later, the pod and
// CRI layers are thin callers of this package.
//
// On disk, one directory per container under the root:
//
//	<root>/<id>/state.json   small record, written atomically (temp + rename)
//	<root>/<id>/config.json  the validated spec, for exec
//	<root>/<id>/exec.fifo    exists from create until start
//	<root>/<id>/lock         flock(2) serialising commands on one container
//
// The status is never stored: it is derived from the init process (alive,
// same start time, not a zombie), the fifo and the freezer, so a container
// whose process died is reported stopped without anyone updating a file.
package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hako-runtime/hako/internal/cgroups"
	"github.com/hako-runtime/hako/internal/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Errors classified once; the CLI maps them to messages and exit codes.
var (
	ErrNotExist   = errors.New("container does not exist")
	ErrExist      = errors.New("container already exists")
	ErrNotRunning = errors.New("container is not running")
	ErrBadState   = errors.New("operation not allowed in the container's current state")
)

// Runtime holds the state root. Everything else is passed per call.
type Runtime struct {
	Root     string
	Rootless bool
	// CgroupRoot is where cgroup hierarchies are mounted ("" = /sys/fs/cgroup).
	CgroupRoot string
}

// Status values, as in runtime-spec state.
const (
	StatusCreating = specs.StateCreating
	StatusCreated  = specs.StateCreated
	StatusRunning  = specs.StateRunning
	StatusStopped  = specs.StateStopped
	StatusPaused   = specs.ContainerState("paused")
)

// record is state.json.
type record struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pidStartTime"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Cgroup      cgroups.State     `json:"cgroup"`
	// SharedPidNS: the container has no pid namespace of its own, so its
	// processes must be found (and killed) through the cgroup.
	SharedPidNS bool         `json:"sharedPidNS,omitempty"`
	Hooks       *specs.Hooks `json:"hooks,omitempty"` // poststart and poststop only
	// NoProcess: created without process (allowed); start must fail.
	NoProcess bool `json:"noProcess,omitempty"`
}

// Container is one loaded container.
type Container struct {
	rt  *Runtime
	dir string
	rec record
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

func (r *Runtime) cgroupOptions() cgroups.Options {
	return cgroups.Options{Root: r.CgroupRoot, Rootless: r.Rootless}
}

// Load reads a container's state. The id is validated first so that no
// command can be pointed outside the root.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := spec.ValidateID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	c := &Container{rt: r, dir: dir}
	if err := json.Unmarshal(b, &c.rec); err != nil {
		return nil, fmt.Errorf("parse state of %s: %w", id, err)
	}
	return c, nil
}

// List loads every container under the root, sorted by id.
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", r.Root, err)
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			continue // being created or deleted right now
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.ID < out[j].rec.ID })
	return out, nil
}

// ID returns the container's id.
func (c *Container) ID() string { return c.rec.ID }

// Pid returns the container's init pid.
func (c *Container) Pid() int { return c.rec.Pid }

// Bundle returns the bundle path.
func (c *Container) Bundle() string { return c.rec.Bundle }

// Created returns the creation time.
func (c *Container) Created() time.Time { return c.rec.Created }

// Owner returns the user that created the container.
func (c *Container) Owner() string { return c.rec.Owner }

// Rootfs returns the rootfs path.
func (c *Container) Rootfs() string { return c.rec.Rootfs }

// Annotations returns the spec annotations.
func (c *Container) Annotations() map[string]string { return c.rec.Annotations }

// Status derives the status from the live system.
func (c *Container) Status() specs.ContainerState {
	if c.rec.Pid == 0 {
		// Written at the start of create: creating while the creator
		// holds the lock, stopped (a crashed create) otherwise.
		if lockHeld(c.dir) {
			return StatusCreating
		}
		return StatusStopped
	}
	if !processAlive(c.rec.Pid, c.rec.PidStart) {
		return StatusStopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, "exec.fifo")); err == nil {
		return StatusCreated
	}
	if cg, err := c.cgroup(); err == nil {
		if st, err := cg.FreezerState(); err == nil && st == "FROZEN" {
			return StatusPaused
		}
	}
	return StatusRunning
}

// State is the runtime-spec state of the container (runtime.md "State").
// The pid is only reported while the process exists.
func (c *Container) State() specs.State {
	st := specs.State{
		Version:     specs.Version,
		ID:          c.rec.ID,
		Status:      c.Status(),
		Bundle:      c.rec.Bundle,
		Annotations: c.rec.Annotations,
	}
	if st.Status != StatusStopped {
		st.Pid = c.rec.Pid
	}
	return st
}

func (c *Container) cgroup() (cgroups.Manager, error) {
	return cgroups.Load(c.rec.Cgroup, c.rt.cgroupOptions())
}

// lock takes the container's exclusive lock; the returned func releases it.
func (c *Container) lock() (func(), error) { return lockDir(c.dir) }

// lockHeld reports whether another process holds the container's lock.
func lockHeld(dir string) bool {
	fd, err := unix.Open(filepath.Join(dir, "lock"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == unix.EWOULDBLOCK
}

func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(filepath.Join(dir, "lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { unix.Close(fd) }, nil
}

// save writes state.json atomically.
func (c *Container) save() error {
	b, err := json.Marshal(&c.rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, "state.json"), b, 0o600)
}

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so readers see the old or the new file, never a torn
// one. No fsync: runtime state lives on tmpfs (/run) and is meaningless
// after a reboot, and a sync would cost a disk flush on every create.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// processStartTime reads field 22 of /proc/<pid>/stat, and whether the
// process is a zombie (which counts as stopped).
func processStartTime(pid int) (start uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name may contain spaces and parentheses: split after
	// the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, false, fmt.Errorf("malformed stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, zombie, err := processStartTime(pid)
	return err == nil && !zombie && st == start
}
