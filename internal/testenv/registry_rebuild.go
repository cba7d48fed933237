package testenv

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Rebuild returns a copy of img whose manifest and config fn has changed
// (to make an image that lies: a wrong diffID, a wrong size), with the
// config and manifest digests recomputed. Layers are kept as they are.
func Rebuild(t testing.TB, img *TestImage, fn func(*ocispec.Manifest, *ocispec.Image)) *TestImage {
	t.Helper()
	var m ocispec.Manifest
	var c ocispec.Image
	if err := json.Unmarshal(img.Blobs[img.Manifest.Digest], &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(img.Blobs[img.Config.Digest], &c); err != nil {
		t.Fatal(err)
	}
	fn(&m, &c)
	out := &TestImage{Layers: m.Layers, Blobs: maps.Clone(img.Blobs)}
	cb := mustJSON(t, c)
	out.Config = ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	out.Blobs[out.Config.Digest] = cb
	m.Config = out.Config
	mb := mustJSON(t, m)
	out.Manifest = ocispec.Descriptor{MediaType: img.Manifest.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb)), Platform: img.Manifest.Platform}
	out.Blobs[out.Manifest.Digest] = mb
	return out
}
