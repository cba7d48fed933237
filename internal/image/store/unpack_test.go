package store_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/testenv"
)

func openWith(t *testing.T, snapshotter string, transport http.RoundTripper) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{DataRoot: t.TempDir(), Backoff: time.Millisecond, Snapshotter: snapshotter, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func threeLayers(t *testing.T) *testenv.TestImage {
	return testenv.BuildImage(t, image.DefaultPlatform(),
		testenv.TestLayer{"etc/os-release": "hako", "bin/sh": "sh1"},
		testenv.TestLayer{"bin/sh": "sh2"},
		testenv.TestLayer{"usr/lib/x": "x"})
}

// TestPullAndUnpack pulls into each snapshotter: every layer ends committed
// under its chain ID, in order; a second pull unpacks nothing.
func TestPullAndUnpack(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := threeLayers(t)
	reg.PushImage(t, "lib/three", "v1", img)
	for _, driver := range []string{store.SnapshotterOverlay, store.SnapshotterNative} {
		t.Run(driver, func(t *testing.T) {
			s := openWith(t, driver, nil)
			var events []store.UnpackProgress
			u, err := s.PullAndUnpack(ctx, reg.Host+"/lib/three:v1", store.PullOptions{}, func(p store.UnpackProgress) { events = append(events, p) })
			if err != nil {
				t.Fatal(err)
			}
			if u.Config.Digest != img.Config.Digest || u.Image.Target.Digest != img.Manifest.Digest {
				t.Fatalf("PullAndUnpack = %+v", u)
			}
			var unpacked []int
			for _, e := range events {
				if e.State == store.LayerUnpacked {
					unpacked = append(unpacked, e.Index)
				}
			}
			if len(unpacked) != 3 || unpacked[0] != 0 || unpacked[1] != 1 || unpacked[2] != 2 {
				t.Fatalf("layers unpacked in order %v, want [0 1 2] (events %+v)", unpacked, events)
			}
			sn, name, err := s.Snapshotter(ctx)
			if err != nil || name != driver {
				t.Fatalf("Snapshotter = %s, %v", name, err)
			}
			info, err := sn.Stat(ctx, u.ChainID.String())
			if err != nil || info.Kind != snapshot.KindCommitted {
				t.Fatalf("top layer snapshot: %+v, %v", info, err)
			}

			events = nil
			if _, err := s.PullAndUnpack(ctx, reg.Host+"/lib/three:v1", store.PullOptions{}, func(p store.UnpackProgress) { events = append(events, p) }); err != nil {
				t.Fatal(err)
			}
			for _, e := range events {
				if e.State != store.LayerExists {
					t.Fatalf("second pull unpacked again: %+v", events)
				}
			}

			key, path, err := s.MountImage(ctx, reg.Host+"/lib/three:v1", nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(path, "bin/sh"))
			if err != nil || string(b) != "sh2" {
				t.Fatalf("mounted bin/sh = %q, %v", b, err)
			}
			if err := s.UnmountImage(ctx, path); err != nil {
				t.Fatal(err)
			}
			if _, err := sn.Stat(ctx, key); !errors.Is(err, snapshot.ErrNotFound) {
				t.Fatalf("mount snapshot after UnmountImage: %v", err)
			}
		})
	}
}

// gate holds the blob request of one digest until released.
type gate struct {
	base    http.RoundTripper
	digest  digest.Digest
	release chan struct{}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/blobs/"+g.digest.String()) {
		select {
		case <-g.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return g.base.RoundTrip(r)
}

// TestPullUnpackIsPipelined: the bottom layer is unpacked while the top
// layer's download is held back (it is released only once layer 0 is
// committed, so a pull that unpacks at the end would never finish).
func TestPullUnpackIsPipelined(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := threeLayers(t)
	reg.PushImage(t, "lib/three", "v1", img)
	g := &gate{base: http.DefaultTransport.(*http.Transport).Clone(), digest: img.Layers[2].Digest, release: make(chan struct{})}
	s := openWith(t, "", g)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var once sync.Once
	_, err := s.PullAndUnpack(ctx, reg.Host+"/lib/three:v1", store.PullOptions{}, func(p store.UnpackProgress) {
		if p.Index == 0 && p.State == store.LayerUnpacked {
			once.Do(func() { close(g.release) })
		}
	})
	if err != nil {
		t.Fatalf("pull (layer 2 is released only after layer 0 is unpacked): %v", err)
	}
}

// TestUnpackFailureStopsPull: a layer whose diffID does not match fails the
// pull with that error, records no name and commits no snapshot for it.
func TestUnpackFailureStopsPull(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	good := testenv.BuildImage(t, image.DefaultPlatform(), testenv.TestLayer{"a": "a"})
	// good's layer with a config naming another diffID.
	bad := testenv.Rebuild(t, good, func(m *ocispec.Manifest, c *ocispec.Image) {
		c.RootFS.DiffIDs = []digest.Digest{digest.FromString("not this layer")}
	})
	reg.PushImage(t, "lib/bad", "v1", bad)
	s := openWith(t, "", nil)
	_, err := s.PullAndUnpack(ctx, reg.Host+"/lib/bad:v1", store.PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Fatalf("pull of an image with a wrong diffID: %v", err)
	}
	if _, err := s.Get(ctx, reg.Host+"/lib/bad:v1"); !store.IsNotFound(err) {
		t.Fatalf("image recorded after a failed pull: %v", err)
	}
	for _, i := range snapshotInfos(ctx, t, s) {
		t.Errorf("snapshot left: %+v", i)
	}
}

// TestRemoveInUseAndPrune: an image with a mounted snapshot is refused by
// RemoveImage unless forced; forced, the name goes and the layers stay
// until the mount goes and PruneSnapshots runs. An untag of one of two
// names is not refused.
func TestRemoveInUseAndPrune(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := threeLayers(t)
	reg.PushImage(t, "lib/three", "v1", img)
	s := openWith(t, "", nil)
	name := reg.Host + "/lib/three:v1"
	if _, err := s.PullAndUnpack(ctx, name, store.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Tag(ctx, name, "three:alias"); err != nil {
		t.Fatal(err)
	}
	key, _, err := s.MountImage(ctx, "three:alias", nil)
	if err != nil {
		t.Fatal(err)
	}
	mounted := true
	defer func() {
		if mounted {
			s.UnmountImage(ctx, key)
		}
	}()
	if r, err := s.RemoveImage(ctx, "three:alias", false); err != nil || len(r.Snapshots) != 0 {
		t.Fatalf("untag of one of two names: %+v, %v", r, err)
	}
	if _, err := s.RemoveImage(ctx, name, false); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), key) {
		t.Fatalf("remove of a mounted image: %v", err)
	}
	if _, err := s.Get(ctx, name); err != nil {
		t.Fatalf("refused remove dropped the name: %v", err)
	}
	r, err := s.RemoveImage(ctx, name, true)
	if err != nil || len(r.Snapshots) != 0 {
		t.Fatalf("forced remove: %+v, %v (the mount's layers must stay)", r, err)
	}
	if p, err := s.PruneSnapshots(ctx); err != nil || len(p.Snapshots) != 0 {
		t.Fatalf("prune while mounted: %+v, %v", p, err)
	}
	if err := s.UnmountImage(ctx, key); err != nil {
		t.Fatal(err)
	}
	mounted = false
	p, err := s.PruneSnapshots(ctx)
	if err != nil || len(p.Snapshots) != 3 || p.Size == 0 {
		t.Fatalf("prune after unmount: %+v, %v", p, err)
	}
	if ents, _ := os.ReadDir(s.MountsDir()); len(ents) != 0 {
		t.Fatalf("left in mounts dir: %v", ents)
	}

	// Pulled again and removed unmounted: the snapshots go with the name.
	if _, err := s.PullAndUnpack(ctx, name, store.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RemoveImage(ctx, name, false); err != nil || len(r.Snapshots) != 3 {
		t.Fatalf("remove: %+v, %v", r, err)
	}
}

func TestUnmountRefusesOtherKeys(t *testing.T) {
	ctx := context.Background()
	s := openWith(t, store.SnapshotterNative, nil)
	for _, k := range []string{"../../etc", "mount-../x", "/etc/passwd", s.MountsDir() + "/../content", "sha256:" + strings.Repeat("0", 64), "mount-0123456789ab/.."} {
		if err := s.UnmountImage(ctx, k); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("UnmountImage(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	if err := s.UnmountImage(ctx, "mount-0123456789ab"); !store.IsNotFound(err) {
		t.Errorf("UnmountImage of an unknown key = %v", err)
	}
}

// The snapshotter chosen for a data root is kept.
func TestSnapshotterRecorded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(store.Options{DataRoot: dir, Snapshotter: store.SnapshotterNative})
	if err != nil {
		t.Fatal(err)
	}
	if _, name, err := s.Snapshotter(ctx); err != nil || name != store.SnapshotterNative {
		t.Fatalf("Snapshotter = %s, %v", name, err)
	}
	s2, _ := store.Open(store.Options{DataRoot: dir})
	if _, name, err := s2.Snapshotter(ctx); err != nil || name != store.SnapshotterNative {
		t.Fatalf("reopened: %s, %v; want the recorded native", name, err)
	}
	s3, _ := store.Open(store.Options{DataRoot: dir, Snapshotter: store.SnapshotterOverlay})
	if _, _, err := s3.Snapshotter(ctx); err == nil {
		t.Fatal("a data root with native snapshots opened as overlay")
	}
}

// TestMountUnpacksImported: an image that came without unpacking (import,
// load) is unpacked by MountImage.
func TestMountUnpacksImported(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	s := openWith(t, "", nil)
	if _, err := s.Import(ctx, &buf, "imported:v1", archive.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	key, path, err := s.MountImage(ctx, "imported:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnmountImage(ctx, key)
	if b, err := os.ReadFile(filepath.Join(path, "hello")); err != nil || string(b) != "hi" {
		t.Fatalf("hello = %q, %v", b, err)
	}
}

// TestConcurrentPulls: two pulls of one image into one data root both
// succeed and leave one snapshot per layer.
func TestConcurrentPulls(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	reg.PushImage(t, "lib/three", "v1", threeLayers(t))
	dir := t.TempDir()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			s, err := store.Open(store.Options{DataRoot: dir})
			if err == nil {
				_, err = s.PullAndUnpack(ctx, reg.Host+"/lib/three:v1", store.PullOptions{}, nil)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s, _ := store.Open(store.Options{DataRoot: dir})
	infos := snapshotInfos(ctx, t, s)
	for _, i := range infos {
		if i.Kind != snapshot.KindCommitted {
			t.Errorf("snapshot left: %+v", i)
		}
	}
	if len(infos) != 3 {
		t.Fatalf("%d snapshots, want 3", len(infos))
	}
}

// TestRemoveKeepsLayersUnderAnUnpack: rmi leaves a layer another
// snapshot was being unpacked on (the leftover of a killed pull)
// for prune, instead of failing half way.
func TestRemoveKeepsLayersUnderAnUnpack(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	reg.PushImage(t, "lib/three", "v1", threeLayers(t))
	s := openWith(t, "", nil)
	name := reg.Host + "/lib/three:v1"
	u, err := s.PullAndUnpack(ctx, name, store.PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sn, _, _ := s.Snapshotter(ctx)
	if _, err := sn.Prepare(ctx, "extract-000000000000-"+digest.FromString("x").String(), u.ChainID.String()); err != nil {
		t.Fatal(err)
	}
	r, err := s.RemoveImage(ctx, name, false)
	if err != nil || len(r.Snapshots) != 0 {
		t.Fatalf("RemoveImage = %+v, %v; want the layers kept under the unpack", r, err)
	}
	p, err := s.PruneSnapshots(ctx)
	if err != nil || len(p.Snapshots) != 4 {
		t.Fatalf("PruneSnapshots = %+v, %v; want the stale unpack and the 3 layers", p, err)
	}
}
