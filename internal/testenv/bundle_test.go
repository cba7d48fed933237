package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestBusyboxBundle(t *testing.T) {
	RequireRoot(t) // the rootfs chowns /home/nobody
	bundle := BusyboxBundle(t, func(s *specs.Spec) { s.Process.Args = []string{"echo", "hi"} })

	spec, err := ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spec.Process.Args, " "); got != "echo hi" {
		t.Errorf("args = %q, want mutated %q", got, "echo hi")
	}
	if spec.Process.Terminal {
		t.Error("terminal must default to false")
	}
	rootfs := filepath.Join(bundle, spec.Root.Path)
	for _, p := range []string{"bin/busybox", "bin/sh", "bin/sleep", "etc/passwd", "etc/group"} {
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("rootfs lacks %s: %v", p, err)
		}
	}
	fi, err := os.Stat(filepath.Join(rootfs, "tmp"))
	if err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp mode = %v, %v; want sticky 1777", fi.Mode(), err)
	}

	// The rootfs must be usable as a root: chroot into it and run an applet
	// through its symlink.
	out, err := exec.Command("chroot", rootfs, "/bin/sh", "-c", "id -u nobody; echo ok").CombinedOutput()
	if err != nil {
		t.Fatalf("chroot sh: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "1000\nok" {
		t.Errorf("chroot output = %q", got)
	}
}

func TestBusyboxBundleIndependentCopies(t *testing.T) {
	RequireRoot(t)
	a := BusyboxBundle(t, nil)
	b := BusyboxBundle(t, nil)
	if err := os.WriteFile(filepath.Join(a, "rootfs/bin/busybox"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(b, "rootfs/bin/busybox"))
	if err != nil || fi.Size() < 1000 {
		t.Fatalf("second bundle's busybox changed by a write to the first: %v %v", fi, err)
	}
}
