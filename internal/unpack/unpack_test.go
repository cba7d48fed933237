package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/testenv"
	"golang.org/x/sys/unix"
)

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestApplyTree(t *testing.T) {
	testenv.RequireRoot(t)
	s := newSandbox(t)
	suid := file("bin/su", "su")
	suid.mode, suid.uid, suid.gid = 0o4755, 0, 0
	owned := file("home/u/.profile", "export X=1")
	owned.uid, owned.gid, owned.mode = 1000, 1001, 0o640
	owned.xattrs = map[string]string{"user.note": "hello", "security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
	sticky := dir("tmp/")
	sticky.mode = 0o1777
	chr := entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1, minor: 3}
	blk := entry{name: "dev/loop9", typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 9, gid: 6}
	fifo := entry{name: "run/fifo", typ: tar.TypeFifo, mode: 0o620}
	lnk := symlink("bin/sh", "busybox")
	lnk.uid, lnk.gid = 5, 6
	b := layer(t,
		dir("bin/"), file("bin/busybox", "#!busybox"), lnk, suid,
		hardlink("bin/ls", "bin/busybox"),
		dir("home/"), dir("home/u/"), owned, sticky, chr, blk, fifo,
		file("etc/implicit/parent", "x"), // parents without entries
	)
	diffID, size, err := Apply(context.Background(), s.root, bytes.NewReader(b), Options{DiffID: sha(b)})
	if err != nil {
		t.Fatal(err)
	}
	if diffID != sha(b) || size != int64(len(b)) {
		t.Errorf("diffID %s size %d, want %s %d", diffID, size, sha(b), len(b))
	}
	s.check(t)
	r := func(p string) string { return filepath.Join(s.root, p) }

	if st := lstat(t, r("bin/su")); st.Mode != unix.S_IFREG|0o4755 {
		t.Errorf("setuid mode %o", st.Mode)
	}
	if st := lstat(t, r("tmp")); st.Mode != unix.S_IFDIR|0o1777 || st.Mtim.Sec != testTime.Unix() {
		t.Errorf("sticky dir mode %o mtime %d", st.Mode, st.Mtim.Sec)
	}
	st := lstat(t, r("home/u/.profile"))
	if st.Uid != 1000 || st.Gid != 1001 || st.Mode != unix.S_IFREG|0o640 || st.Mtim.Sec != testTime.Unix() {
		t.Errorf("owned file %d:%d %o mtime %d", st.Uid, st.Gid, st.Mode, st.Mtim.Sec)
	}
	if x := xattrs(r("home/u/.profile")); !strings.Contains(x, `user.note="hello"`) || !strings.Contains(x, "security.capability") {
		t.Errorf("xattrs %s", x)
	}
	if l, _ := os.Readlink(r("bin/sh")); l != "busybox" {
		t.Errorf("symlink -> %q", l)
	}
	if st := lstat(t, r("bin/sh")); st.Uid != 5 || st.Gid != 6 {
		t.Errorf("symlink owner %d:%d (Lchown)", st.Uid, st.Gid)
	}
	if a, b := lstat(t, r("bin/ls")), lstat(t, r("bin/busybox")); a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("hardlink: ino %d vs %d nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	if st := lstat(t, r("dev/null")); st.Mode != unix.S_IFCHR|0o666 || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("char dev %o %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if st := lstat(t, r("dev/loop9")); st.Mode != unix.S_IFBLK|0o660 || unix.Minor(st.Rdev) != 9 || st.Gid != 6 {
		t.Errorf("block dev %o %d gid %d", st.Mode, unix.Minor(st.Rdev), st.Gid)
	}
	if st := lstat(t, r("run/fifo")); st.Mode != unix.S_IFIFO|0o620 {
		t.Errorf("fifo mode %o", st.Mode)
	}
	if st := lstat(t, r("etc/implicit")); st.Mode != unix.S_IFDIR|0o755 {
		t.Errorf("implicit parent mode %o", st.Mode)
	}
	if st := lstat(t, r("bin")); st.Mtim.Sec != testTime.Unix() {
		t.Errorf("dir mtime %d not fixed after content", st.Mtim.Sec)
	}
}

func TestCompression(t *testing.T) {
	testenv.RequireRoot(t)
	b := layer(t, dir("d/"), file("d/f", strings.Repeat("hako ", 10000)))
	for name, data := range map[string][]byte{"none": b, "gzip": gz(t, b), "zstd": zst(t, b)} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			d, n, err := Apply(context.Background(), root, bytes.NewReader(data), Options{DiffID: sha(b)})
			if err != nil {
				t.Fatal(err)
			}
			if d != sha(b) || n != int64(len(b)) {
				t.Errorf("diffID %s size %d", d, n)
			}
			if got, _ := os.ReadFile(filepath.Join(root, "d/f")); len(got) != 50000 {
				t.Errorf("content %d bytes", len(got))
			}
		})
	}
	t.Run("mismatch", func(t *testing.T) {
		other := sha([]byte("other"))
		_, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(gz(t, b)), Options{DiffID: other})
		if !errors.Is(err, ErrDiffIDMismatch) || !strings.Contains(err.Error(), other.String()) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("xz", func(t *testing.T) {
		_, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader([]byte("\xfd7zXZ\x00rest")), Options{})
		if !errors.Is(err, ErrUnsupportedCompression) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("corrupt gzip", func(t *testing.T) {
		g := gz(t, b)
		g[len(g)-6] ^= 0xff // CRC
		if _, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(g), Options{}); err == nil {
			t.Fatal("corrupt gzip accepted")
		}
	})
}

