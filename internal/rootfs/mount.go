package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotSupported marks spec features hako does not implement yet.
	ErrNotSupported = errors.New("not supported yet")
	// ErrUnsafe marks a path or object that failed a safety check: a mount
	// target that escaped or was swapped, a /dev/null that is not 1:3, ...
	ErrUnsafe = errors.New("unsafe")
	// ErrInvalid marks an invalid spec value (bad sysctl key, relative path).
	ErrInvalid = errors.New("invalid argument")
)

// root is an O_PATH handle on a directory that acts as "/" for every lookup
// made through it: the rootfs before pivot_root, the real "/" after it.
type root struct {
	f *os.File
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, err)
	}
	return &root{f: os.NewFile(uintptr(fd), dir)}, nil
}

func (r *root) fd() int      { return int(r.f.Fd()) }
func (r *root) Close() error { return r.f.Close() }

// inRoot is how every container path is resolved: symlinks (absolute or
// "..") are scoped to the root as if it were "/", and magic links such as
// /proc/self/fd/N or /proc/self/root, which could jump anywhere, are refused.
const inRoot = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// lookup returns an O_PATH fd for p resolved inside the root.
func (r *root) lookup(p string) (int, error) {
	return openat2(r.fd(), p, unix.O_PATH|unix.O_CLOEXEC, inRoot)
}

func openat2(dirfd int, p string, flags uint64, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: flags, Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, p, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename raced with RESOLVE_IN_ROOT's ".." check.
			continue
		}
		return fd, err
	}
}

// mkdirAll creates p (mode 0755 for new components) inside the root and
// returns an O_PATH fd on it.
//
// The longest existing prefix is found with in-root lookups (symlinks in it
// are followed, scoped to the root, like every container path). Each missing
// component is then made with mkdirat relative to the fd of its parent and
// opened with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV: a
// component swapped for a symlink or a mount meanwhile is refused rather than
// followed. (pathrs-lite's MkdirAllHandle gives the same guarantees but goes
// through procfs for every component, some 10x slower, and this runs for
// every mount point of every container start.) A component that is a dangling
// symlink fails with ELOOP: where it points may not exist yet, and creating
// through it is what an attacker would want.
func (r *root) mkdirAll(p string) (int, error) {
	p = cleanDest(p)
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if p == "/" {
		parts = nil
	}
	// Find the longest existing prefix, from the full path down.
	n := len(parts)
	cur := -1
	for ; n >= 0; n-- {
		fd, err := openat2(r.fd(), "/"+strings.Join(parts[:n], "/"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, inRoot)
		if err == nil {
			cur = fd
			break
		}
		if !errors.Is(err, unix.ENOENT) {
			return -1, fmt.Errorf("mkdir %s: open %s: %w", p, "/"+strings.Join(parts[:n], "/"), err)
		}
	}
	if cur < 0 {
		return -1, fmt.Errorf("mkdir %s: root not found: %w", p, unix.ENOENT)
	}
	for _, part := range parts[n:] {
		if err := unix.Mkdirat(cur, part, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(cur)
			return -1, fmt.Errorf("mkdir %s: %w", p, err)
		}
		next, err := openat2(cur, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC,
			unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_XDEV)
		unix.Close(cur)
		if err != nil {
			if errors.Is(err, unix.ELOOP) {
				return -1, fmt.Errorf("mkdir %s: %q is a symlink to a missing target: %w", p, part, err)
			}
			return -1, fmt.Errorf("mkdir %s: open new %q: %w", p, part, err)
		}
		cur = next
	}
	return cur, nil
}

// target finds or creates a mount point at p inside the root: a directory
// when dir is set, an empty regular file otherwise. The returned fd is the
// object the mount will be attached to.
func (r *root) target(p string, dir bool) (int, error) {
	fd, err := r.lookup(p)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	if dir {
		return r.mkdirAll(p)
	}
	parent, err := r.mkdirAll(path.Dir(p))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	base := path.Base(p)
	f, err := unix.Openat(parent, base, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Lookup said ENOENT but the name exists: a dangling symlink.
			return -1, fmt.Errorf("%s is a dangling symlink: %w", p, unix.ENOENT)
		}
		return -1, err
	}
	unix.Close(f)
	return unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// attach moves the detached mount tree onto the object target refers to.
// move_mount with both *_EMPTY_PATH flags works on the two fds alone: no
// path is resolved at this point, so nothing can be swapped between the safe
// lookup of the target and the mount (the race of CVE-2021-30465), and no
// /proc/self/fd magic link is needed (which a container-controlled /proc
// could redirect once the rootfs is in place).
func attach(tree, target int) error {
	return unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// verify re-resolves p inside the root after a mount and checks that it now
// leads to the mount just attached (tree is that mount's fd): the mount is
// where the spec asked, not under some path a symlink swapped in.
func (r *root) verify(tree int, p string) error {
	want, err := mountID(tree)
	if err != nil {
		return err
	}
	fd, err := r.lookup(p)
	if err != nil {
		return fmt.Errorf("re-open after mount: %w", err)
	}
	defer unix.Close(fd)
	got, err := mountID(fd)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: %s resolves to mount %d after mounting, not to the new mount %d", ErrUnsafe, p, got, want)
	}
	return nil
}

func mountID(fd int) (uint64, error) {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &st); err != nil {
		return 0, fmt.Errorf("statx mount id: %w", err)
	}
	if st.Mask&(unix.STATX_MNT_ID_UNIQUE|unix.STATX_MNT_ID) == 0 {
		return 0, fmt.Errorf("statx: kernel reports no mount id: %w", ErrNotSupported)
	}
	return st.Mnt_id, nil
}

