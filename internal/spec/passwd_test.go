package spec

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const testPasswd = `# a comment line
root:x:0:0:root:/root:/bin/sh

  # indented comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001:Bob:/home/bob:/bin/sh
root:x:4000:4000:second root, must be ignored:/evil:/bin/sh
short:x:7
badid:x:abc:1:::
negative:x:-1:1:::
big:x:4294967294:4294967294:big:/big:/bin/sh
toobig:x:4294967295:1:::
huge:x:99999999999:1:::
+nisuser:x:0:0:::
nohome:x:2000:2000
crlf:x:3000:3000::/crlf:/bin/sh` + "\r\n"

const testGroup = `# groups
root:x:0:root
wheel:x:10:root,alice
staff:x:50: alice , bob ,
video:x:44:bob
empty:x:60:
dup:x:70:alice
dup:x:71:bob
shortgroup:x
biggroup:x:4294967294:big
alice:x:1000:
`

func TestParsePasswd(t *testing.T) {
	users, err := parsePasswd(strings.NewReader(testPasswd))
	if err != nil {
		t.Fatal(err)
	}
	want := []passwdEntry{
		{"root", 0, 0, "/root"},
		{"daemon", 1, 1, "/usr/sbin"},
		{"alice", 1000, 1000, "/home/alice"},
		{"bob", 1001, 1001, "/home/bob"},
		{"root", 4000, 4000, "/evil"},
		{"big", 4294967294, 4294967294, "/big"},
		{"nohome", 2000, 2000, ""},
		{"crlf", 3000, 3000, "/crlf"},
	}
	if !reflect.DeepEqual(users, want) {
		t.Errorf("got  %+v\nwant %+v", users, want)
	}
	db := &userDB{users: users}
	if u, _ := db.userByName("root"); u.uid != 0 || u.home != "/root" {
		t.Errorf("duplicate name: the first line must win, got %+v", u)
	}
	for _, name := range []string{"short", "badid", "negative", "toobig", "huge", "+nisuser", "nisuser"} {
		if _, ok := db.userByName(name); ok {
			t.Errorf("%s: broken line must be skipped", name)
		}
	}
}

func TestParseGroup(t *testing.T) {
	groups, err := parseGroup(strings.NewReader(testGroup))
	if err != nil {
		t.Fatal(err)
	}
	want := []groupEntry{
		{"root", 0, []string{"root"}},
		{"wheel", 10, []string{"root", "alice"}},
		{"staff", 50, []string{"alice", "bob"}},
		{"video", 44, []string{"bob"}},
		{"empty", 60, nil},
		{"dup", 70, []string{"alice"}},
		{"dup", 71, []string{"bob"}},
		{"biggroup", 4294967294, []string{"big"}},
		{"alice", 1000, nil},
	}
	if !reflect.DeepEqual(groups, want) {
		t.Errorf("got  %+v\nwant %+v", groups, want)
	}
	db := &userDB{groups: groups}
	if g, _ := db.groupByName("dup"); g.gid != 70 {
		t.Errorf("duplicate group: the first line must win, got %d", g.gid)
	}
	if got := db.memberOf("alice"); !slices.Equal(got, []uint32{10, 50, 70}) {
		t.Errorf("memberOf(alice) = %v", got)
	}
}

func TestParseLineTooLong(t *testing.T) {
	long := "x:x:1:1:" + strings.Repeat("g", 2<<20) + ":/:/bin/sh\n"
	if _, err := parsePasswd(strings.NewReader(long)); err == nil {
		t.Error("a 2 MiB line must be an error, not split into entries")
	}
}

