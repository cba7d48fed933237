package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

func TestDefaultSpec(t *testing.T) {
	rootfs := newRootfs(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "data"), []byte("volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := testenv.DefaultSpec()
	fuseMode := os.FileMode(0o600)
	uid, gid := uint32(1000), uint32(1000)
	spec.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &fuseMode, UID: &uid, GID: &gid},
		{Path: "/dev/net/tun", Type: "c", Major: 10, Minor: 200},
		{Path: "/dev/fifo", Type: "p", FileMode: &fuseMode},
		{Path: "/dev/loop200", Type: "b", Major: 7, Minor: 200},
	}
	spec.Linux.Sysctl = map[string]string{
		"net.ipv4.ip_forward": "1",
		"kernel.shmmni":       "1234",
	}
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/mnt/ro", Type: "bind", Source: vol, Options: []string{"rbind", "ro", "nosuid"}},
		specs.Mount{Destination: "/mnt/rw", Source: vol, Options: []string{"bind", "private"}},
		specs.Mount{Destination: "/mnt/file", Source: filepath.Join(vol, "data"), Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/etc", Type: "tmpfs", Source: "tmpfs", Options: []string{"tmpcopyup", "nodev", "mode=755"}},
		specs.Mount{Destination: "/run/deep/dir", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec", "shared"}},
		specs.Mount{Destination: "/dev/mqueue", Options: []string{"remount", "ro", "nosymfollow"}},
		// A tree with a submount, bound twice: "rro" reaches the submount,
		// "ro" only the top. The source is a host path; in the child's
		// namespace it shows the two tmpfs mounted just before.
		specs.Mount{Destination: "/mnt/a", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/mnt/a/b", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/mnt/rro", Source: filepath.Join(rootfs, "mnt/a"), Options: []string{"rbind", "rro"}},
		specs.Mount{Destination: "/mnt/ro1", Source: filepath.Join(rootfs, "mnt/a"), Options: []string{"rbind", "ro"}},
	)
	resp := runChild(t, childRequest{
		Spec: spec, Rootfs: rootfs, Console: true, Sysctl: true, SharedHost: true,
		Read: []string{"/proc/keys", "/proc/acpi/wakeup", "/proc/timer_list", "/mnt/ro/data", "/mnt/file",
			"/etc/passwd", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmni"},
		Write:   []string{"/proc/sys/kernel/shmmax", "/proc/sys/net/ipv4/ip_forward", "/mnt/ro/data", "/mnt/file", "/mnt/rw/data"},
		Create:  []string{"/newfile", "/tmp/newfile", "/dev/shm/x", "/etc/x", "/sys/fs/cgroup/x"},
		Stat:    []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/fuse", "/dev/net/tun", "/dev/fifo", "/dev/loop200", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/core", "/dev/ptmx", "/dev/console", "/sys/fs/cgroup/cpu"},
		ReadDir: []string{"/sys/firmware", "/sys/fs/cgroup", "/proc/acpi"},
	})
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	mi := resp.Mountinfo

	for _, c := range []struct{ point, fstype string }{
		{"/", ""}, {"/proc", "proc"}, {"/dev", "tmpfs"}, {"/dev/pts", "devpts"}, {"/dev/shm", "tmpfs"},
		{"/dev/mqueue", "mqueue"}, {"/sys", "sysfs"}, {"/sys/fs/cgroup", "tmpfs"},
		{"/sys/fs/cgroup/memory", "cgroup"}, {"/sys/fs/cgroup/cpu", "cgroup"},
		{"/sys/fs/cgroup/systemd", "cgroup"}, {"/sys/fs/cgroup/unified", "cgroup2"},
		{"/proc/keys", "tmpfs"}, {"/proc/timer_list", "tmpfs"}, {"/proc/acpi", "tmpfs"},
		{"/sys/firmware", "tmpfs"}, {"/proc/sys", "proc"}, {"/proc/bus", "proc"},
		{"/dev/console", "devpts"}, {"/etc", "tmpfs"}, {"/run/deep/dir", "tmpfs"},
	} {
		m, ok := findMount(mi, c.point)
		if !ok {
			t.Errorf("no mount at %s", c.point)
			continue
		}
		if c.fstype != "" && m.FSType != c.fstype {
			t.Errorf("%s: fs type %s, want %s", c.point, m.FSType, c.fstype)
		}
	}
	expectOpts := map[string][]string{
		"/":              {"ro"},
		"/sys":           {"ro", "nosuid", "nodev", "noexec"},
		"/sys/fs/cgroup": {"ro", "nosuid", "nodev", "noexec"},
		"/dev":           {"rw", "nosuid"},
		"/dev/shm":       {"nosuid", "nodev", "noexec"},
		"/proc/sys":      {"ro"},
		"/mnt/ro":        {"ro", "nosuid"},
		"/mnt/file":      {"ro"},
		"/run/deep/dir":  {"noexec"},
		"/etc":           {"nodev"},
		"/dev/mqueue":    {"ro", "nosymfollow", "nosuid", "nodev", "noexec"},
		"/mnt/rro":       {"ro"},
		"/mnt/rro/b":     {"ro"},
		"/mnt/ro1":       {"ro"},
		"/mnt/ro1/b":     {"rw"},
	}
	for p, opts := range expectOpts {
		m, _ := findMount(mi, p)
		for _, o := range opts {
			if !hasOpt(m.Options, o) {
				t.Errorf("%s: options %q lack %s", p, m.Options, o)
			}
		}
	}
	if m, _ := findMount(mi, "/dev"); !hasOpt(m.Super, "size=65536k") || !hasOpt(m.Super, "mode=755") {
		t.Errorf("/dev: tmpfs data options not applied: %s", m.Super)
	}
	// Propagation: "/" keeps following the host (rslave by default), the
	// "private" bind has no peer group, the "shared" tmpfs has one.
	if m, _ := findMount(mi, "/"); !strings.Contains(m.Optional, "master:") {
		t.Errorf("/: optional fields %q, want master: (rslave)", m.Optional)
	}
	if m, _ := findMount(mi, "/mnt/rw"); strings.Contains(m.Optional, "shared:") || strings.Contains(m.Optional, "master:") {
		t.Errorf("/mnt/rw: optional fields %q, want private", m.Optional)
	}
	if m, _ := findMount(mi, "/run/deep/dir"); !strings.Contains(m.Optional, "shared:") {
		t.Errorf("/run/deep/dir: optional fields %q, want shared", m.Optional)
	}

	devs := map[string][3]uint32{ // major, minor, perm
		"/dev/null": {1, 3, 0o666}, "/dev/zero": {1, 5, 0o666}, "/dev/full": {1, 7, 0o666},
		"/dev/random": {1, 8, 0o666}, "/dev/urandom": {1, 9, 0o666}, "/dev/tty": {5, 0, 0o666},
		"/dev/fuse": {10, 229, 0o600}, "/dev/net/tun": {10, 200, 0o666},
	}
	for p, want := range devs {
		st := resp.Stats[p]
		if st.Type != "c" || st.Major != want[0] || st.Minor != want[1] || st.Perm != want[2] {
			t.Errorf("%s: %+v, want char %d:%d mode %#o", p, st, want[0], want[1], want[2])
		}
	}
	if st := resp.Stats["/dev/fifo"]; st.Type != "p" || st.Perm != 0o600 {
		t.Errorf("/dev/fifo: %+v, want a fifo with mode 0600", st)
	}
	if st := resp.Stats["/dev/loop200"]; st.Type != "b" || st.Major != 7 || st.Minor != 200 || st.Perm != 0o666 {
		t.Errorf("/dev/loop200: %+v, want block 7:200 mode 0666", st)
	}
	if st := resp.Stats["/dev/fuse"]; st.UID != 1000 || st.GID != 1000 {
		t.Errorf("/dev/fuse owner %d:%d, want 1000:1000", st.UID, st.GID)
	}
	links := map[string]string{
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2", "/dev/core": "/proc/kcore", "/dev/ptmx": "pts/ptmx",
	}
	for p, want := range links {
		if st := resp.Stats[p]; st.Type != "l" || st.Link != want {
			t.Errorf("%s: %+v, want symlink to %s", p, st, want)
		}
	}
	if st := resp.Stats["/dev/console"]; st.Type != "c" || st.Major < 136 || st.Major > 143 {
		t.Errorf("/dev/console: %+v, want the pty slave", st)
	}
	// This host mounts cpu and cpuacct separately: each is a directory.
	if st := resp.Stats["/sys/fs/cgroup/cpu"]; st.Type != "d" {
		t.Errorf("/sys/fs/cgroup/cpu: %+v, want a directory", st)
	}
	// The memory hierarchy shows the test's own cgroup, not the host root.
	if m, _ := findMount(mi, "/sys/fs/cgroup/memory"); m.Root != ownCgroup(t, "memory") {
		t.Errorf("/sys/fs/cgroup/memory: root %s, want %s", m.Root, ownCgroup(t, "memory"))
	}

	for p, want := range map[string]string{
		"/proc/keys": "", "/proc/timer_list": "", "/proc/acpi/wakeup": "error: ENOENT",
		"/mnt/ro/data": "volume", "/mnt/file": "volume",
		"/proc/sys/net/ipv4/ip_forward": "1\n", "/proc/sys/kernel/shmmni": "1234\n",
	} {
		if got := resp.Reads[p]; got != want {
			t.Errorf("read %s = %q, want %q", p, got, want)
		}
	}
	if !strings.Contains(resp.Reads["/etc/passwd"], "root:x:0:0") {
		t.Errorf("tmpcopyup: /etc/passwd = %q", resp.Reads["/etc/passwd"])
	}
	for p, want := range map[string]string{
		"/proc/sys/net/ipv4/ip_forward": "EROFS", "/proc/sys/kernel/shmmax": "EROFS",
		"/mnt/ro/data": "EROFS", "/mnt/file": "EROFS", "/mnt/rw/data": "ok",
	} {
		if got := resp.Writes[p]; got != want {
			t.Errorf("write %s: %s, want %s", p, got, want)
		}
	}
	for p, want := range map[string]string{
		"/newfile": "EROFS", "/tmp/newfile": "EROFS", "/dev/shm/x": "ok", "/etc/x": "ok", "/sys/fs/cgroup/x": "EROFS",
	} {
		if got := resp.Creates[p]; got != want {
			t.Errorf("create %s: %s, want %s", p, got, want)
		}
	}
	for _, p := range []string{"/sys/firmware", "/proc/acpi"} {
		if d := resp.Dirs[p]; len(d) != 0 {
			t.Errorf("%s lists %v, want masked (empty)", p, d)
		}
	}
	if got := strings.Join(resp.Dirs["/sys/fs/cgroup"], " "); !strings.Contains(got, "memory") || !strings.Contains(got, "unified") {
		t.Errorf("/sys/fs/cgroup lists %q, want the v1 hierarchies and unified", got)
	}
	// The host's own values must not have changed.
	if b, _ := os.ReadFile("/proc/sys/kernel/shmmni"); strings.TrimSpace(string(b)) == "1234" {
		t.Errorf("kernel.shmmni was written on the host")
	}
	// Nothing was written into the image by the /dev tmpfs set-up.
	if ents, _ := os.ReadDir(filepath.Join(rootfs, "dev")); len(ents) != 0 {
		t.Errorf("rootfs /dev got entries: %v", ents)
	}
}

