package store_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/testenv"
)

// layoutTar is an OCI archive of img, named name ("" for none).
func layoutTar(t *testing.T, img *testenv.TestImage, name string) []byte {
	t.Helper()
	m := img.Manifest
	m.Platform = nil
	if name != "" {
		m.Annotations = map[string]string{archive.AnnotationImageName: name}
	}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(n string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", idx)
	for dg, b := range img.Blobs {
		add("blobs/sha256/"+dg.Encoded(), b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadUnnamedIsDangling: an unnamed image is kept under its dangling
// name (so the collector keeps it), which goes once a name holds it.
func TestLoadUnnamedIsDangling(t *testing.T) {
	ctx := context.Background()
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"})
	s := open(t)
	recs, err := s.LoadStream(ctx, bytes.NewReader(layoutTar(t, img, "")))
	if err != nil || len(recs) != 1 || recs[0].Name != store.DanglingName(img.Manifest.Digest) || !store.IsDangling(recs[0].Name) {
		t.Fatalf("LoadStream = %+v, %v", recs, err)
	}
	if id, err := s.ImageID(ctx, recs[0]); err != nil || id != img.Config.Digest {
		t.Fatalf("ImageID = %s, %v; want the config digest %s", id, err, img.Config.Digest)
	}
	if r, err := s.Prune(ctx, 0); err != nil || len(r.Blobs) != 0 {
		t.Fatalf("prune removed %v (%v): the dangling image must keep its blobs", r.Blobs, err)
	}

	recs, err = s.LoadStream(ctx, bytes.NewReader(layoutTar(t, img, "example.com/app:1")))
	if err != nil || len(recs) != 1 || recs[0].Name != "example.com/app:1" || store.IsDangling(recs[0].Name) {
		t.Fatalf("LoadStream = %+v, %v", recs, err)
	}
	list, _ := s.List(ctx)
	if len(list) != 1 || list[0].Name != "example.com/app:1" {
		t.Fatalf("after loading it by name: %+v", list)
	}
	// Loading it unnamed again names nothing new: the name holds it.
	recs, err = s.LoadStream(ctx, bytes.NewReader(layoutTar(t, img, "")))
	if err != nil || len(recs) != 1 || recs[0].Name != "example.com/app:1" {
		t.Fatalf("LoadStream = %+v, %v", recs, err)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Fatalf("list %+v", list)
	}
}

// TestLoadFailureLeavesNothing: a tampered layer fails the load with a
// digest mismatch and leaves no name, blob, ingest or scratch file.
func TestLoadFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"}, testenv.TestLayer{"c": "d"})
	l := img.Layers[1].Digest
	b := append([]byte(nil), img.Blobs[l]...)
	b[len(b)/2] ^= 0xff
	img.Blobs[l] = b
	root := t.TempDir()
	s, err := store.Open(store.Options{DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	before := testenv.ReadStoreState(t, root)
	_, err = s.LoadStream(ctx, bytes.NewReader(layoutTar(t, img, "example.com/app:1")))
	if !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("load of a tampered archive: %v", err)
	}
	testenv.RequireStoreUnchanged(t, root, before)
}

// TestImportUnnamed: `hako import FILE` without a name.
func TestImportUnnamed(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := store.Open(store.Options{DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	rec, err := s.ImportUnnamed(ctx, bytes.NewReader(buf.Bytes()), archive.ImportOptions{Config: ocispec.ImageConfig{Cmd: []string{"/hello"}}})
	if err != nil || !store.IsDangling(rec.Name) {
		t.Fatalf("ImportUnnamed = %+v, %v", rec, err)
	}
	id, err := s.ImageID(ctx, rec)
	if err != nil || id.Validate() != nil || id == rec.Target.Digest {
		t.Fatalf("ImageID = %s, %v", id, err)
	}
	before := testenv.ReadStoreState(t, root)
	if _, err := s.ImportUnnamed(ctx, bytes.NewReader([]byte("not a tar at all, not at all")), archive.ImportOptions{}); err == nil {
		t.Fatal("import of a non-tar succeeded")
	}
	testenv.RequireStoreUnchanged(t, root, before)
}

// TestLoadReplacesName: loading another image under a name keeps the one
// it pointed at as a dangling image, as docker load does.
func TestLoadReplacesName(t *testing.T) {
	ctx := context.Background()
	v1 := testenv.BuildImage(t, amd64, testenv.TestLayer{"v": "1"})
	v2 := testenv.BuildImage(t, amd64, testenv.TestLayer{"v": "2"})
	s := open(t)
	for _, img := range []*testenv.TestImage{v1, v2} {
		if _, err := s.LoadStream(ctx, bytes.NewReader(layoutTar(t, img, "example.com/app:1"))); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := s.List(ctx)
	if len(list) != 2 || list[0].Name != "example.com/app:1" || list[0].Target.Digest != v2.Manifest.Digest || list[1].Name != store.DanglingName(v1.Manifest.Digest) {
		t.Fatalf("after loading v2 over v1: %+v", list)
	}
	// Loading v1 by name again: the name moves back, v2 is the dangling one.
	if _, err := s.LoadStream(ctx, bytes.NewReader(layoutTar(t, v1, "example.com/app:1"))); err != nil {
		t.Fatal(err)
	}
	list, _ = s.List(ctx)
	if len(list) != 2 || list[0].Target.Digest != v1.Manifest.Digest || list[1].Name != store.DanglingName(v2.Manifest.Digest) {
		t.Fatalf("after loading v1 again: %+v", list)
	}
}
