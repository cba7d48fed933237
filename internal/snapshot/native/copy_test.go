package native

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hako-runtime/hako/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestCopyTree checks what a copy keeps and that it never follows a
// symlink of the (untrusted) source tree.
func TestCopyTree(t *testing.T) {
	testenv.RequireRoot(t)
	base := t.TempDir()
	src, dst, canary := filepath.Join(base, "src"), filepath.Join(base, "dst"), filepath.Join(base, "canary")
	for _, d := range []string{src, canary, filepath.Join(src, "d")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(canary, "f"), []byte("canary"), 0o644))
	must(os.WriteFile(filepath.Join(src, "d", "suid"), []byte("x"), 0o644))
	must(os.Chown(filepath.Join(src, "d", "suid"), 10, 20))
	must(unix.Chmod(filepath.Join(src, "d", "suid"), 0o4750)) // os.Chmod has its own setuid bit
	must(os.Link(filepath.Join(src, "d", "suid"), filepath.Join(src, "link")))
	must(os.Symlink(canary, filepath.Join(src, "out")))
	must(os.Symlink(filepath.Join(canary, "f"), filepath.Join(src, "outfile")))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Chmod(filepath.Join(src, "null"), 0o666)) // past the umask
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(unix.Lsetxattr(filepath.Join(src, "d"), "user.k", []byte("v"), 0))
	must(unix.Lchown(filepath.Join(src, "out"), 3, 4))
	ts := []unix.Timespec{{Sec: 1000}, {Sec: 2000}}
	must(unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(src, "d"), ts, 0))

	must(CopyTree(context.Background(), dst, src))

	st := func(p string) unix.Stat_t {
		var s unix.Stat_t
		must(unix.Lstat(filepath.Join(dst, p), &s))
		return s
	}
	if s := st("d/suid"); s.Mode != unix.S_IFREG|0o4750 || s.Uid != 10 || s.Gid != 20 {
		t.Errorf("suid: mode %o owner %d:%d", s.Mode, s.Uid, s.Gid)
	}
	if a, b := st("d/suid"), st("link"); a.Ino != b.Ino {
		t.Error("hardlink became two files")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "out")); l != canary {
		t.Errorf("symlink -> %q", l)
	}
	if s := st("out"); s.Uid != 3 || s.Gid != 4 {
		t.Errorf("symlink owner %d:%d", s.Uid, s.Gid)
	}
	if s := st("null"); s.Mode != unix.S_IFCHR|0o666 || s.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("device mode %o rdev %d", s.Mode, s.Rdev)
	}
	if s := st("fifo"); s.Mode != unix.S_IFIFO|0o600 {
		t.Errorf("fifo mode %o", s.Mode)
	}
	if s := st("d"); s.Mtim.Sec != 2000 {
		t.Errorf("dir mtime %d", s.Mtim.Sec)
	}
	v := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dst, "d"), "user.k", v); err != nil || string(v[:n]) != "v" {
		t.Errorf("xattr: %q %v", v[:n], err)
	}
	if ents, _ := os.ReadDir(canary); len(ents) != 1 {
		t.Errorf("canary has %d entries", len(ents))
	}
	if b, _ := os.ReadFile(filepath.Join(canary, "f")); string(b) != "canary" {
		t.Errorf("canary changed: %q", b)
	}
}
