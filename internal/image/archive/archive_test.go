package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/testenv"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

func newStore(t *testing.T) *content.Local {
	t.Helper()
	s, err := content.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s content.Store, blobs map[digest.Digest][]byte) {
	t.Helper()
	for dg, b := range blobs {
		if err := content.WriteBlob(context.Background(), s, ocispec.Descriptor{Digest: dg, Size: int64(len(b))}, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
}

func save(t *testing.T, s content.Store, imgs []archive.Image) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := archive.Save(context.Background(), &buf, s, imgs, archive.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "images.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes()
}

func hasBlobs(t *testing.T, s content.Store, blobs map[digest.Digest][]byte) {
	t.Helper()
	for dg, b := range blobs {
		got, err := content.ReadBlob(context.Background(), s, ocispec.Descriptor{Digest: dg, Size: int64(len(b))})
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %s: %v", dg, err)
		}
	}
}

// TestSaveLoadRoundTrip saves a multi-platform image (one platform pulled)
// and a plain one, loads the archive into an empty store, saves again, and
// compares the bytes.
func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	amd := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "amd"}, testenv.TestLayer{"shared": "x"})
	arm := testenv.BuildImage(t, arm64, testenv.TestLayer{"a": "arm"})
	solo := testenv.BuildImage(t, amd64, testenv.TestLayer{"solo": "1"})
	idx, idxBytes := testenv.IndexOf(t, amd, arm)
	src := newStore(t)
	put(t, src, amd.Blobs)
	put(t, src, solo.Blobs)
	put(t, src, map[digest.Digest][]byte{idx.Digest: idxBytes})
	imgs := []archive.Image{
		{Name: "example.com/multi:1.0", Target: idx},
		{Name: "docker.io/library/solo:latest", Target: solo.Manifest},
		{Name: "docker.io/library/solo:again", Target: solo.Manifest},
	}
	imgs[1].Target.Platform = nil
	imgs[2].Target.Platform = nil
	p, first := save(t, src, imgs)

	a, err := archive.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dst := newStore(t)
	loaded, err := a.Load(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 || loaded[0].Name != "example.com/multi:1.0" || loaded[0].Target.Digest != idx.Digest ||
		loaded[2].Name != "docker.io/library/solo:again" || loaded[2].Target.Digest != solo.Manifest.Digest {
		t.Fatalf("loaded %+v", loaded)
	}
	hasBlobs(t, dst, amd.Blobs)
	hasBlobs(t, dst, solo.Blobs)
	if _, err := dst.Info(ctx, arm.Manifest.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("a platform that was never pulled appeared: %v", err)
	}
	if _, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: dst}, loaded[0].Target, amd64); err != nil {
		t.Fatal(err)
	}

	_, second := save(t, dst, loaded)
	if !bytes.Equal(first, second) {
		t.Fatalf("save -> load -> save changed the archive (%d vs %d bytes)", len(first), len(second))
	}
}

func TestSaveRefusesIncompleteImage(t *testing.T) {
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"})
	s := newStore(t)
	put(t, s, map[digest.Digest][]byte{img.Manifest.Digest: img.Blobs[img.Manifest.Digest], img.Config.Digest: img.Blobs[img.Config.Digest]})
	err := archive.Save(context.Background(), new(bytes.Buffer), s, []archive.Image{{Name: "example.com/x:1", Target: img.Manifest}}, archive.SaveOptions{})
	if !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("save of an image missing a layer: %v", err)
	}
}

type tarEntry struct {
	name string
	data []byte
}

func writeTar(t *testing.T, entries ...tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "in.tar")
	os.WriteFile(p, buf.Bytes(), 0o600)
	return p
}

func layoutEntries(t *testing.T, img *testenv.TestImage, name string) []tarEntry {
	m := img.Manifest
	m.Annotations = map[string]string{ocispec.AnnotationRefName: name}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, Manifests: []ocispec.Descriptor{m}})
	es := []tarEntry{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", idx}}
	for dg, b := range img.Blobs {
		es = append(es, tarEntry{"blobs/sha256/" + dg.Encoded(), b})
	}
	return es
}

// TestLoadHostile: entry names are keys, never paths; tampered blobs fail
// the load and leave nothing; a non-archive is refused.
func TestLoadHostile(t *testing.T) {
	ctx := context.Background()
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"})
	outside := filepath.Join(t.TempDir(), "escaped")

	es := append(layoutEntries(t, img, "example.com/x:1"), tarEntry{"../../../../../../" + outside, []byte("pwned")}, tarEntry{"/etc/evil", []byte("x")})
	a, err := archive.Open(ctx, writeTar(t, es...))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	loaded, err := a.Load(ctx, s)
	a.Close()
	if err != nil || len(loaded) != 1 || loaded[0].Name != "example.com/x:1" {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("a tar entry was written outside: %v", err)
	}

	// A layer whose bytes do not hash to its name.
	es = layoutEntries(t, img, "example.com/x:1")
	for i := range es {
		if es[i].name == "blobs/sha256/"+img.Layers[0].Digest.Encoded() {
			es[i].data = append([]byte(nil), es[i].data...)
			es[i].data[10] ^= 1
		}
	}
	a, err = archive.Open(ctx, writeTar(t, es...))
	if err != nil {
		t.Fatal(err)
	}
	s = newStore(t)
	_, err = a.Load(ctx, s)
	a.Close()
	if !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("load of a tampered layer: %v", err)
	}
	if _, err := s.Info(ctx, img.Layers[0].Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatal("tampered layer stored")
	}
	if _, err := s.Info(ctx, img.Manifest.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatal("manifest of a failed load stored")
	}

	if _, err := archive.Open(ctx, writeTar(t, tarEntry{"hello", []byte("x")})); !errors.Is(err, archive.ErrUnknownFormat) {
		t.Fatalf("random tar: %v", err)
	}
	// docker save whose manifest.json points outside the tar.
	ms, _ := json.Marshal([]map[string]any{{"Config": "../../etc/passwd", "RepoTags": []string{"x:1"}, "Layers": []string{}}})
	if _, err := archive.Open(ctx, writeTar(t, tarEntry{"manifest.json", ms})); !errors.Is(err, archive.ErrMissing) {
		t.Fatalf("docker save pointing outside: %v", err)
	}
}

