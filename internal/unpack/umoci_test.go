package unpack_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/snapshot/native"
	"github.com/hako-runtime/hako/internal/snapshot/overlay"
	"github.com/hako-runtime/hako/internal/testenv"
	"github.com/hako-runtime/hako/internal/unpack"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// buildScript makes a three-layer image with umoci from the static
// busybox: ownership, setuid/setgid/sticky, devices, a fifo, hardlinks,
// absolute and relative symlinks, xattrs, then deletions (whiteouts),
// replacements and a re-created directory in later layers.
const buildScript = `
set -eu
L=$1/layout; B=$1/bundle; R=$B/rootfs
if [ "$2" = populate ]; then
umoci init --layout $L
umoci new --image $L:t
umoci unpack --image $L:t $B >/dev/null
mkdir -p $R/bin $R/etc $R/home/user/.config $R/usr/share/doc/x $R/tmp $R/dev $R/srv/shared $R/var/empty
cp /bin/busybox $R/bin/busybox
ln -s busybox $R/bin/sh; ln -s /bin/busybox $R/bin/ls; ln $R/bin/busybox $R/bin/hardlinked
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' > $R/etc/passwd
printf 'root:*:1::::::\n' > $R/etc/shadow; chown 0:42 $R/etc/shadow; chmod 0640 $R/etc/shadow
ln -s /proc/mounts $R/etc/mtab
printf 'x' > $R/home/user/.config/rc; chown -R 1000:1000 $R/home/user; chmod 0700 $R/home/user; chmod 0600 $R/home/user/.config/rc
cp /bin/busybox $R/bin/su; chmod 4755 $R/bin/su
chmod 2775 $R/srv/shared; chown 0:50 $R/srv/shared
chmod 1777 $R/tmp
mknod $R/dev/null c 1 3; chmod 0666 $R/dev/null
mknod $R/dev/sda b 8 0; chmod 0660 $R/dev/sda; chown 0:6 $R/dev/sda
mkfifo $R/var/fifo
printf 'doc' > $R/usr/share/doc/x/README
printf '' > "$R/usr/share/doc/with space ü"
exit 0 # the test sets xattrs, then runs the rest
fi
# Fixed times per layer: a build straddling a second would otherwise give
# directories times that differ between runs.
find $R -exec touch -h -d @1700000001 {} +
umoci repack --image $L:t $B >/dev/null
rm -rf $B; umoci unpack --image $L:t $B >/dev/null
rm $R/etc/shadow; rm -rf $R/home/user; rm $R/bin/ls
printf 'root:x:0:0:root:/root:/bin/sh\n' > $R/etc/passwd
rm -rf $R/usr/share/doc/x; printf 'now a file' > $R/usr/share/doc/x
mkdir $R/opt; printf 'new' > $R/opt/new
find $R -exec touch -h -d @1700000002 {} +
umoci repack --image $L:t $B >/dev/null
rm -rf $B; umoci unpack --image $L:t $B >/dev/null
mkdir -p $R/home/user; printf 'again' > $R/home/user/file
rm $R/usr/share/doc/x; mkdir $R/usr/share/doc/x; chmod 0750 $R/usr/share/doc/x
rm $R/opt/new
find $R -exec touch -h -d @1700000003 {} +
umoci repack --image $L:t $B >/dev/null
rm -rf $B
`