func TestResolveUser(t *testing.T) {
	users, _ := parsePasswd(strings.NewReader(testPasswd))
	groups, _ := parseGroup(strings.NewReader(testGroup))
	db := &userDB{users: users, groups: groups}
	for _, tc := range []struct {
		user  string
		merge bool
		uid   uint32
		gid   uint32
		gids  []uint32
		home  string
		err   error
	}{
		{user: "", uid: 0, gid: 0, gids: []uint32{0, 10}, home: "/root"},
		{user: "root", uid: 0, gid: 0, gids: []uint32{0, 10}, home: "/root"},
		{user: "0", uid: 0, gid: 0, gids: []uint32{0, 10}, home: "/root"},
		{user: "alice", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 50, 70}, home: "/home/alice"},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 50, 70}, home: "/home/alice"},
		{user: "bob", uid: 1001, gid: 1001, gids: []uint32{1001, 50, 44, 71}, home: "/home/bob"},
		// An explicit group: only that one (runc, conversion.md).
		{user: "alice:staff", uid: 1000, gid: 50, gids: []uint32{50}, home: "/home/alice"},
		{user: "alice:44", uid: 1000, gid: 44, gids: []uint32{44}, home: "/home/alice"},
		{user: "1000:video", uid: 1000, gid: 44, gids: []uint32{44}, home: "/home/alice"},
		{user: "1000:1000", uid: 1000, gid: 1000, gids: []uint32{1000}, home: "/home/alice"},
		// ... unless the caller merges like containerd's CRI.
		{user: "1000:44", merge: true, uid: 1000, gid: 44, gids: []uint32{44, 10, 50, 70}, home: "/home/alice"},
		// Numeric ids need no line.
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}},
		{user: "4242:4343", uid: 4242, gid: 4343, gids: []uint32{4343}},
		{user: "4294967294", uid: 4294967294, gid: 4294967294, gids: []uint32{4294967294}, home: "/big"},
		{user: "nohome", uid: 2000, gid: 2000, gids: []uint32{2000}},
		{user: "nosuchuser", err: ErrUnknownUser},
		{user: "alice:nosuchgroup", err: ErrUnknownUser},
		{user: "4242:nosuchgroup", err: ErrUnknownUser},
		{user: "short", err: ErrUnknownUser},
		{user: "4294967295", err: ErrInvalid},
		{user: "99999999999", err: ErrInvalid},
		{user: "1:4294967295", err: ErrInvalid},
		{user: ":0", err: ErrInvalid},
		{user: "alice:", err: ErrInvalid},
		{user: "a:b:c", err: ErrInvalid},
	} {
		r, err := db.resolve(tc.user, tc.merge)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !errors.Is(err, ErrInvalid) {
				t.Errorf("%q: error %v, want %v", tc.user, err, tc.err)
			}
			if errors.Is(tc.err, ErrUnknownUser) && err != nil && !strings.Contains(err.Error(), "nosuch") && !strings.Contains(err.Error(), tc.user) {
				t.Errorf("%q: error %q does not name the user", tc.user, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.user, err)
			continue
		}
		want := specs.User{UID: tc.uid, GID: tc.gid, AdditionalGids: tc.gids}
		if !reflect.DeepEqual(r.user, want) || r.home != tc.home {
			t.Errorf("%q: got %+v home %q, want %+v home %q", tc.user, r.user, r.home, want, tc.home)
		}
	}
}

