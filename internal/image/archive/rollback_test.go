package archive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/testenv"
)

// TestLoadRollsBack: an archive whose second image has a tampered layer
// fails after the first image's blobs were stored; the load takes those
// back, but keeps the blobs that were in the store before.
func TestLoadRollsBack(t *testing.T) {
	ctx := context.Background()
	good := testenv.BuildImage(t, amd64, testenv.TestLayer{"shared": "x"}, testenv.TestLayer{"good": "1"})
	bad := testenv.BuildImage(t, amd64, testenv.TestLayer{"bad": "2"})
	es := append(layoutEntries(t, good, "example.com/good:1"), layoutEntries(t, bad, "example.com/bad:1")...)
	// One index naming both images, the first one first.
	for i := range es {
		if es[i].name == "blobs/sha256/"+bad.Layers[0].Digest.Encoded() {
			es[i].data = append([]byte(nil), es[i].data...)
			es[i].data[len(es[i].data)/2] ^= 1
		}
	}
	es = mergeIndexes(t, es)

	root := t.TempDir()
	s, err := content.NewLocal(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	// A blob of the good image is in the store already: it must stay.
	put(t, s, map[digest.Digest][]byte{good.Layers[0].Digest: good.Blobs[good.Layers[0].Digest]})
	before := testenv.ReadStoreState(t, root)

	a, err := archive.Open(ctx, writeTar(t, es...))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Images()) != 2 || a.Images()[0].Name != "example.com/good:1" {
		t.Fatalf("images %+v", a.Images())
	}
	_, err = a.Load(ctx, s)
	if !errors.Is(err, content.ErrDigestMismatch) || !strings.Contains(err.Error(), "example.com/bad:1") {
		t.Fatalf("load: %v", err)
	}
	testenv.RequireStoreUnchanged(t, root, before)
}

// mergeIndexes folds the index.json entries of layoutEntries calls into
// one index.json (the first one's position), dropping duplicate blobs.
func mergeIndexes(t *testing.T, es []tarEntry) []tarEntry {
	t.Helper()
	var out []tarEntry
	var idx ocispec.Index
	at, seen := -1, map[string]bool{}
	for _, e := range es {
		switch {
		case e.name == "index.json":
			var x ocispec.Index
			mustUnmarshal(t, e.data, &x)
			if at < 0 {
				idx, at = x, len(out)
				out = append(out, e)
			} else {
				idx.Manifests = append(idx.Manifests, x.Manifests...)
			}
		case seen[e.name]:
		default:
			seen[e.name] = true
			out = append(out, e)
		}
	}
	out[at].data = mustMarshal(t, idx)
	return out
}

// TestOpenReaderCompressed: a saved archive loads the same from a plain,
// gzip or zstd stream, and the spooled copy goes with Close.
func TestOpenReaderCompressed(t *testing.T) {
	ctx := context.Background()
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"a": "b"})
	s := newStore(t)
	put(t, s, img.Blobs)
	target := img.Manifest
	target.Platform = nil
	p, plain := save(t, s, []archive.Image{{Name: "example.com/x:1", Target: target}})

	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(plain)
	ze.Close()
	for name, in := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zs.Bytes()} {
		tmp := t.TempDir()
		a, err := archive.OpenReader(ctx, bytes.NewReader(in), tmp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s2 := newStore(t)
		loaded, err := a.Load(ctx, s2)
		if err != nil || len(loaded) != 1 || loaded[0].Name != "example.com/x:1" {
			t.Fatalf("%s: Load = %+v, %v", name, loaded, err)
		}
		hasBlobs(t, s2, img.Blobs)
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Fatalf("%s: spooled file visible in %s", name, tmp)
		}
		a.Close()

		c, err := archive.IsCompressed(bytes.NewReader(in))
		if err != nil || c != (name != "plain") {
			t.Fatalf("%s: IsCompressed = %v, %v", name, c, err)
		}
	}
	if _, err := archive.Open(ctx, p); err != nil {
		t.Fatal(err)
	}
	// A truncated stream fails to index, and a gzip stream cut short fails
	// to decompress: both before anything is stored.
	for name, in := range map[string][]byte{"truncated tar": plain[:len(plain)/2], "truncated gzip": gz.Bytes()[:gz.Len()/2], "empty": nil} {
		if a, err := archive.OpenReader(ctx, bytes.NewReader(in), t.TempDir()); err == nil {
			a.Close()
			t.Errorf("%s: opened", name)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
