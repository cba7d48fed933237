// Package testenv holds helpers shared by hako's tests: skipping tests that
// need root, short temporary directories (unix socket paths are limited to
// 108 bytes), and OCI bundles built from Debian's busybox-static so that
// integration tests run real containers without any image or network.
package testenv

import (
	"os"
	"testing"
)

// RequireRoot skips t unless the test runs as uid 0: creating namespaces,
// mounts and cgroups is the subject of most runtime tests and needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test needs root")
	}
}

// ShortTempDir returns a new directory directly under /tmp that is removed
// when t ends. t.TempDir embeds the test name in the path, which easily
// pushes a unix socket path past the 108-byte sun_path limit; console
// sockets and runtime state roots (which may hold sockets) live here instead.
func ShortTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hk")
	if err != nil {
		t.Fatalf("short temp dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}
