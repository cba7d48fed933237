package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// Id-mapped mounts (runtime-spec config.md "Mounts": uidMappings,
// gidMappings, options idmap and ridmap). runc 1.1.5 has none of it.

// userns100k is a container user namespace mapping 0 -> host 100000.
func userns100k(s *specs.Spec) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
}

// openToAll makes dir and its parents up to the temp dir reachable by the
// container's root (host uid 100000): the test's temp dirs are 0700.
func openToAll(t *testing.T, dir string) {
	t.Helper()
	for ; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// mountPoints makes the bundle reachable by the container's root and
// creates mount points in its rootfs, which that root (host uid 100000)
// could not create in a rootfs owned by the host's root.
func mountPoints(t *testing.T, bundle string, names ...string) {
	t.Helper()
	openToAll(t, bundle)
	for _, n := range names {
		if err := os.Mkdir(filepath.Join(bundle, "rootfs", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func owner(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid, st.Gid
}

func idmapped(src, dest string, opts []string, m []specs.LinuxIDMapping) specs.Mount {
	return specs.Mount{Destination: dest, Type: "bind", Source: src, Options: opts, UIDMappings: m, GIDMappings: m}
}

// TestIDMappedBind: a host directory owned by uid/gid 1000, bound into a
// container whose root is host uid 100000:
//   - with the mount mapping 1000 -> 100000, the container's root sees it
//     as its own (0:0), and what it creates there lands on the host as
//     1000:1000;
//   - with "idmap" and no mappings (the container's own: 0 -> 100000), the
//     container sees the host's ids unchanged (1000), and its root's files
//     land as host 0 (not 100000, as they would without the mapping);
//   - the host directory itself is not touched (no chown).
func TestIDMappedBind(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5 has no id-mapped mounts")
	}
	vol := filepath.Join(testenv.ShortTempDir(t), "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// rootdir stays the host root's: through the idmap mount with the
	// container's mappings it is the container root's (on-disk 0 is
	// container 0), the only place there that root may write (the
	// container has no CAP_DAC_OVERRIDE).
	if err := os.Mkdir(filepath.Join(vol, "rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{vol, filepath.Join(vol, "file")} {
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	openToAll(t, filepath.Dir(vol))
	before := takeSnapshot(t, r)
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		userns100k(s)
		s.Mounts = append(s.Mounts,
			idmapped(vol, "/mapped", []string{"bind", "idmap"}, []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}),
			idmapped(vol, "/same", []string{"rbind", "ridmap"}, nil))
		s.Process.Args = []string{"sh", "-c", "stat -c %u:%g /mapped /mapped/file /same/file && touch /mapped/new && touch /same/rootdir/new"}
	})
	mountPoints(t, bundle, "mapped", "same")
	r.cleanupContainer(id)
	res := r.ok("run", "--bundle", bundle, id)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) < 3 || lines[0] != "0:0" || lines[1] != "0:0" || lines[2] != "1000:1000" {
		t.Fatalf("owners seen in the container %q, want 0:0 (mapped mount), 0:0 (its file), 1000:1000 (idmap with the container's mappings)", res.stdout)
	}
	if u, g := owner(t, filepath.Join(vol, "new")); u != 1000 || g != 1000 {
		t.Errorf("file created by the container's root through the mapped mount is %d:%d on the host, want 1000:1000", u, g)
	}
	if u, g := owner(t, filepath.Join(vol, "rootdir", "new")); u != 0 || g != 0 {
		t.Errorf("file created by the container's root through the idmap mount is %d:%d on the host, want 0:0", u, g)
	}
	if u, g := owner(t, vol); u != 1000 || g != 1000 {
		t.Errorf("the host directory became %d:%d: an id-mapped mount must not chown", u, g)
	}
	// No user namespace holder, no mount left.
	checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, r.base, vol}, cgroups: []string{id}})
}

