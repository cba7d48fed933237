package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func isMountPoint(t *testing.T, path string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func TestParseOptions(t *testing.T) {
	p := parseOptions([]string{"rbind", "ro", "nosuid", "rprivate", "lowerdir=/a:/b", "rw", "upperdir=/u"})
	if p.flags != unix.MS_BIND|unix.MS_REC|unix.MS_NOSUID {
		t.Errorf("flags = %#x", p.flags)
	}
	if p.propagation != unix.MS_PRIVATE|unix.MS_REC {
		t.Errorf("propagation = %#x", p.propagation)
	}
	if strings.Join(p.data, ",") != "lowerdir=/a:/b,upperdir=/u" {
		t.Errorf("data = %q", p.data)
	}
	if !(Mount{Options: []string{"ro"}}).ReadOnly() || (Mount{Options: []string{"ro", "rw"}}).ReadOnly() {
		t.Error("ReadOnly wrong")
	}
}

func TestBindReadOnly(t *testing.T) {
	needRoot(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WithTempMount([]Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}, func(root string) error {
		if !isMountPoint(t, root) {
			t.Error("not mounted")
		}
		if b, err := os.ReadFile(filepath.Join(root, "f")); err != nil || string(b) != "x" {
			t.Errorf("read through bind: %q %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(root, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write on ro bind: %v, want EROFS", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOverlayAllAndUnmount(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	for _, d := range []string{"l1", "l2", "up", "work", "mnt"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(base, "l1", "a"), []byte("l1"), 0o644)
	os.WriteFile(filepath.Join(base, "l2", "a"), []byte("l2"), 0o644)
	os.WriteFile(filepath.Join(base, "l1", "b"), []byte("b"), 0o644)
	target := filepath.Join(base, "mnt")
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + filepath.Join(base, "l2") + ":" + filepath.Join(base, "l1"),
		"upperdir=" + filepath.Join(base, "up"), "workdir=" + filepath.Join(base, "work"),
	}}
	if err := All([]Mount{m}, target); err != nil {
		t.Fatal(err)
	}
	defer Unmount(target, unix.MNT_DETACH)
	if b, _ := os.ReadFile(filepath.Join(target, "a")); string(b) != "l2" {
		t.Errorf("a = %q, want top lower l2", b)
	}
	if err := os.WriteFile(filepath.Join(target, "c"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target, 0); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(t, target) {
		t.Fatal("still mounted")
	}
	if b, _ := os.ReadFile(filepath.Join(base, "up", "c")); string(b) != "c" {
		t.Errorf("upper c = %q", b)
	}
}

func TestAllRollsBack(t *testing.T) {
	needRoot(t)
	src, target := t.TempDir(), t.TempDir()
	ms := []Mount{
		{Type: "bind", Source: src, Options: []string{"rbind"}},
		{Type: "bind", Source: filepath.Join(src, "missing"), Target: "x", Options: []string{"bind"}},
	}
	if err := All(ms, target); err == nil {
		Unmount(target, unix.MNT_DETACH)
		t.Fatal("All succeeded with a missing source")
	}
	if isMountPoint(t, target) {
		Unmount(target, unix.MNT_DETACH)
		t.Fatal("first mount not rolled back")
	}
}

func TestOptionsTooLong(t *testing.T) {
	m := Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"x=" + strings.Repeat("a", 5000)}}
	if err := m.Mount(t.TempDir()); err == nil || !strings.Contains(err.Error(), "one-page") {
		t.Fatalf("err = %v", err)
	}
}

// TestOverlayManyLayers mounts an overlay whose lowerdir list is longer
// than a page, which only the new mount API can take.
func TestOverlayManyLayers(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	var lowers []string
	for i := range 120 {
		l := filepath.Join(base, fmt.Sprintf("layer-with-a-long-name-to-fill-the-page-%03d", i))
		if err := os.Mkdir(l, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(l, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(l, "top"), []byte(fmt.Sprint(i)), 0o644)
		lowers = append(lowers, l)
	}
	// Topmost first: layer 119 wins.
	for i, j := 0, len(lowers)-1; i < j; i, j = i+1, j-1 {
		lowers[i], lowers[j] = lowers[j], lowers[i]
	}
	target := filepath.Join(base, "mnt")
	os.Mkdir(target, 0o755)
	opt := "lowerdir=" + strings.Join(lowers, ":")
	if len(opt) < os.Getpagesize() {
		t.Fatalf("test options only %d bytes", len(opt))
	}
	m := Mount{Type: "overlay", Source: "overlay", Options: []string{"ro", opt}}
	if err := m.Mount(target); err != nil {
		t.Fatal(err)
	}
	defer Unmount(target, unix.MNT_DETACH)
	if b, _ := os.ReadFile(filepath.Join(target, "top")); string(b) != "119" {
		t.Errorf("top = %q, want 119", b)
	}
	for _, f := range []string{"f000", "f119"} {
		if _, err := os.Stat(filepath.Join(target, f)); err != nil {
			t.Error(err)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "new"), nil, 0o644); err == nil {
		t.Error("write into read-only overlay succeeded")
	}
}
