package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/testenv"
)

const canarySecret = "host-secret"

// newCanary makes a host directory /tmp/canary-XXX holding one file. A
// container set-up that escapes its rootfs would create, mount or mask
// something in it.
func newCanary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "canary-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte(canarySecret), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func checkCanary(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "file" {
		t.Errorf("host canary %s was written to: %v", dir, ents)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != canarySecret {
		t.Errorf("host canary file changed: %q, %v", b, err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "file")} {
		if isMountPoint(p) {
			t.Errorf("host canary %s is a mount point", p)
		}
	}
	checkNoHostMounts(t, dir)
}

// noDevTmpfs drops the spec's /dev mounts, leaving the image's /dev in use.
func noDevTmpfs(s *specs.Spec, keepPts bool) {
	var ms []specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == "/dev" || (strings.HasPrefix(m.Destination, "/dev/") && !(keepPts && m.Destination == "/dev/pts")) {
			continue
		}
		ms = append(ms, m)
	}
	s.Mounts = ms
}

// Mount destinations that are symlinks to a host directory, absolute or by
// "..", are resolved inside the rootfs (CVE-2021-30465 and friends). When
// the symlink's target does not exist inside the rootfs, the set-up fails
// (pathrs-lite does not create through dangling symlinks, like runc); when
// it does, the mounts land there.
func TestAttackMountDestSymlink(t *testing.T) {
	testenv.RequireRoot(t)
	for _, inRoot := range []bool{false, true} {
		t.Run(map[bool]string{false: "dangling", true: "target-in-rootfs"}[inRoot], func(t *testing.T) {
			testMountDestSymlink(t, inRoot)
		})
	}
}

