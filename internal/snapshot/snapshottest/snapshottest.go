// Package snapshottest is a test suite that every snapshot.Snapshotter
// must pass. It unpacks real layers (with whiteouts and opaque
// directories) through unpack.ApplyMounts, mounts the results as root and
// checks what a container would see.
package snapshottest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/unpack"
	"golang.org/x/sys/unix"
)

// New opens a snapshotter rooted at root.
type New func(ctx context.Context, root string) (snapshot.Snapshotter, error)

// Run runs the suite, each case on a fresh root. It needs root (mounts,
// chown, mknod) and skips otherwise.
func Run(t *testing.T, newFn New) {
	if os.Geteuid() != 0 {
		t.Skip("snapshot suite needs root")
	}
	cases := []struct {
		name string
		fn   func(*testing.T, context.Context, string, New)
	}{
		{"LayerChain", testLayerChain},
		{"Remove", testRemove},
		{"Errors", testErrors},
		{"StatWalkReopen", testStatWalkReopen},
		{"Concurrent", testConcurrent},
		{"Recovery", testRecovery},
		{"Usage", testUsage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			c.fn(t, context.Background(), root, newFn)
			checkNoMounts(t, root)
		})
	}
}

func open(t *testing.T, ctx context.Context, root string, newFn New) snapshot.Snapshotter {
	t.Helper()
	s, err := newFn(ctx, root)
	if err != nil {
		t.Fatalf("open snapshotter: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hdr is a tar entry of a test layer.
type hdr struct {
	name, body, link string
	typ              byte
	mode             int64
	uid, gid         int
}

func f(name, body string) hdr   { return hdr{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func d(name string) hdr         { return hdr{name: name, typ: tar.TypeDir, mode: 0o755} }
func sl(name, to string) hdr    { return hdr{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777} }
func hl(name, to string) hdr    { return hdr{name: name, link: to, typ: tar.TypeLink} }
func wh(dir, name string) hdr   { return f(filepath.Join(dir, ".wh."+name), "") }
func opaque(dir string) hdr     { return f(filepath.Join(dir, ".wh..wh..opq"), "") }
func layerTar(hs ...hdr) []byte { return mustTar(hs) }

func mustTar(hs []hdr) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		th := &tar.Header{Name: h.name, Linkname: h.link, Typeflag: h.typ, Mode: h.mode,
			Uid: h.uid, Gid: h.gid, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if h.typ == tar.TypeReg {
			th.Size = int64(len(h.body))
		}
		if err := tw.WriteHeader(th); err != nil {
			panic(err)
		}
		tw.Write([]byte(h.body))
	}
	tw.Close()
	return buf.Bytes()
}

// applyLayer prepares key on parent, applies the layer and commits it as
// name, the way an image pull does.
func applyLayer(t *testing.T, ctx context.Context, s snapshot.Snapshotter, name, parent string, layer []byte) {
	t.Helper()
	key := "extract-" + name
	ms, err := s.Prepare(ctx, key, parent)
	if err != nil {
		t.Fatalf("prepare %s: %v", key, err)
	}
	if _, _, err := unpack.ApplyMounts(ctx, ms, bytes.NewReader(layer), unpack.Options{}); err != nil {
		t.Fatalf("apply %s: %v", name, err)
	}
	if err := s.Commit(ctx, name, key); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// withMounted mounts ms on a temp dir for fn and unmounts it after.
func withMounted(t *testing.T, ms []mount.Mount, fn func(root string)) {
	t.Helper()
	if err := mount.WithTempMount(ms, func(root string) error { fn(root); return nil }); err != nil {
		t.Fatal(err)
	}
}

// want describes an expected path: "file:CONTENT", "dir", "link:TARGET",
// or "-" for absent. An optional " mode=0NNN" or " owner=U:G" follows.
func checkTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	for p, w := range want {
		var st unix.Stat_t
		err := unix.Lstat(filepath.Join(root, p), &st)
		if w == "-" {
			if err == nil {
				t.Errorf("%s exists, want absent", p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		parts := strings.Fields(w)
		kind, arg, _ := strings.Cut(parts[0], ":")
		switch kind {
		case "file":
			b, _ := os.ReadFile(filepath.Join(root, p))
			if st.Mode&unix.S_IFMT != unix.S_IFREG || string(b) != arg {
				t.Errorf("%s = mode %o %q, want file %q", p, st.Mode, b, arg)
			}
		case "dir":
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.Errorf("%s mode %o, want dir", p, st.Mode)
			}
		case "link":
			l, _ := os.Readlink(filepath.Join(root, p))
			if l != arg {
				t.Errorf("%s -> %q, want %q", p, l, arg)
			}
		}
		for _, extra := range parts[1:] {
			k, v, _ := strings.Cut(extra, "=")
			switch k {
			case "mode":
				if got := fmt.Sprintf("%04o", st.Mode&0o7777); got != v {
					t.Errorf("%s mode %s, want %s", p, got, v)
				}
			case "owner":
				if got := fmt.Sprintf("%d:%d", st.Uid, st.Gid); got != v {
					t.Errorf("%s owner %s, want %s", p, got, v)
				}
			}
		}
	}
}

// checkNoMounts fails if anything is still mounted below root.
func checkNoMounts(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), root) {
		t.Errorf("mounts left below %s", root)
	}
}

func testLayerChain(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	suid := f("bin/su", "su")
	suid.mode = 0o4755
	owned := f("home/u/rc", "rc")
	owned.uid, owned.gid, owned.mode = 1000, 100, 0o600
	srv := d("srv/")
	srv.mode, srv.uid, srv.gid = 0o750, 7, 8
	varLib := d("var/lib/")
	varLib.mode, varLib.uid, varLib.gid = 0o700, 5, 5
	varDir := d("var/")
	varDir.mode = 0o711
	applyLayer(t, ctx, s, "l1", "", layerTar(
		srv, varDir, varLib, f("var/lib/x", "x"),
		d("bin/"), f("bin/busybox", "bb"), sl("bin/sh", "busybox"), hl("bin/ls", "bin/busybox"), suid,
		d("etc/"), f("etc/passwd", "root"), f("etc/gone", "x"), d("etc/gonedir/"), f("etc/gonedir/x", "x"),
		d("home/"), d("home/u/"), owned,
		d("o/"), f("o/old", "1"), d("o/sub/"), f("o/sub/old", "2"),
	))
	applyLayer(t, ctx, s, "l2", "l1", layerTar(
		d("etc/"), f("etc/passwd", "root,user"), wh("etc", "gone"), wh("etc", "gonedir"),
		d("o/"), opaque("o"), f("o/new", "3"),
		f("l2", "l2"),
	))
	applyLayer(t, ctx, s, "l3", "l2", layerTar(
		wh("", "l2"),
		d("etc/"), d("etc/gone/"), f("etc/gone/again", "4"), // a file whited out below, a dir now
		d("etc/gonedir/"), // recreated empty: l1's x must stay hidden
		f("o/new2", "5"),
		// Entries below directories the layer does not list: the lower
		// directories' attributes must show through.
		f("srv/new", "6"), wh("var/lib", "x"),
	))

	want := map[string]string{
		"bin/busybox": "file:bb", "bin/sh": "link:busybox", "bin/ls": "file:bb", "bin/su": "file:su mode=4755",
		"home/u/rc":  "file:rc mode=0600 owner=1000:100",
		"etc/passwd": "file:root,user", "etc/gone": "dir", "etc/gone/again": "file:4",
		"etc/gonedir": "dir", "etc/gonedir/x": "-",
		"o/old": "-", "o/sub": "-", "o/new": "file:3", "o/new2": "file:5",
		"l2":  "-",
		"srv": "dir mode=0750 owner=7:8", "srv/new": "file:6",
		"var": "dir mode=0711 owner=0:0", "var/lib": "dir mode=0700 owner=5:5", "var/lib/x": "-",
	}
	ms, err := s.View(ctx, "view-l3", "l3")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) {
		checkTree(t, r, want)
		if a, b := ino(t, r, "bin/ls"), ino(t, r, "bin/busybox"); a != b {
			t.Errorf("hardlink lost: inodes %d, %d", a, b)
		}
		if err := os.WriteFile(filepath.Join(r, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write into a view: %v, want EROFS", err)
		}
	})

	// A single-layer view.
	ms, err = s.View(ctx, "view-l1", "l1")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) {
		checkTree(t, r, map[string]string{"etc/passwd": "file:root", "etc/gonedir/x": "file:x", "o/sub/old": "file:2", "l2": "-"})
		if err := os.WriteFile(filepath.Join(r, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("write into a view: %v, want EROFS", err)
		}
	})

	// A container on top writes, deletes and chmods; the layers below
	// must not change.
	ms, err = s.Prepare(ctx, "ctr", "l3")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) {
		checkTree(t, r, want)
		must(t, os.WriteFile(filepath.Join(r, "etc/passwd"), []byte("changed"), 0o644))
		must(t, os.Remove(filepath.Join(r, "bin/sh")))
		must(t, os.RemoveAll(filepath.Join(r, "o")))
		must(t, os.Chmod(filepath.Join(r, "bin/su"), 0o755))
		must(t, os.WriteFile(filepath.Join(r, "tmpfile"), []byte("t"), 0o644))
	})
	// The writes persist across mounts of the active snapshot.
	ms, err = s.Mounts(ctx, "ctr")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) {
		checkTree(t, r, map[string]string{"etc/passwd": "file:changed", "bin/sh": "-", "o": "-",
			"bin/su": "file:su mode=0755", "tmpfile": "file:t"})
	})
	ms, err = s.Mounts(ctx, "view-l3")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) { checkTree(t, r, want) })

	// The container's writes become a layer of their own.
	if err := s.Commit(ctx, "l4", "ctr"); err != nil {
		t.Fatal(err)
	}
	ms, err = s.View(ctx, "view-l4", "l4")
	if err != nil {
		t.Fatal(err)
	}
	withMounted(t, ms, func(r string) {
		checkTree(t, r, map[string]string{"etc/passwd": "file:changed", "bin/sh": "-", "o": "-", "tmpfile": "file:t", "home/u/rc": "file:rc"})
	})
}

