package test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// mountAttack is one hostile rootfs/config pair: prepare plants symlinks in
// the rootfs (the image's part), mutate adjusts config.json (the bundle's
// part), script runs in the container with its output in /out, and check
// judges that output. A runtime passes if create fails with a one-line
// error, or if the container runs and check finds nothing of the host;
// either way the host canary, the host mount table and the leak checks
// must show nothing.
type mountAttack struct {
	name     string
	prepare  func(t *testing.T, rootfs string, c *hostCanary)
	mutate   func(s *specs.Spec, c *hostCanary, vol string)
	script   string
	terminal bool
	// check returns what is wrong with the container's /out, or "".
	check func(out string, c *hostCanary) string
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.RemoveAll(link); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// withoutDevTmpfs drops the /dev tmpfs so that the rootfs' own /dev (with
// the planted symlinks) is what the runtime works in, as with an image that
// ships /dev entries and a config that does not mount /dev.
func withoutDevTmpfs(s *specs.Spec) {
	s.Mounts = slices.DeleteFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev" })
}

func bindVol(dest string) func(*specs.Spec, *hostCanary, string) {
	return func(s *specs.Spec, _ *hostCanary, vol string) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: dest, Type: "bind", Source: vol, Options: []string{"rbind", "rw"}})
	}
}

// noCanary is the common check: the container must not see the canary's
// content anywhere in its output.
func noCanary(out string, c *hostCanary) string {
	if strings.Contains(out, strings.TrimSpace(c.content)) {
		return "the container read the host canary"
	}
	return ""
}

var mountAttacks = []mountAttack{
	{
		// CVE-2015-1328-style / runc#1922 / CVE-2021-30465: a mount
		// destination that is a symlink to a host path.
		name:    "mount destination absolute symlink",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) { symlink(t, c.dir, filepath.Join(rootfs, "mnt/x")) },
		mutate:  bindVol("/mnt/x"),
		script:  "ls /mnt/x; echo pwned > /mnt/x/pwned; cat /mnt/x/canary",
		check:   noCanary,
	},
	{
		name: "mount destination relative symlink",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) {
			symlink(t, strings.Repeat("../", 12)+strings.TrimPrefix(c.dir, "/"), filepath.Join(rootfs, "mnt/y"))
		},
		mutate: bindVol("/mnt/y"),
		script: "ls /mnt/y; echo pwned > /mnt/y/pwned; cat /mnt/y/canary",
		check:  noCanary,
	},
	{
		name:    "mount destination parent symlink",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) { symlink(t, c.dir, filepath.Join(rootfs, "mnt/p")) },
		mutate: func(s *specs.Spec, c *hostCanary, vol string) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/mnt/p/canary", Type: "tmpfs", Source: "tmpfs"})
		},
		script: "ls /mnt/p; echo pwned > /mnt/p/pwned",
		check:  noCanary,
	},
	{
		name: "masked path symlink to host file",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) {
			symlink(t, c.file, filepath.Join(rootfs, "mnt/masked"))
		},
		mutate: func(s *specs.Spec, _ *hostCanary, _ string) {
			s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, "/mnt/masked")
		},
		script: "cat /mnt/masked; echo pwned > /mnt/masked",
		check:  noCanary,
	},
	{
		name:    "readonly path symlink to host dir",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) { symlink(t, c.dir, filepath.Join(rootfs, "mnt/ro")) },
		mutate: func(s *specs.Spec, _ *hostCanary, _ string) {
			s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, "/mnt/ro")
		},
		script: "ls /mnt/ro; echo pwned > /mnt/ro/pwned; cat /mnt/ro/canary",
		check:  noCanary,
	},
	{
		// CVE-2025-31133: /dev/null, used as the source for masking, is
		// a symlink; a runtime that follows it binds whatever it points
		// to over the masked path.
		name: "dev-null symlink to host file",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) {
			symlink(t, c.file, filepath.Join(rootfs, "dev/null"))
		},
		mutate: func(s *specs.Spec, _ *hostCanary, _ string) { withoutDevTmpfs(s) },
		script: "cat /proc/kcore; echo pwned > /proc/kcore",
		check:  noCanary,
	},
	{
		// The same with a target inside the container's own procfs: the
		// masked /proc/kcore would show (and write) the UTS hostname file.
		// The hostname is namespaced, so this probe cannot harm the host;
		// core_pattern in its place would be a host escape.
		name: "dev-null symlink to procfs file",
		prepare: func(t *testing.T, rootfs string, _ *hostCanary) {
			symlink(t, "/proc/sys/kernel/hostname", filepath.Join(rootfs, "dev/null"))
		},
		mutate: func(s *specs.Spec, _ *hostCanary, _ string) {
			withoutDevTmpfs(s)
			s.Hostname = "hkmasked"
		},
		script: `echo "kcore=[$(cat /proc/kcore)]"; echo hkpwned > /proc/kcore; echo "hostname=[$(hostname)]"`,
		check: func(out string, _ *hostCanary) string {
			if strings.Contains(out, "kcore=[hk") || strings.Contains(out, "hostname=[hkpwned]") {
				return "masking /proc/kcore followed the /dev/null symlink onto a procfs file"
			}
			return ""
		},
	},
	{
		// CVE-2025-52565: /dev/console is a symlink; the pty bind mount
		// must not land on (or through) what it points to.
		name: "dev-console symlink to host file",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) {
			symlink(t, c.file, filepath.Join(rootfs, "dev/console"))
			symlink(t, "pts/ptmx", filepath.Join(rootfs, "dev/ptmx"))
		},
		mutate:   func(s *specs.Spec, _ *hostCanary, _ string) { withoutDevTmpfs(s) },
		terminal: true,
		script:   "echo pwned > /dev/console; ls -l /dev/console",
		check:    noCanary,
	},
	{
		// The same pointing at a file of the image: a runtime that follows
		// the symlink truncates it or mounts the pty over it (with
		// /proc/sys/kernel/core_pattern as the target, the write that
		// follows would go to the host's).
		name: "dev-console symlink to container file",
		prepare: func(t *testing.T, rootfs string, _ *hostCanary) {
			if err := os.WriteFile(filepath.Join(rootfs, "victim"), []byte("image-content"), 0o644); err != nil {
				t.Fatal(err)
			}
			symlink(t, "/victim", filepath.Join(rootfs, "dev/console"))
			symlink(t, "pts/ptmx", filepath.Join(rootfs, "dev/ptmx"))
		},
		mutate:   func(s *specs.Spec, _ *hostCanary, _ string) { withoutDevTmpfs(s) },
		terminal: true,
		script:   `t=$(stat -c %F /victim); echo "type=[$t]"; if [ "$t" = "regular file" ]; then echo "victim=[$(cat /victim)]"; fi`,
		check: func(out string, _ *hostCanary) string {
			if !strings.Contains(out, "victim=[image-content]") {
				return "/dev/console set-up followed the symlink onto /victim"
			}
			return ""
		},
	},
	{
		// CVE-2019-16884 / CVE-2025-52881: /proc in the rootfs is not a
		// directory but a symlink, so a runtime mounting procfs "at /proc"
		// lands elsewhere and later writes to /proc go astray.
		name: "proc symlink to host dir",
		prepare: func(t *testing.T, rootfs string, c *hostCanary) {
			symlink(t, c.dir, filepath.Join(rootfs, "proc"))
		},
		script: "ls /proc/ | head -3; cat /proc/canary; echo pwned > /proc/pwned",
		check:  noCanary,
	},
}

