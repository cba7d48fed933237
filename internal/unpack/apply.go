package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Whiteout names, image-spec layer.md "Whiteouts".
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	// overlayOpaqueXattr marks an overlayfs upper directory opaque
	// (kernel Documentation/filesystems/overlayfs.rst, "whiteouts and
	// opaque directories").
	overlayOpaqueXattr = "trusted.overlay.opaque"
	paxXattrPrefix     = "SCHILY.xattr."
)

// applier holds the state of one Apply call.
type applier struct {
	rootFd int
	root   *os.File // the same directory, for pathrs-lite
	mode   WhiteoutMode
	// touched holds the cleaned names this layer created, and all their
	// ancestors. Whiteouts only hide lower layers (layer.md: "Files that
	// are present in the same layer as a whiteout file can only be hidden
	// by whiteout files in subsequent layers"), so they skip these.
	touched map[string]struct{}
	// whitedOut holds names given an overlay whiteout by this layer: a
	// directory created there later must be opaque, or the lower
	// directory's content would show through it.
	whitedOut map[string]struct{}
	// dirs whose times are set last, after their content is written.
	dirs []dirTime
	buf  []byte
	// lowers are O_PATH fds of Options.Lowers (overlay mode only).
	lowers []int
	// dirFds caches O_PATH fds of directories by clean name: archives
	// list a directory's entries together, so most entries have the
	// parent of the entry before, and resolving it again from the root
	// (plus closing it) was two of the ten system calls per file. A cached
	// fd stays right until something is removed: only a removal can make
	// a name resolve elsewhere (creating a name never changes where an
	// existing path leads), and every removal empties the cache.
	dirFds map[string]int
}

// maxDirFds bounds the fds dirFds holds; when full it starts over.
const maxDirFds = 128

type dirTime struct {
	name string
	ts   []unix.Timespec
}

func newApplier(root string, opts Options) (*applier, error) {
	fd, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	a := &applier{
		rootFd:    fd,
		root:      os.NewFile(uintptr(fd), root),
		mode:      opts.Whiteouts,
		touched:   map[string]struct{}{"": {}},
		whitedOut: map[string]struct{}{},
		buf:       make([]byte, 1<<17),
		dirFds:    map[string]int{},
	}
	if opts.Whiteouts == WhiteoutOverlay {
		for _, l := range opts.Lowers {
			lfd, err := openRoot(l)
			if err != nil {
				a.close()
				return nil, err
			}
			a.lowers = append(a.lowers, lfd)
		}
	}
	return a, nil
}

func (a *applier) close() {
	a.dropDirs()
	_ = a.root.Close()
	for _, fd := range a.lowers {
		unix.Close(fd)
	}
}

// cleanName turns an archive path into a clean relative name ("" is the
// root itself), refusing anything that could point outside the root.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains NUL", ErrInvalidEntry)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrInvalidEntry)
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: path has a \"..\" component", ErrInvalidEntry)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

func (a *applier) apply(hdr *tar.Header, r io.Reader) error {
	fail := func(op string, err error) error { return &EntryError{Name: hdr.Name, Op: op, Err: err} }
	name, err := cleanName(hdr.Name)
	if err != nil {
		return fail("check name", err)
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whiteoutPrefix) {
		// Whiteouts remove (and are rare): start the cache over.
		a.dropDirs()
		if err := a.whiteout(dir, base); err != nil {
			return fail("apply whiteout", err)
		}
		return nil
	}
	// Checked before anything is touched, so that a bad entry does not
	// first remove what its name replaces.
	if err := checkHeader(hdr); err != nil {
		return fail("check header", err)
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fail("check name", fmt.Errorf("%w: the root can only be a directory", ErrInvalidEntry))
		}
		if err := a.setMeta(a.rootFd, "", hdr, nil); err != nil {
			return fail("set root attributes", err)
		}
		a.dirs = append(a.dirs, dirTime{name: "", ts: times(hdr)})
		return nil
	}
	parent, err := a.parentDir(dir)
	if err != nil {
		return fail("open parent directory", err)
	}

	var linkParent int = -1
	var linkBase string
	if hdr.Typeflag == tar.TypeLink {
		linkParent, linkBase, err = a.openLinkTarget(name, hdr.Linkname)
		if err != nil {
			return fail("resolve hardlink target", err)
		}
		defer unix.Close(linkParent)
	}

	// Each kind is created first and what is in the way replaced only on
	// EEXIST: in a fresh snapshot nothing ever is, which saves a stat per
	// entry. O_EXCL, mkdirat, symlinkat, mknodat and linkat never follow
	// a symlink in the last component.
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := a.writeFile(parent, base, hdr, r); err != nil {
			return fail("write file", err)
		}
	case tar.TypeDir:
		_, err := a.create(parent, base, true, func() error {
			return unix.Mkdirat(parent, base, uint32(hdr.Mode)&0o777)
		})
		if err != nil {
			return fail("create directory", err)
		}
		if _, ok := a.whitedOut[name]; ok && a.mode == WhiteoutOverlay {
			if err := setXattrAt(parent, base, overlayOpaqueXattr, "y"); err != nil {
				return fail("mark directory opaque", err)
			}
		}
		if err := a.setMetaAt(parent, base, hdr); err != nil {
			return fail("set attributes", err)
		}
		a.dirs = append(a.dirs, dirTime{name: name, ts: times(hdr)})
	case tar.TypeSymlink:
		_, err := a.create(parent, base, false, func() error {
			return unix.Symlinkat(hdr.Linkname, parent, base)
		})
		if err != nil {
			return fail("create symlink", err)
		}
		if err := a.setMetaAt(parent, base, hdr); err != nil {
			return fail("set attributes", err)
		}
	case tar.TypeLink:
		// Flags 0: a hardlink to a symlink links the symlink itself,
		// never what it points to.
		_, err := a.create(parent, base, false, func() error {
			return unix.Linkat(linkParent, linkBase, parent, base, 0)
		})
		if err != nil {
			return fail("create hardlink to "+hdr.Linkname, err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		_, err := a.create(parent, base, false, func() error {
			return unix.Mknodat(parent, base, mode|0o600, int(dev))
		})
		if err != nil {
			return fail("create device node", err)
		}
		if err := a.setMetaAt(parent, base, hdr); err != nil {
			return fail("set attributes", err)
		}
	}
	a.touch(name)
	return nil
}

