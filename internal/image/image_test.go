package image

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
)

// memImage builds a two-platform index in memory.
func memImage(t *testing.T) (BytesFetcher, ocispec.Descriptor) {
	t.Helper()
	f := BytesFetcher{}
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		f[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var manifests []ocispec.Descriptor
	for _, arch := range []string{"amd64", "arm64"} {
		layer := put(ocispec.MediaTypeImageLayer, []byte("layer for "+arch))
		cfg := put(ocispec.MediaTypeImageConfig, js(ocispec.Image{
			Platform: ocispec.Platform{OS: "linux", Architecture: arch},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("diff " + arch)}},
		}))
		m := put(ocispec.MediaTypeImageManifest, js(ocispec.Manifest{
			Versioned: specsV2, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer},
		}))
		m.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		manifests = append(manifests, m)
	}
	// An attestation-like entry without platform must never be chosen.
	manifests = append([]ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("att"), Size: 3}}, manifests...)
	idx := put(ocispec.MediaTypeImageIndex, js(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: manifests}))
	return f, idx
}

func TestResolveImage(t *testing.T) {
	ctx := context.Background()
	f, idx := memImage(t)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := ResolveImage(ctx, f, idx, ocispec.Platform{OS: "linux", Architecture: arch})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != arch {
			t.Fatalf("resolved %s, got config for %s", arch, cfg.Architecture)
		}
		ls, err := img.Layers(ctx)
		if err != nil || len(ls) != 1 {
			t.Fatalf("Layers = %v, %v", ls, err)
		}
		rc, err := ls[0].Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != "layer for "+arch {
			t.Fatalf("layer = %q, %v", b, err)
		}
		if d, err := ls[0].DiffID(ctx); err != nil || d != digest.FromString("diff "+arch) {
			t.Fatalf("DiffID = %v, %v", d, err)
		}
	}
	_, err := ResolveImage(ctx, f, idx, ocispec.Platform{OS: "linux", Architecture: "s390x"})
	if !errors.Is(err, ErrNoMatchingPlatform) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Fatalf("s390x: %v", err)
	}
}

func TestTamperedContentIsRejected(t *testing.T) {
	ctx := context.Background()
	f, idx := memImage(t)
	img, err := ResolveImage(ctx, f, idx, ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := img.Manifest(ctx)
	l := mf.Layers[0]
	f[l.Digest] = []byte("layer for amd65") // same size, other content
	ls, _ := img.Layers(ctx)
	rc, _ := ls[0].Open(ctx)
	if _, err := io.ReadAll(rc); !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("tampered layer read: %v", err)
	}
	f[l.Digest] = []byte("layer for amd64 and more")
	rc, _ = ls[0].Open(ctx)
	if _, err := io.ReadAll(rc); !errors.Is(err, content.ErrSizeMismatch) {
		t.Fatalf("oversized layer read: %v", err)
	}
	// A tampered index is caught before it is parsed.
	f[idx.Digest] = append([]byte(" "), f[idx.Digest][1:]...)
	if _, err := ResolveImage(ctx, f, idx, DefaultPlatform()); !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("tampered index: %v", err)
	}
	big := idx
	big.Size = MaxManifestSize + 1
	if _, err := ResolveImage(ctx, f, big, DefaultPlatform()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized index: %v", err)
	}
}

