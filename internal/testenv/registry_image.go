package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImage is a small image built in memory: a manifest, its config and
// layers, every blob keyed by digest.
type TestImage struct {
	Manifest ocispec.Descriptor // with Platform set
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
	Blobs    map[digest.Digest][]byte // config, layers and the manifest itself
}

// TestLayer is one layer's files: path -> content (regular files, 0644).
type TestLayer map[string]string

// BuildImage builds an OCI image for platform (os/arch[/variant]) with one
// gzip layer per TestLayer. The same inputs give the same digests.
func BuildImage(t testing.TB, platform ocispec.Platform, layers ...TestLayer) *TestImage {
	t.Helper()
	var tars [][]byte
	for _, files := range layers {
		var tarBuf bytes.Buffer
		tw := tar.NewWriter(&tarBuf)
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: imageEpoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX})
			tw.Write([]byte(files[n]))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		tars = append(tars, tarBuf.Bytes())
	}
	return assembleImage(t, platform, ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}, tars)
}

// imageEpoch dates the test images' files and configs.
var imageEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// assembleImage makes an image of uncompressed layer tars (bottom first):
// gzip layers, a config with their diffIDs and cfg, and a manifest.
func assembleImage(t testing.TB, platform ocispec.Platform, cfg ocispec.ImageConfig, tars [][]byte) *TestImage {
	t.Helper()
	img := &TestImage{Blobs: map[digest.Digest][]byte{}}
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		img.Blobs[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	var diffIDs []digest.Digest
	for _, raw := range tars {
		diffIDs = append(diffIDs, digest.FromBytes(raw))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(raw)
		zw.Close()
		img.Layers = append(img.Layers, put(ocispec.MediaTypeImageLayerGzip, gz.Bytes()))
	}
	epoch := imageEpoch
	c := ocispec.Image{Created: &epoch, Platform: platform, Config: cfg, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	img.Config = put(ocispec.MediaTypeImageConfig, mustJSON(t, c))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: img.Config, Layers: img.Layers}
	if img.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	img.Manifest = put(ocispec.MediaTypeImageManifest, mustJSON(t, m))
	p := platform
	img.Manifest.Platform = &p
	return img
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// IndexOf builds an OCI index over imgs' manifests.
func IndexOf(t testing.TB, imgs ...*TestImage) (ocispec.Descriptor, []byte) {
	t.Helper()
	x := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, img := range imgs {
		x.Manifests = append(x.Manifests, img.Manifest)
	}
	b := mustJSON(t, x)
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(b), Size: int64(len(b))}, b
}

// PushImage pushes img's blobs and manifest to repo under tag.
func (r *Registry) PushImage(t testing.TB, repo, tag string, img *TestImage) ocispec.Descriptor {
	t.Helper()
	r.PushBlob(t, repo, img.Blobs[img.Config.Digest])
	for _, l := range img.Layers {
		r.PushBlob(t, repo, img.Blobs[l.Digest])
	}
	d := r.PushManifest(t, repo, tag, img.Manifest.MediaType, img.Blobs[img.Manifest.Digest])
	d.Platform = img.Manifest.Platform
	return d
}

// PushIndex pushes every image by digest and an index over them under tag.
func (r *Registry) PushIndex(t testing.TB, repo, tag string, imgs ...*TestImage) ocispec.Descriptor {
	t.Helper()
	for _, img := range imgs {
		r.PushImage(t, repo, img.Manifest.Digest.String(), img)
	}
	desc, b := IndexOf(t, imgs...)
	return r.PushManifest(t, repo, tag, desc.MediaType, b)
}