// TestIDMappedRecursive: "idmap" maps the top mount of an rbind only,
// "ridmap" every mount of the tree (mount_setattr AT_RECURSIVE). The host
// tree is a directory owned by 1000 with a tmpfs owned by 1000 mounted
// under it; mapped 1000 -> 100000 (the container's root).
func TestIDMappedRecursive(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5 has no id-mapped mounts")
	}
	vol := filepath.Join(testenv.ShortTempDir(t), "vol")
	sub := filepath.Join(vol, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(vol, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "mode=755,uid=1000,gid=1000,size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(sub, syscall.MNT_DETACH) })
	openToAll(t, filepath.Dir(vol))
	m := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		userns100k(s)
		s.Mounts = append(s.Mounts,
			idmapped(vol, "/top", []string{"rbind", "idmap"}, m),
			idmapped(vol, "/all", []string{"rbind", "ridmap"}, m))
		s.Process.Args = []string{"stat", "-c", "%n %u:%g", "/top", "/top/sub", "/all", "/all/sub"}
	})
	mountPoints(t, bundle, "top", "all")
	r.cleanupContainer(id)
	res := r.ok("run", "--bundle", bundle, id)
	// Host uid 1000 is not in the container's user namespace: unmapped,
	// the overflow id.
	overflow := func(f string) string {
		b, err := os.ReadFile("/proc/sys/kernel/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	want := "/top 0:0\n/top/sub " + overflow("overflowuid") + ":" + overflow("overflowgid") + "\n/all 0:0\n/all/sub 0:0"
	if got := strings.TrimSpace(res.stdout); got != want {
		t.Errorf("owners:\n%s\nwant:\n%s", got, want)
	}
}

// TestIDMappedTmpfs: a tmpfs made by the runtime on the host side, id-mapped
// so that its root (host root's, mode 0755) is the container root's: without
// the mapping the container's root could not write to it.
func TestIDMappedTmpfs(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5 has no id-mapped mounts")
	}
	id := newID(t)
	bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
		userns100k(s)
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/scratch", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=755", "size=1m", "idmap"},
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}},
		})
		s.Process.Args = []string{"sh", "-c", "stat -c %u:%g /scratch && touch /scratch/f && stat -c %u:%g /scratch/f"}
	})
	mountPoints(t, bundle, "scratch")
	r.cleanupContainer(id)
	res := r.ok("run", "--bundle", bundle, id)
	if got := strings.Fields(res.stdout); len(got) != 2 || got[0] != "0:0" || got[1] != "0:0" {
		t.Errorf("tmpfs root and new file owners %q, want 0:0 0:0", res.stdout)
	}
}

// TestIDMappedErrors: id-mapped mounts that cannot be made fail create with
// an error that says why, and leave nothing behind (no mount, no process
// holding a user namespace, no state, no cgroup).
func TestIDMappedErrors(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	if r.isRunc() {
		t.Skip("runc 1.1.5 has no id-mapped mounts")
	}
	vol := t.TempDir()
	m1000 := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 100000, Size: 1}}
	cases := []struct {
		name   string
		mutate func(*specs.Spec)
		want   string
	}{
		{"idmap without a user namespace", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, idmapped(vol, "/v", []string{"bind", "idmap"}, nil))
		}, "needs a user namespace"},
		{"file system without idmap support", func(s *specs.Spec) {
			userns100k(s)
			s.Mounts = append(s.Mounts, idmapped("/proc/sys", "/v", []string{"rbind", "ridmap"}, m1000))
		}, "does not support id-mapped mounts"},
		{"missing source", func(s *specs.Spec) {
			userns100k(s)
			s.Mounts = append(s.Mounts, idmapped(filepath.Join(vol, "missing"), "/v", []string{"bind", "idmap"}, m1000))
		}, "no such file"},
		{"overlapping mappings", func(s *specs.Spec) {
			userns100k(s)
			s.Mounts = append(s.Mounts, idmapped(vol, "/v", []string{"bind", "idmap"},
				[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 10}, {ContainerID: 5, HostID: 300000, Size: 10}}))
		}, "mount's mappings"},
		{"idmap on proc", func(s *specs.Spec) {
			userns100k(s)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/p2", Type: "proc", Source: "proc", Options: []string{"idmap"}})
		}, "cannot be id-mapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := newID(t)
			bundle := testenv.BusyboxBundle(t, c.mutate)
			mountPoints(t, bundle, "v", "p2")
			before := takeSnapshot(t, r)
			res := r.run("create", "--bundle", bundle, id)
			if res.code == 0 {
				r.run("delete", "--force", id)
				t.Fatalf("create succeeded: %v", res)
			}
			t.Logf("error: %s", strings.TrimSpace(res.stderr))
			if !strings.Contains(res.stderr, "id-mapped mount") || !strings.Contains(res.stderr, c.want) {
				t.Errorf("error %q does not say %q", strings.TrimSpace(res.stderr), c.want)
			}
			if n := strings.Count(strings.TrimSpace(res.stderr), "\n"); n > 0 {
				t.Errorf("error is %d lines, want one: %q", n+1, res.stderr)
			}
			checkNoLeaks(t, r, before, leakMarkers{paths: []string{bundle, r.base, vol}, cgroups: []string{id}})
		})
	}
}
