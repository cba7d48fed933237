// Package mount holds the one description of a filesystem mount that hako
// passes between packages: snapshotters emit []Mount to describe a snapshot
// (containerd's model: a snapshot is the mounts that realise it, not a path),
// and the runtime and the unpacker consume them.
package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is a mount to perform, relative to some target directory.
type Mount struct {
	// Type is the filesystem type ("overlay", "bind", "tmpfs", ...). For
	// bind mounts the type is "bind" and Options contain "bind" or "rbind".
	Type string `json:"type"`
	// Source is the device, directory or name of the filesystem.
	Source string `json:"source"`
	// Target is the path below the target directory given to Mount/All,
	// "" meaning the target directory itself.
	Target string `json:"target,omitempty"`
	// Options are fstab-style: flags such as "ro", "nosuid", "rbind" and
	// filesystem data such as "lowerdir=/a:/b".
	Options []string `json:"options,omitempty"`
}

// flagOptions maps mount(8) flag words to MS_* flags; clear reports whether
// the word removes the flag rather than adding it.
var flagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions are applied with a separate mount(2) call, because the
// kernel ignores propagation flags combined with anything else.
var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parsed is Options split into what mount(2) takes.
type parsed struct {
	flags       uintptr
	propagation uintptr
	data        []string
}

func parseOptions(options []string) parsed {
	var p parsed
	for _, o := range options {
		if f, ok := flagOptions[o]; ok {
			if f.clear {
				p.flags &^= f.flag
			} else {
				p.flags |= f.flag
			}
			continue
		}
		if f, ok := propagationOptions[o]; ok {
			p.propagation |= f
			continue
		}
		p.data = append(p.data, o)
	}
	return p
}

// ReadOnly reports whether the mount is read-only.
func (m Mount) ReadOnly() bool {
	return parseOptions(m.Options).flags&unix.MS_RDONLY != 0
}

// Mount performs m on filepath.Join(target, m.Target). The target must
// exist. A read-only bind mount needs a second, remounting call: the kernel
// ignores MS_RDONLY on the first MS_BIND call (mount(2), "Creating a bind
// mount").
func (m Mount) Mount(target string) error {
	dst := target
	if m.Target != "" {
		// m.Target comes from hako's own snapshotters, not from an image,
		// so a lexical join is enough here.
		dst = filepath.Join(target, filepath.Clean("/"+m.Target))
	}
	p := parseOptions(m.Options)
	data := strings.Join(p.data, ",")
	if len(data) >= os.Getpagesize() {
		// mount(2) copies at most one page of data. An image with many
		// layers overflows it with its lowerdir list; the new mount API
		// takes the layers one by one.
		if m.Type != "overlay" {
			return fmt.Errorf("mount %s on %s: options are %d bytes, over the one-page limit", m.Type, dst, len(data))
		}
		if err := mountOverlayFsconfig(dst, p); err != nil {
			return err
		}
	} else {
		typ := m.Type
		if p.flags&unix.MS_BIND != 0 {
			typ = ""
		}
		if err := unix.Mount(m.Source, dst, typ, p.flags, data); err != nil {
			return fmt.Errorf("mount %s %s on %s (%s): %w", m.Type, m.Source, dst, strings.Join(m.Options, ","), err)
		}
	}
	if p.flags&unix.MS_BIND != 0 && p.flags&unix.MS_REMOUNT == 0 && p.flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		flags := p.flags&^unix.MS_REC | unix.MS_REMOUNT
		if err := unix.Mount("", dst, "", flags, ""); err != nil {
			_ = unix.Unmount(dst, unix.MNT_DETACH)
			return fmt.Errorf("remount bind %s on %s (%s): %w", m.Source, dst, strings.Join(m.Options, ","), err)
		}
	}
	if p.propagation != 0 {
		if err := unix.Mount("", dst, "", p.propagation, ""); err != nil {
			_ = unix.Unmount(dst, unix.MNT_DETACH)
			return fmt.Errorf("set propagation of %s: %w", dst, err)
		}
	}
	return nil
}

// All performs mounts in order on target. If one fails, the mounts already
// made are undone, so a failure leaves nothing mounted.
func All(mounts []Mount, target string) error {
	for i, m := range mounts {
		if err := m.Mount(target); err != nil {
			for j := i - 1; j >= 0; j-- {
				dst := target
				if mounts[j].Target != "" {
					dst = filepath.Join(target, filepath.Clean("/"+mounts[j].Target))
				}
				_ = unix.Unmount(dst, unix.MNT_DETACH)
			}
			return err
		}
	}
	return nil
}

// Unmount unmounts every mount stacked on target, topmost first, until
// target is no longer a mount point. flags are umount2(2) flags such as
// unix.MNT_DETACH. EBUSY is retried briefly because a process that just
// exited may still pin the mount for a moment.
func Unmount(target string, flags int) error {
	for {
		err := unmountOnce(target, flags)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			// EINVAL: not a mount point (any more); ENOENT: gone.
			return nil
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}

func unmountOnce(target string, flags int) error {
	var err error
	for range 50 {
		err = unix.Unmount(target, flags)
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// WithTempMount mounts mounts on a fresh temporary directory, calls fn with
// its path and unmounts and removes it afterwards, whatever fn returns.
func WithTempMount(mounts []Mount, fn func(root string) error) (err error) {
	dir, err := os.MkdirTemp("", "hako-mount-")
	if err != nil {
		return fmt.Errorf("temp mount dir: %w", err)
	}
	defer func() {
		if uerr := Unmount(dir, 0); uerr != nil {
			// Leave the directory rather than remove files through a
			// still-mounted filesystem.
			err = errors.Join(err, uerr)
			return
		}
		if rerr := os.Remove(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove temp mount dir: %w", rerr))
		}
	}()
	if err := All(mounts, dir); err != nil {
		return err
	}
	return fn(dir)
}

// mountOverlayFsconfig mounts overlayfs through fsopen/fsconfig/fsmount,
// passing each lower layer as its own "lowerdir+" parameter (Linux 6.8,
// Documentation/filesystems/overlayfs.rst "Specifying layers via file
// descriptors"), so the number of layers is not bound by one page.
func mountOverlayFsconfig(dst string, p parsed) (err error) {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("mount overlay on %s: fsopen: %w", dst, err)
	}
	defer unix.Close(fsfd)
	fail := func(what string, err error) error {
		return fmt.Errorf("mount overlay on %s: %s: %w%s", dst, what, err, fsLog(fsfd))
	}
	for _, o := range p.data {
		k, v, hasValue := strings.Cut(o, "=")
		switch {
		case k == "lowerdir":
			for _, l := range strings.Split(v, ":") {
				if err := unix.FsconfigSetString(fsfd, "lowerdir+", l); err != nil {
					return fail("lowerdir+ "+l, err)
				}
			}
		case hasValue:
			if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
				return fail(k, err)
			}
		default:
			if err := unix.FsconfigSetFlag(fsfd, k); err != nil {
				return fail(k, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create", err)
	}
	var attrs int
	for flag, attr := range map[uintptr]int{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME, unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME,
		unix.MS_STRICTATIME: unix.MOUNT_ATTR_STRICTATIME,
	} {
		if p.flags&flag != 0 {
			attrs |= attr
		}
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fail("move_mount", err)
	}
	return nil
}

// fsLog reads the messages the kernel left on an fsopen fd; they say which
// parameter it refused and why.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 512)
	for range 8 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(buf[:n]))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}
