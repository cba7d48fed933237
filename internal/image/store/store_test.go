package store_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/testenv"
)

var amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{DataRoot: t.TempDir(), Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLifecycle goes through what the image commands do: pull, list, tag,
// inspect, save, load elsewhere, remove, prune.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"etc/os-release": "hako"}, testenv.TestLayer{"bin/sh": "sh"})
	reg.PushImage(t, "lib/app", "1.0", img)
	s := open(t)

	var layersDone int
	rec, err := s.Pull(ctx, reg.Host+"/lib/app:1.0", store.PullOptions{Progress: func(p remote.Progress) {
		if p.State == remote.ProgressDone && p.Descriptor.MediaType == ocispec.MediaTypeImageLayerGzip {
			layersDone++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Name != reg.Host+"/lib/app:1.0" || rec.Target.Digest != img.Manifest.Digest || layersDone != 2 {
		t.Fatalf("Pull = %+v (%d layers reported done)", rec, layersDone)
	}
	if _, err := s.Tag(ctx, reg.Host+"/lib/app:1.0", "app:latest"); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[1].Name != "docker.io/library/app:latest" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	im, err := s.Image(ctx, "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := im.Config(ctx); err != nil || cfg.Config.Cmd[0] != "/bin/sh" {
		t.Fatalf("config: %+v, %v", cfg, err)
	}

	chains, err := s.ChainIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := im.Config(ctx)
	if want := image.ChainIDs(cfg.RootFS.DiffIDs); len(chains) != 2 || !chains[want[0]] || !chains[want[1]] {
		t.Fatalf("ChainIDs = %v, want %v", chains, want)
	}

	if err := s.Push(ctx, "app", reg.Host+"/pushed/app:2.0"); err != nil {
		t.Fatal(err)
	}
	if rec, err := open(t).Pull(ctx, reg.Host+"/pushed/app:2.0", store.PullOptions{}); err != nil || rec.Target.Digest != img.Manifest.Digest {
		t.Fatalf("pull of the pushed image: %+v, %v", rec, err)
	}

	var saved bytes.Buffer
	if err := s.Save(ctx, &saved, []string{"app"}, archive.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app.tar")
	os.WriteFile(p, saved.Bytes(), 0o600)
	other := open(t)
	loaded, err := other.Load(ctx, p)
	if err != nil || len(loaded) != 1 || loaded[0].Name != "docker.io/library/app:latest" {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	var again bytes.Buffer
	if err := other.Save(ctx, &again, []string{"app:latest"}, archive.SaveOptions{}); err != nil || !bytes.Equal(again.Bytes(), saved.Bytes()) {
		t.Fatalf("save after load differs (%v)", err)
	}

	// Removing one name keeps the blobs; removing the last frees them.
	if err := s.Remove(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Prune(ctx, time.Hour); err != nil || len(r.Blobs) != 0 {
		t.Fatalf("prune with the image still named: %+v, %v", r, err)
	}
	if err := s.Remove(ctx, reg.Host+"/lib/app:1.0"); err != nil {
		t.Fatal(err)
	}
	r, err := s.Prune(ctx, time.Hour)
	if err != nil || len(r.Blobs) != len(img.Blobs) {
		t.Fatalf("prune: %+v, %v; want %d blobs", r, err, len(img.Blobs))
	}
	if _, err := s.Get(ctx, "app"); !store.IsNotFound(err) {
		t.Fatalf("Get of removed image: %v", err)
	}
	if err := s.Content.Walk(ctx, func(i content.Info) error { return errors.New("blob left: " + i.Digest.String()) }); err != nil {
		t.Fatal(err)
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.Close()
	s := open(t)
	rec, err := s.Import(ctx, &buf, "imported:v1", archive.ImportOptions{})
	if err != nil || rec.Name != "docker.io/library/imported:v1" {
		t.Fatalf("Import = %+v, %v", rec, err)
	}
	im, err := s.Image(ctx, "imported:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := im.Layers(ctx); err != nil || len(ls) != 1 {
		t.Fatalf("layers %v %v", ls, err)
	}
}

// TestPulledPlatformIsRemembered: an image pulled for another platform is
// what Image returns when no platform is given.
func TestPulledPlatformIsRemembered(t *testing.T) {
	ctx := context.Background()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	other := amd64
	if image.DefaultPlatform().Architecture == "amd64" {
		other = arm64
	}
	a := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "amd"})
	b := testenv.BuildImage(t, arm64, testenv.TestLayer{"a": "arm"})
	reg.PushIndex(t, "multi/app", "v1", a, b)
	s := open(t)
	if _, err := s.Pull(ctx, reg.Host+"/multi/app:v1", store.PullOptions{Platform: &other}); err != nil {
		t.Fatal(err)
	}
	im, err := s.Image(ctx, reg.Host+"/multi/app:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := im.Config(ctx)
	if err != nil || cfg.Architecture != other.Architecture {
		t.Fatalf("Image(nil) = %s, %v; want the pulled %s", cfg.Architecture, err, other.Architecture)
	}
}