// checkHeader refuses entry types hako does not create and header fields
// the kernel would misread.
func checkHeader(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("%w: unsupported entry type %q", ErrInvalidEntry, hdr.Typeflag)
	}
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) >= 1<<32-1 || int64(hdr.Gid) >= 1<<32-1 {
		return fmt.Errorf("%w: owner %d:%d out of range", ErrInvalidEntry, hdr.Uid, hdr.Gid)
	}
	if hdr.Size < 0 {
		return fmt.Errorf("%w: negative size", ErrInvalidEntry)
	}
	if strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("%w: link target contains NUL", ErrInvalidEntry)
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 0xfff || hdr.Devminor > 0xfffff {
			return fmt.Errorf("%w: device %d:%d out of range", ErrInvalidEntry, hdr.Devmajor, hdr.Devminor)
		}
	}
	for k := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxXattrPrefix) {
			continue
		}
		x := strings.TrimPrefix(k, paxXattrPrefix)
		if x == "" || strings.IndexByte(x, 0) >= 0 {
			return fmt.Errorf("%w: bad xattr name %q", ErrInvalidEntry, x)
		}
		// overlayfs reads its own trusted.overlay.* xattrs (redirect,
		// metacopy, opaque) from layer directories; a layer that carries
		// them could rewire the merged tree. Layers express deletions
		// with whiteout files instead (layer.md).
		if strings.HasPrefix(x, "trusted.overlay.") {
			return fmt.Errorf("%w: xattr %s is reserved for overlayfs", ErrInvalidEntry, x)
		}
	}
	return nil
}

// touch records name and its ancestors as written by this layer.
func (a *applier) touch(name string) {
	for name != "." && name != "" {
		if _, ok := a.touched[name]; ok {
			return
		}
		a.touched[name] = struct{}{}
		name = path.Dir(name)
	}
}

