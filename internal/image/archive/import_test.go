package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
)

func rootfsTar(t *testing.T) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5})
	tw.Write([]byte("#!sh\n"))
	tw.WriteHeader(&tar.Header{Name: "bin/ls", Typeflag: tar.TypeSymlink, Linkname: "sh"})
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	plain := rootfsTar(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	when := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	opts := archive.ImportOptions{Platform: arm64, Created: when, Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh"}}, TempDir: t.TempDir()}

	var descs []ocispec.Descriptor
	for _, in := range [][]byte{plain, gz.Bytes()} {
		s := newStore(t)
		desc, err := archive.Import(ctx, bytes.NewReader(in), s, opts)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, desc)
		img, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s}, desc, arm64)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != "arm64" || cfg.Config.Cmd[0] != "/bin/sh" || !cfg.Created.Equal(when) || len(cfg.RootFS.DiffIDs) != 1 || cfg.RootFS.DiffIDs[0] != digest.FromBytes(plain) {
			t.Fatalf("config %+v", cfg)
		}
		ls, _ := img.Layers(ctx)
		rc, err := ls[0].Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(rc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		rc.Close()
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("layer does not decompress to the imported tar: %v", err)
		}
	}
	if descs[0].Digest != descs[1].Digest {
		t.Fatalf("plain and gzip input gave different images: %s vs %s", descs[0].Digest, descs[1].Digest)
	}

	for name, in := range map[string][]byte{"text": []byte(strings.Repeat("not a tar\n", 100)), "empty": nil, "truncated": plain[:700]} {
		if _, err := archive.Import(ctx, bytes.NewReader(in), newStore(t), opts); err == nil {
			t.Errorf("import of %s input succeeded", name)
		}
	}
}
