package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The attack tests (attack_*_test.go) play the container-escape classes of
// runc's and crun's history against the runtime under test; docs/security.md
// lists them with the CVEs, hako's defence and runc 1.1.5's result. Each
// test checks the host, not the runtime's word: canary files outside the
// rootfs, host sysctls, the host mount table, and what is left behind.

// hostCanary is a host directory outside every rootfs holding one file with
// known content. An attack that reaches the host through a symlink, a
// leaked fd or a redirected mount shows up as a changed file, a new entry,
// or a mount on it in the host's mount table.
type hostCanary struct {
	dir     string
	file    string
	content string
	entries []string
}

const canaryContent = "host-canary-content\n"

func newHostCanary(t *testing.T) *hostCanary {
	t.Helper()
	dir := t.TempDir()
	c := &hostCanary{dir: dir, file: filepath.Join(dir, "canary"), content: canaryContent}
	if err := os.WriteFile(c.file, []byte(c.content), 0o644); err != nil {
		t.Fatal(err)
	}
	c.entries = c.list(t)
	return c
}

func (c *hostCanary) list(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		t.Fatalf("host canary: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// check fails t if the canary changed or anything is mounted on or under it
// in the host's mount namespace.
func (c *hostCanary) check(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(c.file)
	if err != nil {
		t.Errorf("HOST CANARY: read %s: %v", c.file, err)
	} else if string(data) != c.content {
		t.Errorf("HOST CANARY CHANGED: %s holds %q, want %q", c.file, data, c.content)
	}
	if got := c.list(t); !slices.Equal(got, c.entries) {
		t.Errorf("HOST CANARY DIRECTORY CHANGED: %s holds %v, want %v", c.dir, got, c.entries)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, c.dir) {
			t.Errorf("HOST MOUNT on the canary: %s", line)
		}
	}
}

// installAttackHelper builds the static attack helper (CGO_ENABLED=0, so
// that it runs in a busybox rootfs without a loader) into rootfs/attack.
// The build cache makes every build after the first a link of ~0.3s.
func installAttackHelper(t *testing.T, rootfs string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(rootfs, "attack"), "./attackhelper")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build attack helper: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}

// readSysctl returns a host sysctl value (from the test's own namespaces,
// which are the host's).
func readSysctl(t *testing.T, key string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		t.Fatalf("read host sysctl %s: %v", key, err)
	}
	return strings.TrimSpace(string(data))
}