func TestMatchesUmoci(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Skip("umoci not installed")
	}
	ctx := context.Background()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no static busybox to build the image from")
	}
	work := t.TempDir()
	if out, err := exec.Command("bash", "-c", buildScript, "build", work, "populate").CombinedOutput(); err != nil {
		t.Fatalf("build image with umoci: %v\n%s", err, out)
	}
	// xattrs from Go: setfattr (attr) is not installed everywhere.
	rootfs := filepath.Join(work, "bundle", "rootfs")
	for p, v := range map[string]string{"usr/share/doc/x": "layer1", "etc/passwd": "pw", "bin/su": "su"} {
		if err := unix.Lsetxattr(filepath.Join(rootfs, p), "user.hako", []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("bash", "-c", buildScript, "build", work, "layers").CombinedOutput(); err != nil {
		t.Fatalf("build image with umoci: %v\n%s", err, out)
	}
	layout := filepath.Join(work, "layout")
	ref := filepath.Join(work, "ref")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":t", ref).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	want := tree(t, filepath.Join(ref, "rootfs"))
	// The reference must hold what the comparison is meant to cover.
	for p, sub := range map[string]string{
		"bin/su": `user.hako="su"`, "etc/passwd": `user.hako="pw"`, "dev/sda": "dev=8:0",
		"etc/mtab": "-> /proc/mounts", "srv/shared": "mode=0042775 owner=0:50", "tmp": "mode=0041777",
		"usr/share/doc/x": "mode=0040750", "etc/shadow": "", "bin/ls": "", "opt/new": "",
	} {
		if w, ok := want[p]; sub == "" && ok || sub != "" && !strings.Contains(w, sub) {
			t.Fatalf("umoci's tree: %s = %q, want it to contain %q (or be absent)", p, w, sub)
		}
	}
	layers, diffIDs := readImage(t, layout)
	if len(layers) != 3 {
		t.Fatalf("%d layers, want 3", len(layers))
	}

	t.Run("native apply", func(t *testing.T) {
		root := t.TempDir()
		for i, l := range layers {
			f, err := os.Open(l)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = unpack.Apply(ctx, root, f, unpack.Options{DiffID: diffIDs[i]})
			f.Close()
			if err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
		}
		compare(t, want, tree(t, root))
	})
	for name, open := range map[string]func(context.Context, string) (snapshot.Snapshotter, error){
		"overlay": func(ctx context.Context, r string) (snapshot.Snapshotter, error) { return overlay.New(ctx, r) },
		"native":  func(ctx context.Context, r string) (snapshot.Snapshotter, error) { return native.New(ctx, r) },
	} {
		t.Run(name+" snapshots", func(t *testing.T) {
			sn, err := open(ctx, t.TempDir())
			if err != nil {
				t.Skip(err)
			}
			parent := ""
			for i, l := range layers {
				ms, err := sn.Prepare(ctx, "extract", parent)
				if err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(l)
				if err != nil {
					t.Fatal(err)
				}
				_, _, err = unpack.ApplyMounts(ctx, ms, f, unpack.Options{DiffID: diffIDs[i]})
				f.Close()
				if err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
				parent = diffIDs[i].String()
				if err := sn.Commit(ctx, parent, "extract"); err != nil {
					t.Fatal(err)
				}
			}
			ms, err := sn.View(ctx, "view", parent)
			if err != nil {
				t.Fatal(err)
			}
			err = mount.WithTempMount(ms, func(root string) error {
				compare(t, want, tree(t, root))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// readImage returns the layer blob paths and diffIDs of the layout's only
// manifest.
func readImage(t *testing.T, layout string) ([]string, []digest.Digest) {
	blob := func(d digest.Digest) string {
		return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
	}
	var idx ocispec.Index
	readJSON(t, filepath.Join(layout, "index.json"), &idx)
	var m ocispec.Manifest
	readJSON(t, blob(idx.Manifests[0].Digest), &m)
	var cfg ocispec.Image
	readJSON(t, blob(m.Config.Digest), &cfg)
	var paths []string
	for _, l := range m.Layers {
		paths = append(paths, blob(l.Digest))
	}
	return paths, cfg.RootFS.DiffIDs
}

func readJSON(t *testing.T, p string, v any) {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// tree describes each path below root: type, mode, owner, link count,
// content hash, symlink target, device, xattrs and (for non-directories)
// mtime.
func tree(t *testing.T, root string) map[string]string {
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("mode=%07o owner=%d:%d", st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" nlink=%d sha=%x mtime=%d", st.Nlink, sha256.Sum256(b), st.Mtim.Sec)
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			s += " -> " + l + fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		case unix.S_IFCHR, unix.S_IFBLK:
			s += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFDIR:
			// The root's time is whenever the last layer without a "./"
			// entry was applied: the tools differ there, and that is fine.
			if rel != "." {
				s += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
			}
		}
		s += " xattrs=" + listXattrs(p)
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func listXattrs(p string) string {
	buf := make([]byte, 8192)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n <= 0 {
		return ""
	}
	var names []string
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if x != "" {
			names = append(names, x)
		}
	}
	sort.Strings(names)
	var parts []string
	for _, x := range names {
		v := make([]byte, 8192)
		m, _ := unix.Lgetxattr(p, x, v)
		if m < 0 {
			m = 0
		}
		parts = append(parts, fmt.Sprintf("%s=%q", x, v[:m]))
	}
	return strings.Join(parts, ",")
}

func compare(t *testing.T, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s missing (umoci: %s)", p, w)
		} else if g != w {
			t.Errorf("%s differs:\n  umoci %s\n  hako  %s", p, w, g)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s extra: %s", p, g)
		}
	}
	if len(want) < 20 {
		t.Errorf("reference tree has only %d entries", len(want))
	}
}