// openParent opens dir (a clean relative name) inside the root. With
// RESOLVE_IN_ROOT a symlink, absolute or with "..", is resolved as if the
// root were "/", the way a layer's paths are meant (layer.md applies
// changesets to the root filesystem), and can never leave it.
func (a *applier) openParent(dir string) (int, error) {
	if dir == "" {
		return unix.Dup(a.rootFd)
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := unix.Openat2(a.rootFd, dir, &how)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// No openat2 (old kernel, or a seccomp filter): pathrs-lite's
		// userspace resolver gives the same guarantees.
		f, err := pathrs.OpenatInRoot(a.root, dir)
		if err != nil {
			return -1, err
		}
		return dupClose(f)
	}
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// mkdirParent is openParent that creates missing directories (tar
// archives may omit parent entries), mode 0755 owned by root as
// containerd and umoci do.
func (a *applier) mkdirParent(dir string) (int, error) {
	fd, err := a.openParent(dir)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	// The path may run through a symlink whose target does not exist yet
	// (a -> /etc in a layer that then writes a/passwd, with no etc/).
	// pathrs-lite refuses to create through dangling links, so resolve
	// the symlinks in the root first, as securejoin scopes them, and
	// create the resulting plain path; MkdirAllHandle still refuses to
	// leave the root should the tree change under it.
	resolved, err := securejoin.SecureJoin(a.root.Name(), dir)
	if err != nil {
		return -1, err
	}
	rel, err := filepath.Rel(a.root.Name(), resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return -1, fmt.Errorf("%w: %q resolves outside the root", ErrInvalidEntry, dir)
	}
	a.touch(dir)
	return a.mkdirAll(rel)
}

// mkdirAll creates the missing directories of rel, a path without
// symlinks, and returns an O_PATH fd of rel. In overlay mode a directory
// created here only implicitly takes owner, mode and times from the
// topmost lower layer that has it: in the upper dir it would otherwise
// replace the lower directory's attributes with 0755 root:root.
func (a *applier) mkdirAll(rel string) (int, error) {
	var missing []string
	if len(a.lowers) > 0 {
		for p := rel; p != "." && p != ""; p = path.Dir(p) {
			var st unix.Stat_t
			if err := unix.Fstatat(a.rootFd, p, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
				missing = append(missing, p)
			}
		}
	}
	f, err := pathrs.MkdirAllHandle(a.root, rel, 0o755)
	if err != nil {
		return -1, err
	}
	a.touch(rel)
	for _, p := range missing {
		if err := a.inheritDir(p); err != nil {
			f.Close()
			return -1, fmt.Errorf("copy attributes of %s from lower layers: %w", p, err)
		}
	}
	return dupClose(f)
}

// inheritDir copies owner, mode and times of directory name from the
// topmost lower that has name; a lower holding a non-directory there
// hides everything below it, so the search stops.
func (a *applier) inheritDir(name string) error {
	for _, lower := range a.lowers {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		}
		fd, err := unix.Openat2(lower, name, &how)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		if err != nil {
			return err
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil
		}
		if err := unix.Fchownat(a.rootFd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := chmodAt(a.rootFd, name, st.Mode&0o7777); err != nil {
			return err
		}
		a.dirs = append(a.dirs, dirTime{name: name, ts: []unix.Timespec{st.Atim, st.Mtim}})
		return nil
	}
	return nil
}

func dupClose(f *os.File) (int, error) {
	defer f.Close()
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

// openLinkTarget resolves a hardlink's target. A hardlink names a path in
// the archive, so it may not be absolute, contain "..", nor pass through a
// symlink (RESOLVE_NO_SYMLINKS): linking through a symlink would let a
// layer reach a file it does not name.
func (a *applier) openLinkTarget(name, linkname string) (int, string, error) {
	target, err := cleanName(linkname)
	if err != nil {
		return -1, "", err
	}
	if target == "" {
		return -1, "", fmt.Errorf("%w: hardlink to the root", ErrInvalidEntry)
	}
	if target == name {
		return -1, "", fmt.Errorf("%w: hardlink to itself", ErrInvalidEntry)
	}
	dir, base := path.Split(target)
	fd := -1
	if dir == "" {
		fd, err = unix.Dup(a.rootFd)
	} else {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
		}
		fd, err = unix.Openat2(a.rootFd, strings.TrimSuffix(dir, "/"), &how)
	}
	if errors.Is(err, unix.ELOOP) {
		return -1, "", fmt.Errorf("%w: hardlink target %q passes through a symlink", ErrInvalidEntry, linkname)
	}
	if err != nil {
		return -1, "", fmt.Errorf("open directory of %q: %w", linkname, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Close(fd)
		return -1, "", fmt.Errorf("hardlink target %q: %w", linkname, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		unix.Close(fd)
		return -1, "", fmt.Errorf("%w: hardlink target %q is a directory", ErrInvalidEntry, linkname)
	}
	return fd, base, nil
}

// replace makes way for a new entry base in parent: an existing directory
// stays when the new entry is a directory too (layer.md: directories
// merge), anything else is removed. It reports whether a directory stays.
func replace(parent int, base string, isDir bool) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if isDir {
			return true, nil
		}
		return false, removeAllAt(parent, base)
	}
	// Unlinking rather than truncating matters: the old name may be a
	// hardlink shared with another file, which must keep its content.
	return false, unix.Unlinkat(parent, base, 0)
}

// create runs mk, which creates base in parent. If base is in the way
// (EEXIST), it is replaced and mk runs again; a directory onto a
// directory is kept instead (layer.md: directories merge), which create
// reports.
func (a *applier) create(parent int, base string, isDir bool, mk func() error) (bool, error) {
	err := mk()
	if !errors.Is(err, unix.EEXIST) {
		return false, err
	}
	kept, err := replace(parent, base, isDir)
	if err != nil || kept {
		return kept, err
	}
	// Something was removed: cached directories may now resolve
	// elsewhere (base may have been one, or a symlink on their path).
	// parent itself still resolves where it did.
	a.dropDirsExcept(parent)
	return false, mk()
}

// parentDir returns an O_PATH fd of directory dir (a clean name inside the
// root), creating missing directories, from the cache: the fd belongs to
// the cache and is not closed by the caller.
func (a *applier) parentDir(dir string) (int, error) {
	if fd, ok := a.dirFds[dir]; ok {
		return fd, nil
	}
	fd, err := a.mkdirParent(dir)
	if err != nil {
		return -1, err
	}
	a.cacheDir(dir, fd)
	return fd, nil
}

// lookupDir is parentDir without creating anything.
func (a *applier) lookupDir(dir string) (int, error) {
	if fd, ok := a.dirFds[dir]; ok {
		return fd, nil
	}
	fd, err := a.openParent(dir)
	if err != nil {
		return -1, err
	}
	a.cacheDir(dir, fd)
	return fd, nil
}

func (a *applier) cacheDir(dir string, fd int) {
	if len(a.dirFds) >= maxDirFds {
		a.dropDirs()
	}
	a.dirFds[dir] = fd
}

// dropDirs empties the directory cache; called before anything is removed.
func (a *applier) dropDirs() { a.dropDirsExcept(-1) }

// dropDirsExcept empties the cache but for the entry of fd keep.
func (a *applier) dropDirsExcept(keep int) {
	for dir, fd := range a.dirFds {
		if fd != keep {
			unix.Close(fd)
			delete(a.dirFds, dir)
		}
	}
}

func (a *applier) writeFile(parent int, base string, hdr *tar.Header, r io.Reader) error {
	fd := -1
	_, err := a.create(parent, base, false, func() (err error) {
		fd, err = unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(hdr.Mode)&0o777)
		return err
	})
	if err != nil {
		return err
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	n, err := copyToFd(fd, io.LimitReader(r, hdr.Size), a.buf)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: content is %d bytes, header says %d", ErrInvalidEntry, n, hdr.Size)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := a.setMeta(parent, base, hdr, &st); err != nil {
		return err
	}
	err = unix.Close(fd)
	fd = -1
	return err
}

