package unpack

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// whiteout applies the whiteout entry base in dir (layer.md "Whiteouts"):
// ".wh..wh..opq" hides everything the lower layers have in dir, ".wh.NAME"
// hides NAME.
func (a *applier) whiteout(dir, base string) error {
	if base == whiteoutOpaque {
		if a.mode == WhiteoutOverlay {
			return a.overlayOpaque(dir)
		}
		return a.nativeOpaque(dir)
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." || strings.HasPrefix(target, whiteoutPrefix) {
		return fmt.Errorf("%w: whiteout for %q", ErrInvalidEntry, target)
	}
	name := path.Join(dir, target)
	if _, ok := a.touched[name]; ok {
		// Written by this very layer: a whiteout only hides lower layers.
		return nil
	}
	if a.mode == WhiteoutOverlay {
		parent, err := a.mkdirWhiteoutDir(dir)
		if errors.Is(err, errNotBelow) {
			return nil
		}
		if err != nil {
			return err
		}
		defer unix.Close(parent)
		if _, err := replace(parent, target, false); err != nil {
			return err
		}
		// A 0:0 character device is overlayfs's whiteout.
		if err := unix.Mknodat(parent, target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("create overlay whiteout: %w", err)
		}
		a.whitedOut[name] = struct{}{}
		return nil
	}
	parent, err := a.openWhiteoutDir(dir)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotBelow) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	if err := removeAllAt(parent, target); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// openWhiteoutDir opens the directory a native whiteout deletes in. The
// path must not pass through a symlink: lower layers hold real paths, and
// a whiteout reaching through a link would delete something it does not
// name.
func (a *applier) openWhiteoutDir(dir string) (int, error) {
	if dir == "" {
		return unix.Dup(a.rootFd)
	}
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := unix.Openat2(a.rootFd, dir, &how)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, errNotBelow
	}
	return fd, err
}

// errNotBelow: a whiteout's directory is a symlink or a file (umoci writes
// "x" as a file and then "x/.wh.y" when a layer replaced directory x), so
// nothing of the lower layers is reachable there and the whiteout is
// ignored. Following the symlink instead would delete something the
// whiteout does not name.
var errNotBelow = errors.New("whiteout directory is not a directory")

// mkdirWhiteoutDir is openWhiteoutDir for an overlay upper directory,
// where the directory may exist only in a lower layer and is created.
// ENOENT from openat2 with RESOLVE_NO_SYMLINKS means the existing part of
// the path holds no symlink, dangling or not, so creating the rest cannot
// be redirected.
func (a *applier) mkdirWhiteoutDir(dir string) (int, error) {
	fd, err := a.openWhiteoutDir(dir)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	fd, err = a.mkdirAll(dir)
	if err != nil {
		return -1, fmt.Errorf("create %s: %w", dir, err)
	}
	unix.Close(fd)
	return a.openWhiteoutDir(dir)
}

// overlayOpaque marks dir opaque in the upper directory.
func (a *applier) overlayOpaque(dir string) error {
	fd, err := a.mkdirWhiteoutDir(dir)
	if errors.Is(err, errNotBelow) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := setXattrAt(fd, "", overlayOpaqueXattr, "y"); err != nil {
		return fmt.Errorf("mark directory opaque: %w", err)
	}
	a.touch(dir)
	return nil
}

// nativeOpaque deletes from dir everything this layer has not written.
func (a *applier) nativeOpaque(dir string) error {
	fd, err := a.openWhiteoutDir(dir)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, errNotBelow) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return a.clearUntouched(fd, dir)
}

func (a *applier) clearUntouched(fd int, dir string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, n := range names {
		name := path.Join(dir, n)
		if _, ok := a.touched[name]; !ok {
			if err := removeAllAt(fd, n); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			continue
		}
		sub, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue // a file or symlink of this layer
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		err = a.clearUntouched(sub, name)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}