func testMountDestSymlink(t *testing.T, inRoot bool) {
	rootfs := newRootfs(t)
	canary := newCanary(t)
	vol := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "mnt"), 0o755)
	if err := os.Symlink(canary, filepath.Join(rootfs, "mnt/abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 12)+strings.TrimPrefix(canary, "/"), filepath.Join(rootfs, "mnt/rel")); err != nil {
		t.Fatal(err)
	}
	if inRoot {
		if err := os.MkdirAll(filepath.Join(rootfs, canary), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := testenv.DefaultSpec()
	spec.Mounts = append(spec.Mounts,
		specs.Mount{Destination: "/mnt/abs/sub/dir", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/mnt/rel/file", Type: "bind", Source: "/etc/hostname", Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/mnt/rel", Type: "bind", Source: vol, Options: []string{"rbind"}},
	)
	resp := runChild(t, childRequest{
		Spec: spec, Rootfs: rootfs,
		HostNotMounted: []string{canary, filepath.Join(canary, "sub/dir"), filepath.Join(canary, "file")},
	}, canary)
	checkCanary(t, canary)
	if !inRoot {
		if resp.Stage != "prepare" || !strings.Contains(resp.Err, "/mnt/abs/sub/dir") {
			t.Fatalf("stage %q err %q, want prepare to fail on the dangling in-root target", resp.Stage, resp.Err)
		}
		return
	}
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	if len(resp.HostMounts) != 0 {
		t.Errorf("mounts landed on host paths: %v", resp.HostMounts)
	}
	// Inside the container the symlinks were followed within the rootfs:
	// the mounts sit at rootfs/tmp/canary-XXX/...
	for _, p := range []string{filepath.Join(canary, "sub/dir"), canary} {
		if _, ok := findMount(resp.Mountinfo, p); !ok {
			t.Errorf("no mount at %s inside the container", p)
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, canary, "sub/dir")); err != nil {
		t.Errorf("target not created inside the rootfs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, canary, "file")); err != nil {
		t.Errorf("file target not created inside the rootfs: %v", err)
	}
}

// A destination that resolves into procfs, here through /proc/self, is
// refused (CVE-2019-16884, CVE-2023-27561).
func TestAttackProcDest(t *testing.T) {
	rootfs := newRootfs(t)
	if err := os.Symlink("/proc/self", filepath.Join(rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	spec := testenv.DefaultSpec()
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data/attr", Type: "tmpfs", Source: "tmpfs"})
	resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs})
	if resp.Stage != "prepare" || !strings.Contains(resp.Err, "procfs") || !strings.Contains(resp.Err, "/data/attr") {
		t.Fatalf("stage %q err %q, want prepare to refuse a procfs destination", resp.Stage, resp.Err)
	}
}

// Only a procfs may be mounted at /proc, whatever the spec says.
func TestAttackFakeProc(t *testing.T) {
	rootfs := newRootfs(t)
	fake := t.TempDir()
	spec := testenv.DefaultSpec()
	spec.Mounts[0] = specs.Mount{Destination: "/proc", Type: "bind", Source: fake, Options: []string{"rbind"}}
	resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs})
	if resp.Stage != "prepare" || !strings.Contains(resp.Err, "only a procfs") {
		t.Fatalf("stage %q err %q, want prepare to refuse a fake /proc", resp.Stage, resp.Err)
	}
	// A tmpfs named "proc" is no better.
	spec.Mounts[0] = specs.Mount{Destination: "/proc", Type: "tmpfs", Source: "proc"}
	resp = runChild(t, childRequest{Spec: spec, Rootfs: rootfs})
	if resp.Stage != "prepare" || !strings.Contains(resp.Err, "only a procfs") {
		t.Fatalf("stage %q err %q, want prepare to refuse a tmpfs /proc", resp.Stage, resp.Err)
	}
}

// Masked paths that are symlinks resolve inside the container: one pointing
// at a host file masks nothing on the host, one pointing at a container file
// masks that file.
func TestAttackMaskedSymlink(t *testing.T) {
	rootfs := newRootfs(t)
	canary := newCanary(t)
	if err := os.Symlink(filepath.Join(canary, "file"), filepath.Join(rootfs, "etc/evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(rootfs, "etc/inner")); err != nil {
		t.Fatal(err)
	}
	spec := testenv.DefaultSpec()
	spec.Linux.MaskedPaths = append(spec.Linux.MaskedPaths, "/etc/evil", "/etc/inner")
	spec.Linux.ReadonlyPaths = append(spec.Linux.ReadonlyPaths, "/etc/evil")
	resp := runChild(t, childRequest{
		Spec: spec, Rootfs: rootfs,
		Read: []string{"/etc/hostname", "/etc/passwd"},
	}, canary)
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	if got := resp.Reads["/etc/hostname"]; got != "" {
		t.Errorf("/etc/hostname (masked through /etc/inner) reads %q", got)
	}
	if got := resp.Reads["/etc/passwd"]; !strings.Contains(got, "root:") {
		t.Errorf("/etc/passwd reads %q", got)
	}
	checkCanary(t, canary)
}

// /dev/null used for masking must be the real null device: a symlink (to a
// host file), a regular file or another device is refused (CVE-2025-31133).
func TestAttackDevNull(t *testing.T) {
	testenv.RequireRoot(t)
	canary := newCanary(t)
	for _, tc := range []struct {
		name string
		make func(p string) error
		want string
	}{
		{"symlink-to-host", func(p string) error { return os.Symlink(filepath.Join(canary, "file"), p) }, "symlink"},
		{"regular-file", func(p string) error { return os.WriteFile(p, nil, 0o666) }, "not the null device"},
		{"dev-zero", func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))) }, "not the null device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := newRootfs(t)
			if err := tc.make(filepath.Join(rootfs, "dev/null")); err != nil {
				t.Fatal(err)
			}
			spec := testenv.DefaultSpec()
			noDevTmpfs(spec, false)
			spec.Linux.MaskedPaths = []string{"/proc/keys", "/etc/hostname"}
			resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs}, canary)
			if resp.Stage != "finish" || !strings.Contains(resp.Err, "/dev/null") || !strings.Contains(resp.Err, tc.want) {
				t.Fatalf("stage %q err %q, want finish to refuse /dev/null (%s)", resp.Stage, resp.Err, tc.want)
			}
			checkCanary(t, canary)
		})
	}
}