func TestWhiteoutsNative(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	lower := layer(t, dir("a/"), file("a/keep", "1"), file("a/gone", "2"), dir("a/sub/"), file("a/sub/x", "3"),
		dir("o/"), file("o/old", "4"), dir("o/d/"), file("o/d/old", "5"), file("top", "6"))
	if err := apply(t, root, lower, Options{}); err != nil {
		t.Fatal(err)
	}
	upper := layer(t,
		file("a/.wh.gone", ""), file("a/.wh.sub", ""),
		dir("o/"), dir("o/d/"), file("o/d/new", "7"), // written before the opaque marker
		file("o/.wh..wh..opq", ""),
		file("o/after", "8"),
		file("new", "9"), file(".wh.new", ""), // same-layer file survives its whiteout
		file(".wh.missing", ""),
	)
	if err := apply(t, root, upper, Options{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"a/keep": true, "a/gone": false, "a/sub": false, "o/old": false, "o/d/old": false,
		"o/d/new": true, "o/after": true, "top": true, "new": true, "a/.wh.gone": false, "o/.wh..wh..opq": false}
	for p, exists := range want {
		_, err := os.Lstat(filepath.Join(root, p))
		if exists != (err == nil) {
			t.Errorf("%s exists=%v, want %v", p, err == nil, exists)
		}
	}
}

func TestWhiteoutsOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	upper := t.TempDir()
	b := layer(t, file("a/.wh.gone", ""), dir("o/"), file("o/.wh..wh..opq", ""), file("o/new", "1"),
		file(".wh.d", ""), dir("d/"), file("d/f", "2"))
	if err := apply(t, upper, b, Options{Whiteouts: WhiteoutOverlay}); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, filepath.Join(upper, "a/gone"))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout mode %o rdev %d", st.Mode, st.Rdev)
	}
	for _, d := range []string{"o", "d"} {
		if x := xattrs(filepath.Join(upper, d)); !strings.Contains(x, `trusted.overlay.opaque="y"`) {
			t.Errorf("%s xattrs %q, want opaque", d, x)
		}
	}
	if _, err := os.Lstat(filepath.Join(upper, "o/.wh..wh..opq")); err == nil {
		t.Error("opaque marker written as a file")
	}
}

