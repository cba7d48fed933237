package rootfs

import (
	"errors"
	"fmt"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices is config-linux.md "Default Devices": the runtime MUST
// supply these, mode 0666, owned by root.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// createDevices fills /dev. linux.devices are created unless /dev is bound
// from elsewhere (runc's rule: a bound /dev is the caller's). The default
// devices and the /dev symlinks of config-linux.md "Dev symbolic links" are
// only added when /dev is the tmpfs the spec mounted, so a /dev taken from
// the image or a bind is never written to behind the user's back.
func (p *preparer) createDevices() error {
	if p.devBind {
		return nil
	}
	devTmpfs, err := p.devIsOurTmpfs()
	if err != nil {
		return err
	}
	var devs []specs.LinuxDevice
	if devTmpfs {
		for _, d := range defaultDevices {
			if !p.specHasDevice(d.Path) {
				devs = append(devs, d)
			}
		}
	}
	devs = append(devs, p.linux.Devices...)
	for _, d := range devs {
		if err := p.root.device(d); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
	}
	if !devTmpfs {
		return nil
	}
	if err := p.devSymlinks(); err != nil {
		return err
	}
	if p.devRO {
		fd, err := p.root.lookup("/dev")
		if err != nil {
			return fmt.Errorf("/dev: %w", err)
		}
		defer unix.Close(fd)
		return setAttr(fd, attrChange{set: unix.MOUNT_ATTR_RDONLY}, false)
	}
	return nil
}

func (p *preparer) specHasDevice(devPath string) bool {
	for _, d := range p.linux.Devices {
		if path.Clean(d.Path) == devPath {
			return true
		}
	}
	return false
}

// devIsOurTmpfs checks that /dev, resolved now, is still the tmpfs mount the
// spec created (a later spec mount might have covered it).
func (p *preparer) devIsOurTmpfs() (bool, error) {
	if p.devMount == 0 {
		return false, nil
	}
	fd, err := p.root.lookup("/dev")
	if err != nil {
		return false, fmt.Errorf("/dev: %w", err)
	}
	defer unix.Close(fd)
	id, err := mountID(fd)
	if err != nil {
		return false, err
	}
	return id == p.devMount, nil
}

func deviceMode(d specs.LinuxDevice) (uint32, error) {
	var t uint32
	switch d.Type {
	case "c", "u":
		t = unix.S_IFCHR
	case "b":
		t = unix.S_IFBLK
	case "p":
		t = unix.S_IFIFO
	default:
		return 0, fmt.Errorf("%w: device type %q (want c, u, b or p)", ErrInvalid, d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	return t | perm, nil
}

// device creates one device node inside the root. The parent directory is
// created and opened in-root; the node is made with mknodat relative to it
// (mknodat never follows a symlink in the last component). Where mknod is
// not permitted (a user namespace), the host's node at the same path is
// bind-mounted onto an empty file instead, as runc does.
func (r *root) device(d specs.LinuxDevice) error {
	mode, err := deviceMode(d)
	if err != nil {
		return err
	}
	p := cleanDest(d.Path)
	if p == "/" {
		return fmt.Errorf("%w: device path %q", ErrInvalid, d.Path)
	}
	parent, err := r.mkdirAll(path.Dir(p))
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	name := path.Base(p)
	rdev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	if mode&unix.S_IFMT == unix.S_IFIFO {
		rdev = 0
	}
	err = unix.Mknodat(parent, name, mode, rdev)
	if errors.Is(err, unix.EEXIST) {
		// Whatever is there (a file from the image, a symlink) is replaced,
		// unless it already is this very device.
		var st unix.Stat_t
		if err := unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == mode&unix.S_IFMT && int(st.Rdev) == rdev {
			err = nil
		} else {
			if err := unix.Unlinkat(parent, name, 0); err != nil {
				return fmt.Errorf("replace existing entry: %w", err)
			}
			err = unix.Mknodat(parent, name, mode, rdev)
		}
	}
	if errors.Is(err, unix.EPERM) && mode&unix.S_IFMT != unix.S_IFIFO {
		return bindHostDevice(parent, name, p, mode, rdev)
	}
	if err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(parent, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	// mknod honours the umask; set the exact mode the spec asked for.
	if err := unix.Fchmodat(parent, name, mode&0o7777, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// bindHostDevice binds the host's device node at hostPath onto a new empty
// file parent/name, after checking that the host node is the device asked
// for (type and major:minor of the open tree itself, not of a path).
func bindHostDevice(parent int, name, hostPath string, mode uint32, rdev int) error {
	tree, err := cloneTree(hostPath, false)
	if err != nil {
		return fmt.Errorf("mknod not permitted and host device cannot be bound: %w", err)
	}
	defer unix.Close(tree)
	var st unix.Stat_t
	if err := unix.Fstat(tree, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != mode&unix.S_IFMT || int(st.Rdev) != rdev {
		return fmt.Errorf("%w: host %s is not device %d:%d", ErrUnsafe, hostPath, unix.Major(uint64(rdev)), unix.Minor(uint64(rdev)))
	}
	f, err := unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o600)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create bind target: %w", err)
	}
	closeFd(f)
	target, err := unix.Openat(parent, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	var tst unix.Stat_t
	if err := unix.Fstat(target, &tst); err != nil {
		return err
	}
	if tst.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: bind target for %s is not a regular file", ErrUnsafe, hostPath)
	}
	if err := attach(tree, target); err != nil {
		return fmt.Errorf("bind host device: %w", err)
	}
	return nil
}

// devSymlinks creates config-linux.md "Dev symbolic links" and runc's extras:
// /dev/core when /proc is mounted, /dev/ptmx -> pts/ptmx when devpts is.
func (p *preparer) devSymlinks() error {
	dev, err := p.root.lookup("/dev")
	if err != nil {
		return err
	}
	defer unix.Close(dev)
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	if p.procMount {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	if p.ptsMount {
		// config-linux.md "Default File Systems": /dev/ptmx must be the
		// devpts instance's multiplexer, not the host's.
		if err := unix.Unlinkat(dev, "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove /dev/ptmx: %w", err)
		}
		links = append(links, [2]string{"pts/ptmx", "ptmx"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dev, l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	return nil
}
