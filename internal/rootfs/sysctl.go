package rootfs

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// isIPCSysctl reports whether key belongs to the IPC namespace: the SysV IPC
// limits and id counters (kernel.shm*, kernel.msg*, kernel.sem*) and POSIX
// message queues (fs.mqueue.*), as runc's list.
func isIPCSysctl(key string) bool {
	for _, p := range []string{"kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue."} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// CheckSysctl validates one linux.sysctl entry against the spec's
// namespaces (config-linux.md "Sysctl": the runtime must not apply a sysctl
// that is not namespaced to the container). It is exported so that the
// runtime can reject a bad config at create time, before any process exists.
//
// Keys come in the two forms sysctl(8) knows: dotted ("net.ipv4.ip_forward")
// or with slashes, where dots are literal ("net/ipv4/conf/eth0.100/forwarding",
// the only way to name an interface with a dot). spec.Validate accepts both.
func CheckSysctl(s *specs.Spec, key, value string) error {
	if err := checkSysctlKey(key); err != nil {
		return err
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		return fmt.Errorf("sysctl %q: %w: value contains a newline or NUL", key, ErrInvalid)
	}
	var lx specs.Linux
	if s.Linux != nil {
		lx = *s.Linux
	}
	has := func(t specs.LinuxNamespaceType) bool {
		for _, ns := range lx.Namespaces {
			if ns.Type == t {
				return true
			}
		}
		return false
	}
	// Classify on the dotted form: "net/ipv4/x" is "net.ipv4.x".
	dotted := key
	if strings.Contains(key, "/") {
		dotted = strings.ReplaceAll(key, "/", ".")
	}
	switch {
	case isIPCSysctl(dotted):
		if !has(specs.IPCNamespace) {
			return fmt.Errorf("sysctl %q: %w: needs an IPC namespace (linux.namespaces has none)", key, ErrInvalid)
		}
	case strings.HasPrefix(dotted, "net."):
		if !has(specs.NetworkNamespace) {
			return fmt.Errorf("sysctl %q: %w: needs a network namespace (linux.namespaces has none); it would change the host", key, ErrInvalid)
		}
	case dotted == "kernel.domainname":
		if !has(specs.UTSNamespace) {
			return fmt.Errorf("sysctl %q: %w: needs a UTS namespace", key, ErrInvalid)
		}
	case dotted == "kernel.hostname":
		return fmt.Errorf("sysctl %q: %w: set the \"hostname\" field instead", key, ErrInvalid)
	default:
		return fmt.Errorf("sysctl %q: %w: not a namespaced sysctl", key, ErrInvalid)
	}
	return nil
}

// checkSysctlKey accepts keys of plain components only: no empty component
// (which "a..b" or "net//x" would give), no "." or ".." component in the
// slash form (which would let "net/../kernel/x" walk out of /proc/sys/net),
// no whitespace or control characters.
func checkSysctlKey(key string) error {
	if key == "" {
		return fmt.Errorf("sysctl key is empty: %w", ErrInvalid)
	}
	for _, c := range key {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return fmt.Errorf("sysctl %q: %w: key contains %q", key, ErrInvalid, c)
		}
	}
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	for _, part := range strings.Split(key, sep) {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("sysctl %q: %w: empty, \".\" or \"..\" component (or a leading or trailing separator)", key, ErrInvalid)
		}
	}
	return nil
}

// sysctlPath is key's file below /proc/sys: dots become slashes in the
// dotted form; the slash form is already a path (its dots are literal).
func sysctlPath(key string) string {
	if strings.Contains(key, "/") {
		return key
	}
	return strings.ReplaceAll(key, ".", "/")
}

// WriteSysctls writes linux.sysctl, after Pivot, from inside the container's
// namespaces. Every key is validated first (CheckSysctl), so a bad entry
// fails before anything is written.
//
// The files are opened through a procfs handle from pathrs-lite: a private
// procfs instance (fsopen) where the kernel allows one, else a detached clone
// of /proc, checked to be a procfs root; the final open uses openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV, and the opened file is
// checked again with fstatfs(PROC_SUPER_MAGIC). Neither a symlink nor a bind
// mount in the container's /proc can redirect the write. The per-namespace
// /proc/sys files show the namespaces of the opening process, which is
// already the container's, so the private instance writes the container's
// values. Because it does not go through the container's /proc mount, the
// read-only /proc/sys of readonlyPaths does not get in the way either: it can
// run before or after Finish.
func WriteSysctls(s *specs.Spec) error {
	if s.Linux == nil || len(s.Linux.Sysctl) == 0 {
		return nil
	}
	keys := make([]string, 0, len(s.Linux.Sysctl))
	for k, v := range s.Linux.Sysctl {
		if err := CheckSysctl(s, k, v); err != nil {
			return err
		}
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic order, deterministic errors

	proc, err := procfs.OpenUnsafeProcRoot()
	if err != nil {
		return fmt.Errorf("sysctl: open procfs: %w", err)
	}
	defer proc.Close()
	sys, err := proc.OpenRoot("sys")
	if err != nil {
		return fmt.Errorf("sysctl: open /proc/sys: %w", err)
	}
	defer sys.Close()
	for _, k := range keys {
		if err := writeSysctl(int(sys.Fd()), k, s.Linux.Sysctl[k]); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(sys int, key, value string) error {
	rel := sysctlPath(key)
	fd, err := openat2(sys, rel, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC,
		unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_XDEV)
	if err != nil {
		return fmt.Errorf("sysctl %q: open /proc/sys/%s: %w", key, rel, err)
	}
	defer unix.Close(fd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return fmt.Errorf("sysctl %q: statfs: %w", key, err)
	}
	if sfs.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("sysctl %q: %w: /proc/sys/%s is not on procfs", key, ErrUnsafe, rel)
	}
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("sysctl %q = %q: %w", key, value, err)
	}
	return nil
}

// WriteProcSelf writes value to /proc/self/<name> (oom_score_adj, ...) of the
// calling process through a private procfs instance, checked to be procfs:
// the container's /proc, which its image or its mounts could have replaced,
// is never trusted for the runtime's own writes (CVE-2025-52881 class).
func WriteProcSelf(name, value string) error {
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	h, err := proc.OpenSelf(name)
	if err != nil {
		return fmt.Errorf("open /proc/self/%s: %w", name, err)
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, unix.O_WRONLY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open /proc/self/%s: %w", name, err)
	}
	defer f.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return fmt.Errorf("statfs /proc/self/%s: %w", name, err)
	}
	if sfs.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("/proc/self/%s: %w: not on procfs", name, ErrUnsafe)
	}
	if _, err := f.Write([]byte(value)); err != nil {
		return fmt.Errorf("write /proc/self/%s: %w", name, err)
	}
	return nil
}