// TestSkopeoInterop: skopeo reads what Save writes, and Load reads skopeo's
// docker-archive (the legacy docker save format).
func TestSkopeoInterop(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("needs skopeo")
	}
	ctx := context.Background()
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"}, testenv.TestLayer{"c": "d"})
	s := newStore(t)
	put(t, s, img.Blobs)
	target := img.Manifest
	target.Platform = nil
	p, _ := save(t, s, []archive.Image{{Name: "example.com/app:v1", Target: target}})

	dir := filepath.Join(t.TempDir(), "dir")
	if out, err := exec.Command(skopeo, "copy", "--quiet", "oci-archive:"+p, "dir:"+dir).CombinedOutput(); err != nil {
		t.Fatalf("skopeo cannot read our archive: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil || !bytes.Equal(got, img.Blobs[img.Manifest.Digest]) {
		t.Fatalf("skopeo's copy of the manifest differs: %v", err)
	}

	dockerTar := filepath.Join(t.TempDir(), "docker.tar")
	if out, err := exec.Command(skopeo, "copy", "--quiet", "oci-archive:"+p, "docker-archive:"+dockerTar+":example.com/app:v1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo docker-archive: %v\n%s", err, out)
	}
	a, err := archive.Open(ctx, dockerTar)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s2 := newStore(t)
	loaded, err := a.Load(ctx, s2)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 1 || loaded[0].Name != "example.com/app:v1" {
		t.Fatalf("loaded %+v", loaded)
	}
	li, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s2}, loaded[0].Target, amd64)
	if err != nil {
		t.Fatal(err)
	}
	m, err := li.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != img.Config.Digest || len(m.Layers) != 2 {
		t.Fatalf("docker-archive image: config %s (want %s), %d layers", m.Config.Digest, img.Config.Digest, len(m.Layers))
	}
	cfg, _ := li.Config(ctx)
	for i, l := range m.Layers {
		// skopeo writes layers uncompressed: their digests are the diff IDs.
		if l.Digest != cfg.RootFS.DiffIDs[i] && l.Digest != img.Layers[i].Digest {
			t.Errorf("layer %d digest %s is neither the diff ID nor the pushed blob", i, l.Digest)
		}
	}
}

// TestSaveDockerFormat writes docker's save format for one platform:
// manifest.json with familiar tags, readable by skopeo's docker-archive and
// by Open.
func TestSaveDockerFormat(t *testing.T) {
	ctx := context.Background()
	amd := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "amd"})
	arm := testenv.BuildImage(t, arm64, testenv.TestLayer{"a": "arm"}, testenv.TestLayer{"b": "arm"})
	idx, idxBytes := testenv.IndexOf(t, amd, arm)
	s := newStore(t)
	put(t, s, amd.Blobs)
	put(t, s, arm.Blobs)
	put(t, s, map[digest.Digest][]byte{idx.Digest: idxBytes})
	var buf bytes.Buffer
	imgs := []archive.Image{{Name: "docker.io/library/multi:1.0", Target: idx}, {Name: "example.com/multi:latest", Target: idx}}
	if err := archive.Save(ctx, &buf, s, imgs, archive.SaveOptions{Format: archive.FormatDocker, Platform: &arm64}); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
	var mj []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &mj); err != nil {
		t.Fatal(err)
	}
	if len(mj) != 1 || len(mj[0].Layers) != 2 || fmt.Sprint(mj[0].RepoTags) != "[multi:1.0 example.com/multi:latest]" {
		t.Fatalf("manifest.json = %+v", mj)
	}
	for _, p := range append(mj[0].Layers, mj[0].Config) {
		if _, ok := files[p]; !ok {
			t.Fatalf("manifest.json names %s, not in the tar", p)
		}
	}
	if _, ok := files["blobs/sha256/"+amd.Layers[0].Digest.Encoded()]; ok {
		t.Fatal("the other platform's layer was saved")
	}

	p := filepath.Join(t.TempDir(), "docker.tar")
	os.WriteFile(p, buf.Bytes(), 0o600)
	a, err := archive.Open(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s2 := newStore(t)
	loaded, err := a.Load(ctx, s2)
	if err != nil || len(loaded) != 2 || loaded[0].Target.Digest != arm.Manifest.Digest {
		t.Fatalf("Load = %+v, %v", loaded, err)
	}
	hasBlobs(t, s2, arm.Blobs)

	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		dir := filepath.Join(t.TempDir(), "dir")
		if out, err := exec.Command(skopeo, "copy", "--quiet", "docker-archive:"+p+":example.com/multi:latest", "dir:"+dir).CombinedOutput(); err != nil {
			t.Fatalf("skopeo cannot read our docker archive: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, arm.Config.Digest.Encoded())); err != nil {
			t.Fatalf("skopeo's copy lacks the config: %v", err)
		}
	}
}
