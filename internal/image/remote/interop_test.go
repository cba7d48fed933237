package remote_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/testenv"
)

// writeLayout writes img as an OCI image layout (image-spec image-layout.md)
// with the manifest tagged tag.
func writeLayout(t *testing.T, dir, tag string, img *testenv.TestImage) {
	t.Helper()
	for dg, b := range img.Blobs {
		p := filepath.Join(dir, "blobs", dg.Algorithm().String(), dg.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := img.Manifest
	m.Platform = nil
	m.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, ocispec.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// TestSkopeoInterop pushes with skopeo (converting to Docker schema 2, with
// its own upload code) and pulls with hako; both must agree on the digest.
func TestSkopeoInterop(t *testing.T) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		t.Skip("needs skopeo")
	}
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	layout := t.TempDir()
	writeLayout(t, layout, "v1", img)
	dest := "docker://" + reg.Host + "/skopeo/app:v1"
	if out, err := exec.Command(skopeo, "copy", "--quiet", "--dest-tls-verify=false", "--format", "v2s2", "oci:"+layout+":v1", dest).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	out, err := exec.Command(skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", dest).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	skopeoDigest := strings.TrimSpace(string(out))

	c := newClient(t, "", nil)
	s := newStore(t)
	desc, err := c.Pull(context.Background(), ref(t, reg.Host+"/skopeo/app:v1"), remote.PullOptions{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != skopeoDigest || desc.MediaType != image.MediaTypeDockerManifest {
		t.Fatalf("hako resolved %s (%s), skopeo says %s", desc.Digest, desc.MediaType, skopeoDigest)
	}
	pulled, err := image.ResolveImage(context.Background(), image.StoreFetcher{Provider: s}, desc, amd64)
	if err != nil {
		t.Fatal(err)
	}
	m, err := pulled.Manifest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != len(img.Layers) {
		t.Fatalf("%d layers, want %d", len(m.Layers), len(img.Layers))
	}
	for i, l := range m.Layers {
		if l.Digest != img.Layers[i].Digest {
			t.Errorf("layer %d: %s, pushed %s (skopeo should not recompress)", i, l.Digest, img.Layers[i].Digest)
		}
	}
}