// /dev/console that is a symlink is refused (CVE-2025-52565); a regular file
// there is covered by the pty.
func TestAttackConsoleSymlink(t *testing.T) {
	rootfs := newRootfs(t)
	canary := newCanary(t)
	if err := os.Symlink(filepath.Join(canary, "file"), filepath.Join(rootfs, "dev/console")); err != nil {
		t.Fatal(err)
	}
	spec := testenv.DefaultSpec()
	noDevTmpfs(spec, true)
	spec.Linux.MaskedPaths = nil
	resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs, Console: true}, canary)
	if resp.Stage != "console" || !strings.Contains(resp.Err, "/dev/console") {
		t.Fatalf("stage %q err %q, want the console set-up to refuse the symlink", resp.Stage, resp.Err)
	}
	checkCanary(t, canary)
}

// A sysctl key that tries to walk out of /proc/sys/net is rejected before
// anything is written, naming the key.
func TestAttackSysctl(t *testing.T) {
	rootfs := newRootfs(t)
	before, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	spec := testenv.DefaultSpec()
	spec.Linux.Sysctl = map[string]string{
		"net.ipv4.ip_forward":           "1",
		"net/../../kernel.core_pattern": "|/tmp/evil",
	}
	resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs, Sysctl: true})
	if resp.Stage != "sysctl" || !strings.Contains(resp.Err, `"net/../../kernel.core_pattern"`) {
		t.Fatalf("stage %q err %q, want sysctl to reject the key", resp.Stage, resp.Err)
	}
	after, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if string(after) != string(before) {
		t.Errorf("host core_pattern changed: %q -> %q", before, after)
	}
}

func TestNoPivot(t *testing.T) {
	rootfs := newRootfs(t)
	spec := testenv.DefaultSpec()
	resp := runChild(t, childRequest{
		Spec: spec, Rootfs: rootfs, NoPivot: true,
		Read:   []string{"/proc/keys", "/etc/hostname"},
		Create: []string{"/x"},
	})
	if resp.Stage != "" {
		t.Fatalf("%s: %s", resp.Stage, resp.Err)
	}
	if got := resp.Reads["/etc/hostname"]; got != "hako\n" {
		t.Errorf("/etc/hostname = %q: not the container's root", got)
	}
	if got := resp.Reads["/proc/keys"]; got != "" {
		t.Errorf("/proc/keys not masked: %q", got)
	}
	if got := resp.Creates["/x"]; got != "EROFS" {
		t.Errorf("create /x: %s, want EROFS (root.readonly)", got)
	}
	for _, p := range []string{"/proc", "/dev", "/sys/fs/cgroup/memory"} {
		if _, ok := findMount(resp.Mountinfo, p); !ok {
			t.Errorf("no mount at %s", p)
		}
	}
}

// linux.rootfsPropagation on a host where "/" is shared (systemd).
func TestRootfsPropagation(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		prop     string
		optional string // substring expected in "/"'s optional fields, "" for none
	}{
		{"", "master:"},
		{"private", ""},
		{"rslave", "master:"},
		{"rshared", "shared:"},
		{"unbindable", "unbindable"},
	} {
		t.Run("prop="+tc.prop, func(t *testing.T) {
			// Through a symlink: mountinfo has the real path.
			rootfs, real := filepath.Join(t.TempDir(), "link"), newRootfs(t)
			if err := os.Symlink(real, rootfs); err != nil {
				t.Fatal(err)
			}
			spec := testenv.DefaultSpec()
			spec.Linux.RootfsPropagation = tc.prop
			resp := runChild(t, childRequest{Spec: spec, Rootfs: rootfs, SharedHost: true}, real)
			if resp.Stage != "" {
				t.Fatalf("%s: %s", resp.Stage, resp.Err)
			}
			m, ok := findMount(resp.Mountinfo, "/")
			if !ok {
				t.Fatal("no / in mountinfo")
			}
			if tc.optional == "" && m.Optional != "" || tc.optional != "" && !strings.Contains(m.Optional, tc.optional) {
				t.Errorf("/ optional fields %q, want %q", m.Optional, tc.optional)
			}
		})
	}
}