// TestAttackMountSymlinks plays each mountAttack with create, start and
// delete.
func TestAttackMountSymlinks(t *testing.T) {
	t.Parallel()
	for _, tc := range mountAttacks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRuntime(t)
			c := newHostCanary(t)
			vol := t.TempDir()
			if err := os.WriteFile(filepath.Join(vol, "from-vol"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			id := newID(t)
			bundle := testenv.BusyboxBundle(t, func(s *specs.Spec) {
				s.Root.Readonly = false
				s.Process.Terminal = tc.terminal
				s.Process.Args = []string{"sh", "-c", "exec >/out 2>&1; " + tc.script}
				s.Linux.CgroupsPath = "/" + id
				if tc.mutate != nil {
					tc.mutate(s, c, vol)
				}
			})
			rootfs := filepath.Join(bundle, "rootfs")
			tc.prepare(t, rootfs, c)
			r.cleanupContainer(id)
			before := takeSnapshot(t, r)

			args := []string{"create", "--bundle", bundle}
			var pending <-chan received
			var cs *consoleSocket
			if tc.terminal {
				cs = newConsoleSocket(t)
				pending = cs.accept()
				args = append(args, "--console-socket", cs.path)
			}
			res := r.run(append(args, id)...)
			if res.code != 0 {
				oneLineError(t, res)
				t.Logf("create refused: %s", strings.TrimSpace(res.stderr))
			} else {
				if tc.terminal {
					cs.wait(pending)
				}
				if sres := r.run("start", id); sres.code != 0 {
					t.Logf("start failed: %v", sres)
				} else {
					r.waitStatus(id, specs.StateStopped)
				}
				r.ok("delete", "--force", id)
				out, _ := os.ReadFile(filepath.Join(rootfs, "out"))
				t.Logf("container output: %q", out)
				if msg := tc.check(string(out), c); msg != "" {
					t.Errorf("ESCAPE: %s; container output %q", msg, out)
				}
			}
			c.check(t)
			checkNoLeaks(t, r, before, leakMarkers{
				paths:   []string{bundle, r.base, c.dir},
				cgroups: []string{id},
			})
		})
	}
}