func ino(t *testing.T, root, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testRemove(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	applyLayer(t, ctx, s, "base", "", layerTar(f("a", "a")))
	applyLayer(t, ctx, s, "top", "base", layerTar(f("b", "b")))
	if _, err := s.Prepare(ctx, "ctr", "top"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.View(ctx, "v", "base"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"base", "top"} {
		if err := s.Remove(ctx, k); !errors.Is(err, snapshot.ErrFailedPrecondition) {
			t.Errorf("remove %s with children: %v, want ErrFailedPrecondition", k, err)
		}
	}
	for _, k := range []string{"ctr", "v", "top", "base"} {
		if err := s.Remove(ctx, k); err != nil {
			t.Fatalf("remove %s: %v", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, snapshot.ErrNotFound) {
			t.Errorf("stat removed %s: %v", k, err)
		}
	}
	if err := s.Remove(ctx, "base"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("remove twice: %v, want ErrNotFound", err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(ents) != 0 {
		t.Errorf("snapshot dirs left: %d", len(ents))
	}
}

func testErrors(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	if _, err := s.Prepare(ctx, "a", ""); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	_, err := s.Prepare(ctx, "a", "")
	check("prepare existing key", err, snapshot.ErrAlreadyExists)
	_, err = s.Prepare(ctx, "b", "a")
	check("prepare on active parent", err, snapshot.ErrFailedPrecondition)
	_, err = s.Prepare(ctx, "b", "missing")
	check("prepare on missing parent", err, snapshot.ErrNotFound)
	_, err = s.View(ctx, "v", "")
	if err != nil {
		t.Fatal(err)
	}
	check("commit a view", s.Commit(ctx, "c", "v"), snapshot.ErrFailedPrecondition)
	check("commit missing", s.Commit(ctx, "c", "nope"), snapshot.ErrNotFound)
	check("commit onto existing name", s.Commit(ctx, "v", "a"), snapshot.ErrAlreadyExists)
	_, err = s.Stat(ctx, "nope")
	check("stat missing", err, snapshot.ErrNotFound)
	must(t, s.Commit(ctx, "c", "a"))
	_, err = s.Mounts(ctx, "c")
	check("mounts of committed", err, snapshot.ErrFailedPrecondition)
	_, err = s.Prepare(ctx, "", "")
	check("empty key", err, snapshot.ErrInvalidArgument)
	// A failed create leaves no directory behind.
	ents, _ := os.ReadDir(filepath.Join(root, "snapshots"))
	if len(ents) != 2 {
		t.Errorf("%d snapshot dirs, want 2", len(ents))
	}
}

func testStatWalkReopen(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	if _, err := s.Prepare(ctx, "layer-a", "", snapshot.WithLabels(map[string]string{"x": "1"})); err != nil {
		t.Fatal(err)
	}
	must(t, s.Commit(ctx, "sha256:aaa", "layer-a", snapshot.WithLabels(map[string]string{"y": "2"})))
	if _, err := s.View(ctx, "view/with/slashes", "sha256:aaa"); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, ctx, root, newFn) // a second handle, as another process would have
	info, err := s2.Stat(ctx, "sha256:aaa")
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != snapshot.KindCommitted || info.Labels["x"] != "1" || info.Labels["y"] != "2" || info.Parent != "" {
		t.Errorf("info = %+v", info)
	}
	var got []string
	err = s2.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		got = append(got, fmt.Sprintf("%s:%s:%s", i.Name, i.Kind, i.Parent))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := "[sha256:aaa:committed: view/with/slashes:view:sha256:aaa]"; fmt.Sprint(got) != w {
		t.Errorf("walk = %v, want %s", got, w)
	}
}

func testConcurrent(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	applyLayer(t, ctx, s, "base", "", layerTar(f("a", "a")))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two handles, as two processes sharing the root.
			h := s
			if i%2 == 1 {
				h2, err := newFn(ctx, root)
				if err != nil {
					errs <- err
					return
				}
				defer h2.Close()
				h = h2
			}
			if _, err := h.Prepare(ctx, fmt.Sprintf("c%d", i), "base"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	must(t, s.Walk(ctx, func(context.Context, snapshot.Info) error { n++; return nil }))
	if n != 9 {
		t.Errorf("%d snapshots, want 9", n)
	}
}

// testRecovery: data a crash left without metadata is removed on open,
// and a damaged metadata file is an error that names it, not an empty
// store.
func testRecovery(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	applyLayer(t, ctx, s, "base", "", layerTar(f("a", "a")))
	orphan := filepath.Join(root, "snapshots", "999")
	must(t, os.MkdirAll(filepath.Join(orphan, "fs", "x"), 0o755))
	s2 := open(t, ctx, root, newFn)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan snapshot dir survived reopening: %v", err)
	}
	if _, err := s2.Stat(ctx, "base"); err != nil {
		t.Errorf("stat after reopen: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(root, "metadata.json"), []byte("{broken"), 0o600))
	if _, err := s2.Stat(ctx, "base"); err == nil || !strings.Contains(err.Error(), "metadata.json") {
		t.Errorf("stat with damaged metadata: %v", err)
	}
}

func testUsage(t *testing.T, ctx context.Context, root string, newFn New) {
	s := open(t, ctx, root, newFn)
	big := strings.Repeat("u", 1<<20)
	applyLayer(t, ctx, s, "base", "", layerTar(f("big", big), hl("big2", "big"), f("small", "s")))
	u, err := s.Usage(ctx, "base")
	if err != nil {
		t.Fatal(err)
	}
	// fs/, big (twice linked, once counted), small, and the snapshot dir.
	if u.Size < 1<<20 || u.Size > 2<<20 || u.Inodes < 3 || u.Inodes > 6 {
		t.Errorf("usage %+v, want about 1 MiB and 4 inodes", u)
	}
	if _, err := s.Usage(ctx, "nope"); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("usage of missing snapshot: %v", err)
	}
}
