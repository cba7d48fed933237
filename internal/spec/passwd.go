package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// This file resolves an image's user string ("name", "uid", "name:group",
// "uid:gid", "uid:groupname") against the image's own /etc/passwd and
// /etc/group, the way docker (runc's libcontainer/user) and containerd do.
// The files are read from an untrusted root filesystem, so they are opened
// with openat2 RESOLVE_IN_ROOT (pathrs-lite): a symlink, absolute or full of
// "..", is resolved as if rootfs were "/", never out of it.

// maxUserFile bounds how much of /etc/passwd or /etc/group is read: an image
// could ship a multi-gigabyte file to make every container start read it.
const maxUserFile = 16 << 20

// ErrUnknownUser is returned (wrapped, with the name) when a user or group
// name of the user string has no entry in the image's files. It is also an
// ErrInvalid: the configuration names something that does not exist.
var ErrUnknownUser error = unknownUserError{}

// unknownUserError is a type rather than fmt.Errorf("%w", ErrInvalid) so
// that nothing runs at package init (every container start).
type unknownUserError struct{}

func (unknownUserError) Error() string        { return "unknown user or group" }
func (unknownUserError) Is(target error) bool { return target == ErrInvalid }

// passwdEntry is one line of passwd(5) with the fields hako uses.
type passwdEntry struct {
	name string
	uid  uint32
	gid  uint32
	home string
}

// groupEntry is one line of group(5).
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parseID parses a user or group id as written in passwd, group or a user
// string: decimal digits only, at most 2^32-2 ((uid_t)-1 means "unchanged"
// to setresuid(2) and can be nobody's id).
func parseID(s string) (uint32, bool) {
	if s == "" || !isDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == math.MaxUint32 {
		return 0, false
	}
	return uint32(n), true
}