func TestCheckSysctl(t *testing.T) {
	all := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
	}}}
	none := &specs.Spec{}
	for _, tc := range []struct {
		spec       *specs.Spec
		key, value string
		ok         bool
	}{
		{all, "net.ipv4.ip_forward", "1", true},
		{all, "net.ipv4.conf.all.rp_filter", "2", true},
		{all, "kernel.shmmax", "1", true},
		{all, "kernel.shm_rmid_forced", "1", true},
		{all, "kernel.msgmax", "1", true},
		{all, "kernel.sem", "250 32000 32 128", true},
		{all, "fs.mqueue.msg_max", "10", true},
		{all, "kernel.domainname", "example", true},
		{none, "net.ipv4.ip_forward", "1", false},
		{none, "kernel.shmmax", "1", false},
		{none, "fs.mqueue.msg_max", "1", false},
		{none, "kernel.domainname", "x", false},
		{all, "kernel.hostname", "x", false},
		{all, "kernel.core_pattern", "|/x", false},
		{all, "vm.overcommit_memory", "1", false},
		{all, "net/../../kernel.core_pattern", "x", false},
		{all, "net.ipv4..ip_forward", "1", false},
		{all, "net.ipv4.ip_forward.", "1", false},
		{all, "net.ipv4 .ip_forward", "1", false},
		{all, "net/ipv4/conf/eth0.100/forwarding", "1", true},
		{all, "net/ipv4/ip_forward", "1", true},
		{none, "net/ipv4/ip_forward", "1", false},
		{all, "kernel/shmmax", "1", true},
		{all, "kernel/hostname", "x", false},
		{all, "net/./ipv4/ip_forward", "1", false},
		{all, "net/../kernel/core_pattern", "x", false},
		{all, "net//ipv4", "1", false},
		{all, "/net/ipv4/ip_forward", "1", false},
		{all, "", "1", false},
		{all, "net.ipv4.ip_forward", "1\nkernel.x=2", false},
	} {
		err := CheckSysctl(tc.spec, tc.key, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("CheckSysctl(%q, %q) = %v, want ok=%v", tc.key, tc.value, err, tc.ok)
		}
		if err != nil && tc.key != "" && !strings.Contains(err.Error(), tc.key) {
			t.Errorf("error %q does not name the key %q", err, tc.key)
		}
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"rbind", "ro", "nosuid", "rnodev", "rrw", "noatime", "rshared", "mode=755", "size=1m", "tmpcopyup", "sync"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.bind || !o.rbind || !o.tmpcopyup {
		t.Errorf("bind/rbind/tmpcopyup not set: %+v", o)
	}
	if o.attr.set != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NOATIME || o.attr.clr != unix.MOUNT_ATTR__ATIME {
		t.Errorf("attr = %+v", o.attr)
	}
	if o.rattr.set != unix.MOUNT_ATTR_NODEV || o.rattr.clr != unix.MOUNT_ATTR_RDONLY {
		t.Errorf("rattr = %+v", o.rattr)
	}
	if o.propagation != unix.MS_SHARED || !o.propRec {
		t.Errorf("propagation = %#x rec=%v", o.propagation, o.propRec)
	}
	if !slices.Equal(o.data, []string{"mode=755", "size=1m"}) || !slices.Equal(o.sbFlags, []string{"ro", "sync"}) {
		t.Errorf("data %v sb %v", o.data, o.sbFlags)
	}
	// Later options win, as in runc's table.
	o, _ = parseOptions([]string{"ro", "rw", "nosuid", "suid"})
	if o.attr.set != 0 || o.attr.clr != unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID {
		t.Errorf("ro,rw,nosuid,suid: attr = %+v", o.attr)
	}
	// idmap/ridmap are the runtime's (OpenIDMapped), never file system data.
	if o, err := parseOptions([]string{"rbind", "idmap"}); err != nil || !o.idmap || o.ridmap || len(o.data) > 0 {
		t.Errorf("idmap: %+v, %v", o, err)
	}
	if o, err := parseOptions([]string{"ridmap"}); err != nil || !o.idmap || !o.ridmap || len(o.data) > 0 {
		t.Errorf("ridmap: %+v, %v", o, err)
	}
	if got := splitData(`a=1,context="x:y:s0:c1,c2",b`); !slices.Equal(got, []string{"a=1", `context="x:y:s0:c1,c2"`, "b"}) {
		t.Errorf("splitData = %q", got)
	}
}