// cloneTree makes a detached copy of the mount at src (followed like any host
// path: bind sources are the runtime caller's, not the container's), of the
// whole tree beneath it when recursive.
func cloneTree(src string, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.OpenTree(unix.AT_FDCWD, src, flags)
}

// cloneFd is cloneTree for an object already held open (a verified
// /dev/null, a pty slave): open_tree(fd, "", AT_EMPTY_PATH) binds exactly
// that inode, whatever happens to its path afterwards.
func cloneFd(fd int, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	return unix.OpenTree(fd, "", flags)
}

// setAttr applies per-mount attributes to the mount fd refers to (attached
// or detached), to its whole tree when recursive.
func setAttr(fd int, a attrChange, recursive bool) error {
	if a.empty() {
		return nil
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", flags, a.mountAttr()); err != nil {
		return fmt.Errorf("mount_setattr set=%#x clr=%#x: %w", a.set, a.clr, err)
	}
	return nil
}

// setPropagation changes the propagation type of an attached mount.
func setPropagation(fd int, flag uint64, recursive bool) error {
	if flag == 0 {
		return nil
	}
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(fd, "", flags, &unix.MountAttr{Propagation: flag}); err != nil {
		return fmt.Errorf("set propagation %#x: %w", flag, err)
	}
	return nil
}

// newFS creates a detached mount of a new filesystem with fsopen/fsconfig/
// fsmount. On failure the kernel's own explanation (the fs context log) is
// added to the error, which mount(2) never gives.
func newFS(fstype, source string, sbFlags, data []string, attrs uint64) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) (int, error) {
		if msg := fsLog(fsfd); msg != "" {
			return -1, fmt.Errorf("%s: %w (%s)", what, err, msg)
		}
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if source != "" {
		if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
			return fail("fsconfig source="+source, err)
		}
	}
	for _, f := range sbFlags {
		if err := unix.FsconfigSetFlag(fsfd, f); err != nil {
			return fail("fsconfig "+f, err)
		}
	}
	for _, d := range data {
		for _, kv := range splitData(d) {
			k, v, hasValue := strings.Cut(kv, "=")
			if hasValue {
				err = unix.FsconfigSetString(fsfd, k, v)
			} else {
				err = unix.FsconfigSetFlag(fsfd, k)
			}
			if err != nil {
				return fail("fsconfig "+kv, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create "+fstype+" superblock", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attrs))
	if err != nil {
		return fail("fsmount "+fstype, err)
	}
	return mfd, nil
}

// splitData splits a legacy comma-separated option string, keeping commas
// inside double quotes (SELinux contexts such as context="a:b:c:s0:c1,c2").
func splitData(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				if i > start {
					out = append(out, s[start:i])
				}
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// fsLog drains the messages the kernel left on an fs context.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	return strings.Join(msgs, "; ")
}

func closeFd(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}