// copyToFd copies r to the file fd with write(2) directly: wrapping each
// fd in an os.File costs an fcntl and an allocation per file.
func copyToFd(fd int, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return total, err
			}
			b = b[w:]
			total += int64(w)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// setMetaAt is setMeta for an entry just created as base in parent.
func (a *applier) setMetaAt(parent int, base string, hdr *tar.Header) error {
	var st unix.Stat_t
	if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return a.setMeta(parent, base, hdr, &st)
}

// setMeta sets owner, mode, xattrs and (except for directories, done last)
// times of base in parent, never following a symlink. base "" means the
// parent itself. Owner goes first because chown clears setuid/setgid bits.
// With st, what base has now, owner and mode are only set when they
// differ (chown and chmod write the inode even when nothing changes): a
// new file already has the owner root gives it and, after umask, usually
// the mode asked for at creation.
func (a *applier) setMeta(parent int, base string, hdr *tar.Header, st *unix.Stat_t) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if base == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	chown := st == nil || int64(st.Uid) != int64(hdr.Uid) || int64(st.Gid) != int64(hdr.Gid)
	if chown {
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, flags); err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	mode := uint32(hdr.Mode) & 0o7777
	if hdr.Typeflag != tar.TypeSymlink && (chown || st.Mode&0o7777 != mode) {
		if err := chmodAt(parent, base, mode); err != nil {
			return fmt.Errorf("chmod %o: %w", hdr.Mode&0o7777, err)
		}
	}
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, paxXattrPrefix); ok {
			if err := setXattrAt(parent, base, x, v); err != nil {
				return fmt.Errorf("set xattr %s: %w", x, err)
			}
		}
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := unix.UtimesNanoAt(parent, base, times(hdr), flags); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
	}
	return nil
}

func times(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return unix.Timespec{}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// finish sets directory times, deepest last-written first, now that no
// more entries will change them.
func (a *applier) finish() error {
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		dir, base := path.Split(d.name)
		parent, err := a.lookupDir(strings.TrimSuffix(dir, "/"))
		if err != nil {
			return &EntryError{Name: d.name, Op: "set directory times", Err: err}
		}
		flags := unix.AT_SYMLINK_NOFOLLOW
		if base == "" {
			flags |= unix.AT_EMPTY_PATH
		}
		err = unix.UtimesNanoAt(parent, base, d.ts, flags)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			// ENOENT: a later entry of the layer replaced it.
			return &EntryError{Name: d.name, Op: "set directory times", Err: err}
		}
	}
	return nil
}
