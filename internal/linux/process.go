package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/hako-runtime/hako/internal/caps"
	"github.com/hako-runtime/hako/internal/linux/sync"
	"github.com/hako-runtime/hako/internal/rootfs"
	"github.com/hako-runtime/hako/internal/spec"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// prepareProcess applies the attributes that need the runtime's privilege:
// rlimits (raising needs CAP_SYS_RESOURCE) and oom_score_adj. It returns
// warnings for what the host does not allow but must not fail the container.
func prepareProcess(p *specs.Process) ([]string, error) {
	var warnings []string
	for _, rl := range p.Rlimits {
		res, ok := spec.RlimitNumber(rl.Type)
		if !ok {
			return nil, fmt.Errorf("set rlimit: unknown type %q", rl.Type)
		}
		// syscall.Setrlimit, not prlimit: for RLIMIT_NOFILE it also tells
		// Go not to restore the soft limit it raised at start-up when we
		// execve (syscall/rlimit.go).
		lim := syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		if err := syscall.Setrlimit(res, &lim); err != nil {
			return nil, fmt.Errorf("set rlimit %s soft %d hard %d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	if p.OOMScoreAdj != nil {
		v := strconv.Itoa(*p.OOMScoreAdj)
		if err := rootfs.WriteProcSelf("oom_score_adj", v); err != nil {
			// Lowering needs CAP_SYS_RESOURCE, which some hosts withhold
			// even from root: keep the container running, say why.
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				warnings = append(warnings, fmt.Sprintf("oom_score_adj %s not permitted on this host, left unchanged", v))
			} else {
				return nil, fmt.Errorf("set oom_score_adj: %w", err)
			}
		}
	}
	return warnings, nil
}

// lookPath finds args[0] in the container (we are past pivot_root) using the
// process's own PATH, as execvp(3) would; done before Ready so that a
// missing executable fails `create`, as with runc.
func lookPath(p *specs.Process) (string, error) {
	if p == nil || len(p.Args) == 0 {
		return "", fmt.Errorf("process.args is empty")
	}
	name := p.Args[0]
	if strings.Contains(name, "/") {
		return name, checkExecutable(resolveIn(p.Cwd, name))
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, e := range p.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		cand := filepath.Join(dir, name)
		if checkExecutable(resolveIn(p.Cwd, cand)) == nil {
			return cand, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in $PATH", name)
}

func resolveIn(cwd, p string) string {
	if filepath.IsAbs(p) || cwd == "" {
		return p
	}
	return filepath.Join(cwd, p)
}

func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%s is a directory", p)
	}
	if st.Mode&0o111 == 0 {
		return fmt.Errorf("%s: permission denied", p)
	}
	return nil
}

// finalizeAndExec switches to the process's identity and execve's it:
// bounding set, user and groups, capabilities, no_new_privs, seccomp, cwd,
// fds; the order is the one that keeps each step permitted.
func finalizeAndExec(s *specs.Spec, path string, b *sync.Bootstrap) error {
	p := s.Process
	cs, err := caps.Parse(p.Capabilities)
	if err != nil {
		return step("parse capabilities", err)
	}
	// chdir as root first: the target may not be searchable by the user
	// (runc tries again after switching, so do we).
	cwdErr := chdir(p.Cwd)
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return step("keep capabilities", err)
	}
	if err := step("drop bounding set", cs.DropBounding()); err != nil {
		return err
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
	// the process may be about to lose: load it now (as runc does).
	hasSeccomp := s.Linux != nil && s.Linux.Seccomp != nil
	if hasSeccomp && !p.NoNewPrivileges {
		if err := step("load seccomp", loadSeccomp(s, b.ListenerFD, b.ProcessState)); err != nil {
			return err
		}
	}
	if err := step("switch user", switchUser(p.User)); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return step("clear keep capabilities", err)
	}
	if err := step("set capabilities", cs.Apply()); err != nil {
		return err
	}
	if cwdErr != nil {
		if err := step("change directory", chdir(p.Cwd)); err != nil {
			return err
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return step("set no_new_privs", err)
		}
	}
	// Last before execve: the runtime's own syscalls are not filtered.
	if hasSeccomp && p.NoNewPrivileges {
		if err := step("load seccomp", loadSeccomp(s, b.ListenerFD, b.ProcessState)); err != nil {
			return err
		}
	}
	if err := step("close fds", closeFDs(3+b.PreserveFD)); err != nil {
		return err
	}
	env := p.Env
	if env == nil {
		env = []string{}
	}
	err = unix.Exec(path, p.Args, env)
	return fmt.Errorf("exec %s: %w", path, err)
}

// chdir changes to process.cwd resolved inside the container's root: no
// ".." or symlink can leave it, and no magic link (/proc/self/fd/N of an fd
// the runtime still holds) can reach a host directory (CVE-2024-21626).
func chdir(dir string) error {
	if dir == "" {
		dir = "/"
	}
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer unix.Close(root)
	fd, err := unix.Openat2(root, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	return nil
}

// switchUser sets groups, gid and uid of this thread (raw syscalls: only the
// thread that will execve matters, and Go's setuid wrappers change all).
func switchUser(u specs.User) error {
	if u.Umask != nil {
		unix.Umask(int(*u.Umask))
	}
	gids := make([]uint32, 0, len(u.AdditionalGids))
	gids = append(gids, u.AdditionalGids...)
	if err := setgroups(gids); err != nil {
		// A user namespace with setgroups denied (rootless) refuses even
		// an empty list; only an explicit list is an error then.
		if !(errors.Is(err, unix.EPERM) && len(gids) == 0) {
			return fmt.Errorf("setgroups %v: %w", gids, err)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	return nil
}

func setgroups(gids []uint32) error {
	var p uintptr
	if len(gids) > 0 {
		p = uintptr(unsafe.Pointer(&gids[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), p, 0); e != 0 {
		return e
	}
	return nil
}

// closeFDs marks every fd from first upward close-on-exec, so that nothing
// of the runtime reaches the container (CVE-2024-21626).
func closeFDs(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Fallback for kernels without CLOSE_RANGE_CLOEXEC (< 5.11).
	ents, rerr := os.ReadDir("/proc/self/fd")
	if rerr != nil {
		return fmt.Errorf("close_range: %v; list fds: %w", err, rerr)
	}
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if fd >= first {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}
