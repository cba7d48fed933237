package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
)

// ImportOptions configures Import.
type ImportOptions struct {
	// Platform of the image; zero means image.DefaultPlatform().
	Platform ocispec.Platform
	// Config is the runtime configuration to record (Cmd, Env, ...), as
	// `docker import --change` would set it.
	Config ocispec.ImageConfig
	// Created is the image's creation time; zero means now. Fix it for
	// reproducible imports.
	Created time.Time
	// TempDir holds the compressed layer while its digest is unknown; put
	// it on the store's file system. "" means os.TempDir().
	TempDir string
	// Comment goes into the image history.
	Comment string
}

// Import turns a root file system tarball (plain, gzip or bzip2, as `docker
// import` takes) into a one-layer image in the store and returns its
// manifest's descriptor. The layer is stored gzip-compressed; the diff ID
// in the config is the digest of the uncompressed tar (image-spec
// config.md). The input must be a well-formed tar.
//
// A failed import takes back the blobs it added when the store can delete
// (see Archive.Load).
func Import(ctx context.Context, r io.Reader, store content.Ingester, opts ImportOptions) (desc ocispec.Descriptor, err error) {
	rec := &recordingIngester{Ingester: store}
	defer func() {
		if err != nil {
			err = rec.rollback(err)
		}
	}()
	return importTar(ctx, r, rec, opts)
}

func importTar(ctx context.Context, r io.Reader, store content.Ingester, opts ImportOptions) (ocispec.Descriptor, error) {
	plain, err := decompress(r)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: %w", err)
	}
	if c, ok := plain.(io.Closer); ok {
		defer c.Close()
	}
	tmp, err := os.CreateTemp(opts.TempDir, "hako-import-")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	// One pass: the tar is parsed (to refuse what is not a tar), hashed for
	// the diff ID, and compressed into tmp, which is hashed in turn.
	diffID := digest.Canonical.Digester()
	blob := digest.Canonical.Digester()
	zw := gzip.NewWriter(io.MultiWriter(tmp, blob.Hash()))
	tr := tar.NewReader(io.TeeReader(&ctxReader{ctx: ctx, r: plain}, io.MultiWriter(diffID.Hash(), zw)))
	n := 0
	for {
		_, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("import: input is not a tar archive: %w", err)
		}
		n++
	}
	if n == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("import: empty tar archive")
	}
	// The tar reader stops at the end-of-archive marker; what follows (the
	// rest of the zero padding) is part of the tarball and of its digest.
	if _, err := io.Copy(io.Discard, io.TeeReader(plain, io.MultiWriter(diffID.Hash(), zw))); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: %w", err)
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: %w", err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: blob.Digest(), Size: size}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := content.WriteBlob(ctx, store, layer, tmp); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: store layer: %w", err)
	}

	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	platform := opts.Platform
	if platform.OS == "" {
		platform = image.DefaultPlatform()
	}
	cfg := ocispec.Image{
		Created:  &created,
		Platform: platform,
		Config:   opts.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID.Digest()}},
		History:  []ocispec.History{{Created: &created, CreatedBy: "hako import", Comment: opts.Comment}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfgDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgJSON), Size: int64(len(cfgJSON))}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layer}}
	mJSON, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mJSON), Size: int64(len(mJSON))}
	if err := content.WriteBlob(ctx, store, cfgDesc, bytes.NewReader(cfgJSON)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: store config: %w", err)
	}
	if err := content.WriteBlob(ctx, store, mDesc, bytes.NewReader(mJSON)); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("import: store manifest: %w", err)
	}
	return mDesc, nil
}

// compression names the compression whose magic number starts b, or "".
func compression(b []byte) string {
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return "gzip"
	case len(b) >= 3 && string(b[:3]) == "BZh":
		return "bzip2"
	case len(b) >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd:
		return "zstd"
	}
	return ""
}

// decompress recognises gzip, bzip2 and zstd by their magic numbers. The
// zstd window is bounded as for layers (internal/unpack), so a hostile
// frame cannot ask for gigabytes of memory.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch compression(magic) {
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case "bzip2":
		return bzip2.NewReader(br), nil
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return br, nil
}
