package metadata_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/metadata"
	"github.com/hako-runtime/hako/internal/testenv"
)

func open(t *testing.T) *metadata.Store {
	t.Helper()
	s, err := metadata.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var target = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}

func TestImages(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.GetImage(ctx, "docker.io/library/busybox:latest"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("Get of absent image: %v", err)
	}
	first, err := s.PutImage(ctx, metadata.Image{Name: "docker.io/library/busybox:latest", Target: target, Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	t2 := target
	t2.Digest = digest.FromString("m2")
	second, err := s.PutImage(ctx, metadata.Image{Name: "docker.io/library/busybox:latest", Target: t2})
	if err != nil {
		t.Fatal(err)
	}
	if !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("update: created %v -> %v, updated %v -> %v", first.CreatedAt, second.CreatedAt, first.UpdatedAt, second.UpdatedAt)
	}
	got, err := s.GetImage(ctx, "docker.io/library/busybox:latest")
	if err != nil || got.Target.Digest != t2.Digest || got.Labels != nil {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if _, err := s.PutImage(ctx, metadata.Image{Name: "registry.k8s.io/pause:3.9", Target: target}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListImages(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "docker.io/library/busybox:latest" || list[1].Name != "registry.k8s.io/pause:3.9" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if err := s.DeleteImage(ctx, "registry.k8s.io/pause:3.9"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteImage(ctx, "registry.k8s.io/pause:3.9"); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	for _, bad := range []metadata.Image{
		{Name: "busybox", Target: target}, // not normalised
		{Name: "docker.io/library/busybox:latest", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: target.Digest}},
		{Name: "docker.io/library/busybox:latest", Target: ocispec.Descriptor{MediaType: target.MediaType, Digest: "sha256:nope"}},
		{Name: "../../etc/passwd", Target: target},
	} {
		if _, err := s.PutImage(ctx, bad); !errors.Is(err, metadata.ErrInvalid) {
			t.Errorf("PutImage(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestConcurrentPuts(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.PutImage(ctx, metadata.Image{Name: fmt.Sprintf("example.com/img:%d", i%5), Target: target}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	list, err := s.ListImages(ctx)
	if err != nil || len(list) != 5 {
		t.Fatalf("List after concurrent puts: %d images, %v", len(list), err)
	}
}

func storeImage(t *testing.T, cs content.Store, img *testenv.TestImage) {
	t.Helper()
	for dg, b := range img.Blobs {
		if err := content.WriteBlob(context.Background(), cs, ocispec.Descriptor{Digest: dg, Size: int64(len(b))}, bytesReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCollectGarbage(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	cs, err := content.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	amd := testenv.BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, testenv.TestLayer{"a": "amd"}, testenv.TestLayer{"shared": "both"})
	arm := testenv.BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "arm64"}, testenv.TestLayer{"a": "arm"}, testenv.TestLayer{"shared": "both"})
	other := testenv.BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, testenv.TestLayer{"o": "other"})
	// The index names both platforms; only amd64 was pulled.
	idx, idxBytes := testenv.IndexOf(t, amd, arm)
	storeImage(t, cs, amd)
	storeImage(t, cs, other)
	storeImage(t, cs, &testenv.TestImage{Blobs: map[digest.Digest][]byte{idx.Digest: idxBytes}})
	if _, err := s.PutImage(ctx, metadata.Image{Name: "example.com/multi:latest", Target: idx}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutImage(ctx, metadata.Image{Name: "example.com/other:latest", Target: other.Manifest}); err != nil {
		t.Fatal(err)
	}
	removed, err := s.CollectGarbage(ctx, cs)
	if err != nil || len(removed) != 0 {
		t.Fatalf("GC with every blob referenced removed %v, %v", removed, err)
	}

	if err := s.DeleteImage(ctx, "example.com/other:latest"); err != nil {
		t.Fatal(err)
	}
	removed, err = s.CollectGarbage(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	var want []digest.Digest
	for dg := range other.Blobs {
		if _, shared := amd.Blobs[dg]; !shared {
			want = append(want, dg)
		}
	}
	sortDigests(removed)
	sortDigests(want)
	if fmt.Sprint(removed) != fmt.Sprint(want) {
		t.Fatalf("GC removed %v, want %v", removed, want)
	}
	for dg := range amd.Blobs {
		if _, err := cs.Info(ctx, dg); err != nil {
			t.Fatalf("GC removed a blob of a named image: %s: %v", dg, err)
		}
	}

	// A lease (a pull in progress) holds the collector off.
	release, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.CollectGarbage(tctx, cs); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("GC during a lease: %v", err)
	}
	release()
	if _, err := s.CollectGarbage(ctx, cs); err != nil {
		t.Fatal(err)
	}
}

func sortDigests(d []digest.Digest) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