func TestLimits(t *testing.T) {
	testenv.RequireRoot(t)
	t.Run("gzip bomb", func(t *testing.T) {
		s := newSandbox(t)
		big := layer(t, file("zeros", strings.Repeat("\x00", 8<<20)))
		g := gz(t, big)
		_, _, err := Apply(context.Background(), s.root, bytes.NewReader(g), Options{MaxSize: 1 << 20})
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "zeros") {
			t.Fatalf("err = %v", err)
		}
		s.check(t)
	})
	t.Run("stream over limit", func(t *testing.T) {
		many := layer(t, file("a", strings.Repeat("a", 600<<10)), file("b", strings.Repeat("b", 600<<10)))
		_, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(gz(t, many)), Options{MaxSize: 1 << 20})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("entries", func(t *testing.T) {
		_, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(layer(t, file("a", ""), file("b", ""), file("c", ""))), Options{MaxEntries: 2})
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("truncated content", func(t *testing.T) {
		b := layer(t, file("f", strings.Repeat("x", 4096)))
		_, _, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(b[:512+1000]), Options{})
		if err == nil || !strings.Contains(err.Error(), `"f"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _, err := Apply(ctx, t.TempDir(), bytes.NewReader(layer(t, file("a", "x"))), Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCleanName(t *testing.T) {
	for name, want := range map[string]string{"./a/b/": "a/b", "a//b": "a/b", "./": "", "a/./b": "a/b"} {
		if got, err := cleanName(name); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v", name, got, err)
		}
	}
	for _, bad := range []string{"../x", "a/../../x", "/etc/passwd", "a\x00b", "..", "a/.."} {
		if _, err := cleanName(bad); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("cleanName(%q) err = %v", bad, err)
		}
	}
}

// TestReplaceHardlinkedFile: writing a name that shares its inode with
// another file must not change the other file (the name is unlinked and
// created anew, never opened for writing).
func TestReplaceHardlinkedFile(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if err := apply(t, root, layer(t, file("f", "original"), hardlink("h", "f")), Options{}); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, root, layer(t, file("h", "replaced")), Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "original" {
		t.Errorf("f = %q, changed through its hardlink", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "h")); string(b) != "replaced" {
		t.Errorf("h = %q", b)
	}
}

// TestRootEntry: a "./" entry sets the root's own mode and owner.
func TestRootEntry(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	e := dir("./")
	e.mode, e.uid, e.gid = 0o750, 3, 4
	if err := apply(t, root, layer(t, e, file("a", "x")), Options{}); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, root)
	if st.Mode != unix.S_IFDIR|0o750 || st.Uid != 3 || st.Gid != 4 || st.Mtim.Sec != testTime.Unix() {
		t.Errorf("root mode %o owner %d:%d mtime %d", st.Mode, st.Uid, st.Gid, st.Mtim.Sec)
	}
}

// TestReplacedParent checks the parent directory cache: once a directory
// is replaced (by a symlink, a file, a new directory), later entries below
// its name go where the name leads now, never into the removed directory.
// Also that owner and mode are set when a new entry does not get them by
// itself: umask, a setgid parent, a directory kept from before.
func TestReplacedParent(t *testing.T) {
	testenv.RequireRoot(t)
	s := newSandbox(t)
	setgid := dir("g/")
	setgid.mode, setgid.gid = 0o2775, 50
	inG := file("g/f", "x") // would inherit gid 50
	inG.mode = 0o664        // umask 022 would give 0644
	sub := dir("g/sub/")    // would inherit setgid
	again := dir("a/")      // merges with the existing a/
	again.mode, again.uid, again.gid = 0o700, 7, 8
	b := layer(t,
		dir("a/"), file("a/x", "1"), dir("b/"),
		symlink("a", "b"), file("a/y", "through the symlink"), // a/ was cached
		dir("c/"), dir("c/d/"), file("c/d/x", "1"),
		file("c", "now a file"), dir("c/"), file("c/z", "new c"), // c/ and c/d/ were cached
		setgid, inG, sub, again,
	)
	if _, _, err := Apply(context.Background(), s.root, bytes.NewReader(b), Options{}); err != nil {
		t.Fatal(err)
	}
	s.check(t)
	r := func(p string) string { return filepath.Join(s.root, p) }
	if got, err := os.ReadFile(r("b/y")); err != nil || string(got) != "through the symlink" {
		t.Errorf("b/y = %q, %v", got, err)
	}
	if _, err := os.Lstat(r("c/d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("c/d survived the replacement of c: %v", err)
	}
	if got, err := os.ReadFile(r("c/z")); err != nil || string(got) != "new c" {
		t.Errorf("c/z = %q, %v", got, err)
	}
	if st := lstat(t, r("g/f")); st.Gid != 0 || st.Mode != unix.S_IFREG|0o664 {
		t.Errorf("g/f gid %d mode %o, want 0 and 0664", st.Gid, st.Mode)
	}
	if st := lstat(t, r("g/sub")); st.Gid != 0 || st.Mode != unix.S_IFDIR|0o755 {
		t.Errorf("g/sub gid %d mode %o, want 0 and 0755 (no inherited setgid)", st.Gid, st.Mode)
	}
	if st := lstat(t, r("a")); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 7 || st.Gid != 8 || st.Mode&0o7777 != 0o700 {
		t.Errorf("a: mode %o owner %d:%d, want a 0700 directory owned 7:8", st.Mode, st.Uid, st.Gid)
	}
}