// userFileLines calls fn with the colon-separated fields of every line of r
// that is neither empty nor a comment. A line too long for the scanner is an
// error rather than silently splitting into two entries.
func userFileLines(r io.Reader, fn func(fields []string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// parsePasswd reads passwd(5) lines. Lines that cannot be used safely are
// skipped rather than guessed at: fewer than four fields, a non-numeric or
// out-of-range uid or gid (runc reads a missing uid as 0, which would turn a
// broken line into root), NIS compat entries ("+name", "-name"). A file
// with such lines still works for its other users, like glibc.
func parsePasswd(r io.Reader) ([]passwdEntry, error) {
	var out []passwdEntry
	err := userFileLines(r, func(f []string) {
		if len(f) < 4 || f[0] == "" || f[0][0] == '+' || f[0][0] == '-' {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// parseGroup reads group(5) lines, with the same skipping rules as
// parsePasswd.
func parseGroup(r io.Reader) ([]groupEntry, error) {
	var out []groupEntry
	err := userFileLines(r, func(f []string) {
		if len(f) < 3 || f[0] == "" || f[0][0] == '+' || f[0][0] == '-' {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	})
	return out, err
}

// readRootFile returns the contents of the regular file at name inside
// rootfs, resolved with RESOLVE_IN_ROOT. A missing file gives (nil, nil):
// images without /etc/passwd are common (scratch, distroless) and only a
// user name needs it. Anything but a regular file (a FIFO that would block,
// a device that never ends) is an error, as is a file over maxUserFile.
func readRootFile(rootfs, name string) ([]byte, error) {
	h, err := pathrs.OpenInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open %s in %s: %w", name, rootfs, err)
	}
	defer h.Close()
	// fstat on the O_PATH handle: decide before opening for reading.
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s in %s: %w", name, rootfs, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s in %s: %w: not a regular file", name, rootfs, ErrInvalid)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", name, rootfs, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUserFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", name, rootfs, err)
	}
	if len(b) > maxUserFile {
		return nil, fmt.Errorf("%s in %s: %w: larger than %d bytes", name, rootfs, ErrInvalid, maxUserFile)
	}
	return b, nil
}

// userDB is an image's passwd and group files, read once.
type userDB struct {
	users  []passwdEntry
	groups []groupEntry
}

// loadUserDB reads rootfs/etc/passwd and rootfs/etc/group. rootfs "" means
// there is no filesystem to look at (numeric ids only).
func loadUserDB(rootfs string) (*userDB, error) {
	db := &userDB{}
	if rootfs == "" {
		return db, nil
	}
	b, err := readRootFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	if db.users, err = parsePasswd(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("parse /etc/passwd in %s: %w", rootfs, err)
	}
	b, err = readRootFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	if db.groups, err = parseGroup(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("parse /etc/group in %s: %w", rootfs, err)
	}
	return db, nil
}

// The lookups return the first matching line, as glibc and runc do: a
// second "root" line further down cannot override the first.

func (db *userDB) userByName(name string) (passwdEntry, bool) {
	i := slices.IndexFunc(db.users, func(e passwdEntry) bool { return e.name == name })
	if i < 0 {
		return passwdEntry{}, false
	}
	return db.users[i], true
}

func (db *userDB) userByID(uid uint32) (passwdEntry, bool) {
	i := slices.IndexFunc(db.users, func(e passwdEntry) bool { return e.uid == uid })
	if i < 0 {
		return passwdEntry{}, false
	}
	return db.users[i], true
}

func (db *userDB) groupByName(name string) (groupEntry, bool) {
	i := slices.IndexFunc(db.groups, func(e groupEntry) bool { return e.name == name })
	if i < 0 {
		return groupEntry{}, false
	}
	return db.groups[i], true
}

// memberOf returns the gids of the groups that list user as a member, in
// file order, each once.
func (db *userDB) memberOf(user string) []uint32 {
	var gids []uint32
	for _, g := range db.groups {
		if slices.Contains(g.members, user) && !slices.Contains(gids, g.gid) {
			gids = append(gids, g.gid)
		}
	}
	return gids
}

// group resolves one group of a user string or of a --group-add list: a
// number is taken as is (it needs no /etc/group line), a name must exist.
func (db *userDB) group(s string) (uint32, error) {
	if gid, ok := parseID(s); ok {
		return gid, nil
	}
	if isDigits(s) {
		return 0, fmt.Errorf("group %q: %w: id out of range", s, ErrInvalid)
	}
	g, ok := db.groupByName(s)
	if !ok {
		return 0, fmt.Errorf("group %q: %w: no such group in the image's /etc/group", s, ErrUnknownUser)
	}
	return g.gid, nil
}

// resolvedUser is a user string turned into ids.
type resolvedUser struct {
	user specs.User
	home string // "" when the user has no passwd entry
}

// resolve turns a user string into a process user.
//
//   - "" is root: uid 0, and root's passwd line (if any) for gid and home.
//   - "name" must have a passwd line; "uid" takes the line of that uid when
//     there is one (gid, home), else gid 0.
//   - ":group" after either sets the primary gid: a number as is, a name
//     from /etc/group.
//   - Supplementary groups (additionalGids) are the groups listing the
//     user's name in /etc/group, only when no group was given (or
//     mergeGroups is set), as runc's GetExecUser does for docker. A
//     numeric uid with a passwd line gets them too, as in docker and
//     containerd, although image-spec conversion.md#configuser says a
//     converter SHOULD NOT: users expect `--user 1000` and `--user alice`
//     to be the same process. The primary gid is put first, as containerd
//     does, so that `id -G` inside lists it like on a host.
func (db *userDB) resolve(userString string, mergeGroups bool) (resolvedUser, error) {
	userPart, groupPart, hasGroup := strings.Cut(userString, ":")
	if hasGroup && groupPart == "" {
		return resolvedUser{}, fmt.Errorf("user %q: %w: empty group", userString, ErrInvalid)
	}
	if strings.Contains(groupPart, ":") {
		return resolvedUser{}, fmt.Errorf("user %q: %w: more than one ':'", userString, ErrInvalid)
	}
	var (
		r     resolvedUser
		entry passwdEntry
		found bool
	)
	switch {
	case userPart == "" && hasGroup:
		return resolvedUser{}, fmt.Errorf("user %q: %w: empty user", userString, ErrInvalid)
	case userPart == "":
		entry, found = db.userByID(0)
	case isDigits(userPart):
		uid, ok := parseID(userPart)
		if !ok {
			return resolvedUser{}, fmt.Errorf("user %q: %w: id out of range", userString, ErrInvalid)
		}
		r.user.UID = uid
		entry, found = db.userByID(uid)
	default:
		entry, found = db.userByName(userPart)
		if !found {
			return resolvedUser{}, fmt.Errorf("user %q: %w: no such user in the image's /etc/passwd", userPart, ErrUnknownUser)
		}
	}
	if found {
		// Username stays empty: it is a Windows field (config.md#user).
		r.user.UID, r.user.GID, r.home = entry.uid, entry.gid, entry.home
	}
	if hasGroup {
		gid, err := db.group(groupPart)
		if err != nil {
			return resolvedUser{}, fmt.Errorf("user %q: %w", userString, err)
		}
		r.user.GID = gid
	}
	var extra []uint32
	if found && (!hasGroup || mergeGroups) {
		extra = db.memberOf(entry.name)
	}
	r.user.AdditionalGids = appendGids([]uint32{r.user.GID}, extra...)
	return r, nil
}

// appendGids appends the gids not yet in list.
func appendGids(list []uint32, gids ...uint32) []uint32 {
	for _, g := range gids {
		if !slices.Contains(list, g) {
			list = append(list, g)
		}
	}
	return list
}