func TestPlatform(t *testing.T) {
	p := func(s string) ocispec.Platform {
		t.Helper()
		pl, err := ParsePlatform(s)
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}
	if got := PlatformString(p("linux/aarch64/v8")); got != "linux/arm64" {
		t.Errorf("normalise aarch64/v8: %s", got)
	}
	if got := PlatformString(p("arm")); got != "linux/arm/v7" {
		t.Errorf("bare arm: %s", got)
	}
	if got := PlatformString(p("linux/x86_64")); got != "linux/amd64" {
		t.Errorf("x86_64: %s", got)
	}
	for _, bad := range []string{"linux//v7", "a/b/c/d", ""} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", bad)
		}
	}
	list := func(ps ...string) []ocispec.Descriptor {
		var ds []ocispec.Descriptor
		for _, s := range ps {
			pl := p(s)
			ds = append(ds, ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: digest.FromString(s), Size: 1, Platform: &pl})
		}
		return ds
	}
	tests := []struct {
		want  string
		from  []string
		picks string
	}{
		{"linux/amd64", []string{"linux/arm64", "linux/amd64"}, "linux/amd64"},
		{"linux/arm64", []string{"linux/amd64", "linux/arm64/v8"}, "linux/arm64"},
		{"linux/arm/v7", []string{"linux/arm/v5", "linux/arm/v6", "linux/arm64"}, "linux/arm/v6"},
		{"linux/arm/v7", []string{"linux/arm/v6", "linux/arm/v7"}, "linux/arm/v7"},
		{"linux/arm/v6", []string{"linux/arm/v7"}, ""},
		{"windows/amd64", []string{"linux/amd64"}, ""},
	}
	for _, tt := range tests {
		d, err := SelectManifest(p(tt.want), list(tt.from...))
		got := ""
		if err == nil {
			got = PlatformString(*d.Platform)
		} else if !errors.Is(err, ErrNoMatchingPlatform) {
			t.Errorf("SelectManifest(%s): %v", tt.want, err)
		}
		if got != tt.picks {
			t.Errorf("SelectManifest(%s, %v) = %q, want %q", tt.want, tt.from, got, tt.picks)
		}
	}
}

func TestDetectAndParse(t *testing.T) {
	cases := map[string]string{
		`{"schemaVersion":2,"manifests":[]}`:                                ocispec.MediaTypeImageIndex,
		`{"schemaVersion":2,"config":{}}`:                                   ocispec.MediaTypeImageManifest,
		`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `"}`: MediaTypeDockerManifest,
	}
	for doc, want := range cases {
		if got, err := DetectMediaType([]byte(doc)); err != nil || got != want {
			t.Errorf("DetectMediaType(%s) = %q, %v; want %q", doc, got, err, want)
		}
	}
	if _, err := DetectMediaType([]byte(`{"schemaVersion":1,"fsLayers":[]}`)); !errors.Is(err, ErrUnsupportedMedia) {
		t.Errorf("schema 1: %v", err)
	}
	bad := []string{
		`{"schemaVersion":1}`,
		`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageIndex + `"}`,
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:nothex","size":1}}`,
		`{"schemaVersion":2,"config":{"mediaType":"x","digest":"` + digest.FromString("").String() + `","size":-1}}`,
		`not json`,
	}
	for _, doc := range bad {
		if _, err := ParseManifest([]byte(doc), ""); !errors.Is(err, ErrInvalidManifest) {
			t.Errorf("ParseManifest(%s) = %v, want ErrInvalidManifest", doc, err)
		}
	}
	if _, err := ParseManifest([]byte(`{"schemaVersion":2,"mediaType":"`+MediaTypeDockerManifest+`","config":{"mediaType":"x","digest":"`+digest.FromString("").String()+`","size":0}}`), ocispec.MediaTypeImageManifest); !errors.Is(err, ErrInvalidManifest) {
		t.Errorf("mediaType field disagreeing with Content-Type accepted: %v", err)
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":2},"layers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":2,"platform":{"os":"linux","architecture":"arm"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		mt, err := DetectMediaType(data)
		if err != nil {
			return
		}
		if IsIndex(mt) {
			if x, err := ParseIndex(data, ""); err == nil {
				SelectManifest(DefaultPlatform(), x.Manifests)
			}
			return
		}
		if m, err := ParseManifest(data, ""); err == nil {
			for _, l := range append(m.Layers, m.Config) {
				if l.Digest.Validate() != nil || l.Size < 0 {
					t.Fatalf("accepted bad descriptor %+v", l)
				}
			}
		}
	})
}

var specsV2 = specs.Versioned{SchemaVersion: 2}

func TestChainIDs(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	got := ChainIDs([]digest.Digest{a, b, c})
	ab := digest.FromString(a.String() + " " + b.String())
	abc := digest.FromString(ab.String() + " " + c.String())
	if len(got) != 3 || got[0] != a || got[1] != ab || got[2] != abc {
		t.Fatalf("ChainIDs = %v", got)
	}
}