// writeRootfs creates files under a temp root: name -> content.
func writeRootfs(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const canaryPasswd = "canary31337:x:31337:31337:host canary:/canary-home:/bin/sh\nroot:x:0:31337:host root:/host-root:/bin/sh\n"

// TestHostileRootfs: the image's /etc/passwd or /etc must not lead to a
// host file. Each case puts a distinctive host canary outside the rootfs
// that the symlink points at; resolving "canary31337" must fail, and where
// the symlink, read inside the rootfs, names a file of the image, that file
// is what is read (RESOLVE_IN_ROOT semantics, like the container's own
// libc would see it).
func TestHostileRootfs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, rootfs, host string)
		// insider, when set, is a user that only the in-rootfs
		// reading of the link can find.
		insider string
	}{
		{
			name: "passwd is an absolute symlink to a host file",
			setup: func(t *testing.T, rootfs, host string) {
				writeRootfs(t, host, map[string]string{"passwd": canaryPasswd})
				writeRootfs(t, rootfs, map[string]string{
					"etc/group": "",
					// The same path inside the rootfs: what the link means there.
					strings.TrimPrefix(host, "/") + "/passwd": "insider:x:555:555::/in:/bin/sh\n",
				})
				symlink(t, filepath.Join(host, "passwd"), filepath.Join(rootfs, "etc/passwd"))
			},
			insider: "insider",
		},
		{
			name: "passwd is a relative symlink climbing out",
			setup: func(t *testing.T, rootfs, host string) {
				writeRootfs(t, host, map[string]string{"passwd": canaryPasswd})
				rel, err := filepath.Rel(filepath.Join(rootfs, "etc"), filepath.Join(host, "passwd"))
				if err != nil {
					t.Fatal(err)
				}
				rel = strings.Repeat("../", 20) + strings.TrimPrefix(filepath.Join(rootfs, "etc", rel), "/")
				writeRootfs(t, rootfs, map[string]string{"etc/group": ""})
				symlink(t, rel, filepath.Join(rootfs, "etc/passwd"))
			},
		},
		{
			name: "etc is a symlink to ../../",
			setup: func(t *testing.T, rootfs, host string) {
				// rootfs is host/a/b/rootfs... see below: ../../ from
				// rootfs/etc on the host is host/a, holding the canary.
				writeRootfs(t, filepath.Join(rootfs, "../.."), map[string]string{"passwd": canaryPasswd, "group": "canary31337:x:31337:\n"})
				writeRootfs(t, rootfs, map[string]string{"passwd": "insider:x:556:556::/in:/bin/sh\n"})
				symlink(t, "../../", filepath.Join(rootfs, "etc"))
			},
			insider: "insider",
		},
		{
			name: "passwd symlink through a symlinked directory",
			setup: func(t *testing.T, rootfs, host string) {
				writeRootfs(t, host, map[string]string{"dir/passwd": canaryPasswd})
				symlink(t, host, filepath.Join(rootfs, "hostdir"))
				if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
					t.Fatal(err)
				}
				symlink(t, "/hostdir/dir/passwd", filepath.Join(rootfs, "etc/passwd"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := t.TempDir()
			rootfs := filepath.Join(t.TempDir(), "a", "b", "rootfs")
			if err := os.MkdirAll(rootfs, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, rootfs, host)
			img := ImageConfig{Cmd: []string{"/bin/sh"}}
			_, err := FromImage(img, rootfs, Overrides{User: "canary31337"})
			if !errors.Is(err, ErrUnknownUser) {
				t.Fatalf("user of the host canary: got %v, want ErrUnknownUser", err)
			}
			// root must not pick up the canary's gid/home either.
			s, err := FromImage(img, rootfs, Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Process.User.GID == 31337 || slices.Contains(s.Process.Env, "HOME=/host-root") {
				t.Fatalf("root resolved from the host canary: %+v %v", s.Process.User, s.Process.Env)
			}
			if tc.insider != "" {
				if _, err := FromImage(img, rootfs, Overrides{User: tc.insider}); err != nil {
					t.Errorf("the link read inside the rootfs should find %s: %v", tc.insider, err)
				}
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestUserFileNotRegular: a FIFO must not block the conversion (nobody
// writes to it) and a device must not be read forever.
func TestUserFileNotRegular(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(rootfs, "etc/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/dev/zero", filepath.Join(rootfs, "etc/group"))
	done := make(chan error, 1)
	go func() {
		_, err := loadUserDB(rootfs)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("FIFO passwd: got %v, want ErrInvalid", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("loadUserDB blocked on a FIFO")
	}
	// /dev/zero inside the rootfs does not exist: the link resolves in
	// the rootfs, so group is simply missing there. Make it exist as a
	// real device only when root (mknod).
	if err := os.Remove(filepath.Join(rootfs, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if _, err := loadUserDB(rootfs); err != nil {
		t.Errorf("group linked to a missing in-root /dev/zero: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll(filepath.Join(rootfs, "dev"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(filepath.Join(rootfs, "dev/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
			t.Fatal(err)
		}
		if _, err := loadUserDB(rootfs); !errors.Is(err, ErrInvalid) {
			t.Errorf("group linked to a char device: got %v, want ErrInvalid", err)
		}
	}
}

func TestUserFileTooBig(t *testing.T) {
	rootfs := t.TempDir()
	writeRootfs(t, rootfs, map[string]string{"etc/passwd": ""})
	if err := os.Truncate(filepath.Join(rootfs, "etc/passwd"), maxUserFile+1); err != nil {
		t.Fatal(err)
	}
	if _, err := loadUserDB(rootfs); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestUserFilesMissing(t *testing.T) {
	rootfs := t.TempDir()
	img := ImageConfig{Cmd: []string{"/app"}}
	s, err := FromImage(img, rootfs, Overrides{User: "65532:65532"})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 65532 || u.GID != 65532 {
		t.Errorf("numeric user without passwd: %+v", u)
	}
	if _, err := FromImage(img, rootfs, Overrides{User: "nonroot"}); !errors.Is(err, ErrUnknownUser) || !strings.Contains(err.Error(), "nonroot") {
		t.Errorf("named user without passwd: %v", err)
	}
}

// FuzzResolveUser: any passwd, group and user string either fails with
// ErrInvalid or gives a user whose primary gid leads additionalGids, with
// no gid twice, and whose numeric parts are taken verbatim.
func FuzzResolveUser(f *testing.F) {
	f.Add(testPasswd, testGroup, "alice")
	f.Add(testPasswd, testGroup, "1000:staff")
	f.Add("a:x:1:2:::\n", "g:x:3:a,a,a\n", "a")
	f.Add("", "", "4294967294:0")
	f.Fuzz(func(t *testing.T, passwd, group, user string) {
		users, err := parsePasswd(strings.NewReader(passwd))
		if err != nil {
			return
		}
		groups, err := parseGroup(strings.NewReader(group))
		if err != nil {
			return
		}
		db := &userDB{users: users, groups: groups}
		r, err := db.resolve(user, false)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: unclassified error %v", user, err)
			}
			return
		}
		gids := r.user.AdditionalGids
		if len(gids) == 0 || gids[0] != r.user.GID {
			t.Fatalf("%q: additionalGids %v do not start with gid %d", user, gids, r.user.GID)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(gids)))) != len(gids) {
			t.Fatalf("%q: duplicate gids %v", user, gids)
		}
		u, g, hasGroup := strings.Cut(user, ":")
		if id, ok := parseID(u); ok && r.user.UID != id {
			t.Fatalf("%q: uid %d", user, r.user.UID)
		}
		if id, ok := parseID(g); hasGroup && ok && r.user.GID != id {
			t.Fatalf("%q: gid %d", user, r.user.GID)
		}
	})
}