// ownCgroup returns this process's path in a v1 hierarchy.
func ownCgroup(t *testing.T, controller string) string {
	t.Helper()
	lines, err := readProcCgroup()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if l.controllers == controller {
			return l.path
		}
	}
	t.Fatalf("no %s line in /proc/self/cgroup", controller)
	return ""
}

// In a user namespace mknod is not permitted: the default devices are the
// host's nodes bind-mounted onto empty files; everything else still works.
func TestUserNamespace(t *testing.T) {
	rootfs := newRootfs(t)
	spec := testenv.DefaultSpec()
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
	resp := runChild(t, childRequest{
		Spec: spec, Rootfs: rootfs, UserNS: true, Sysctl: true, ConsoleFD: true,
		Stat:  []string{"/dev/null", "/dev/zero", "/dev/tty", "/dev/console"},
		Read:  []string{"/proc/keys", "/proc/sys/net/ipv4/ip_forward"},
		Write: []string{"/dev/null", "/proc/sys/kernel/shmmax"},
	})
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	for p, want := range map[string][2]uint32{"/dev/null": {1, 3}, "/dev/zero": {1, 5}, "/dev/tty": {5, 0}} {
		if st := resp.Stats[p]; st.Type != "c" || st.Major != want[0] || st.Minor != want[1] {
			t.Errorf("%s: %+v, want char %d:%d", p, st, want[0], want[1])
		}
		if m, ok := findMount(resp.Mountinfo, p); !ok || m.FSType != "devtmpfs" && m.FSType != "tmpfs" {
			t.Errorf("%s: not bind-mounted from the host: %+v", p, m)
		}
	}
	if st := resp.Stats["/dev/console"]; st.Type != "c" || st.Major < 136 || st.Major > 143 {
		t.Errorf("/dev/console: %+v, want the pty slave", st)
	}
	for p, want := range map[string]string{"/proc/keys": "", "/proc/sys/net/ipv4/ip_forward": "1\n"} {
		if got := resp.Reads[p]; got != want {
			t.Errorf("read %s = %q, want %q", p, got, want)
		}
	}
	for p, want := range map[string]string{"/dev/null": "ok", "/proc/sys/kernel/shmmax": "EROFS"} {
		if got := resp.Writes[p]; got != want {
			t.Errorf("write %s: %s, want %s", p, got, want)
		}
	}
}

// With a cgroup namespace, each v1 hierarchy is a new cgroup mount whose
// root is the container's own cgroup.
func TestCgroupNamespace(t *testing.T) {
	rootfs := newRootfs(t)
	spec := testenv.DefaultSpec()
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs, CgroupNS: true,
		ReadDir: []string{"/sys/fs/cgroup"}})
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	for _, h := range []string{"memory", "cpu", "systemd", "unified"} {
		m, ok := findMount(resp.Mountinfo, "/sys/fs/cgroup/"+h)
		if !ok {
			t.Errorf("no mount at /sys/fs/cgroup/%s (dir has %v)", h, resp.Dirs["/sys/fs/cgroup"])
			continue
		}
		if m.Root != "/" || !strings.HasPrefix(m.FSType, "cgroup") || !hasOpt(m.Options, "ro") {
			t.Errorf("/sys/fs/cgroup/%s: %+v, want a read-only cgroup mount rooted at /", h, m)
		}
	}
}
