package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
)

// Fetcher is a source of content by descriptor: a registry repository, the
// content store, an archive. It is the only thing an Image needs, so one
// Image implementation serves every transport. Fetch may return unverified
// bytes; Image verifies what it reads into memory, and VerifyReader wraps
// streams.
type Fetcher interface {
	Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error)
}

// Image is one platform's image: a manifest, its config and its layers.
// Nothing is fetched until a method asks for it.
type Image interface {
	Descriptor() ocispec.Descriptor
	Manifest(ctx context.Context) (ocispec.Manifest, error)
	// RawManifest is the manifest exactly as its digest covers it.
	RawManifest(ctx context.Context) ([]byte, error)
	Config(ctx context.Context) (ocispec.Image, error)
	RawConfig(ctx context.Context) ([]byte, error)
	Layers(ctx context.Context) ([]Layer, error)
}

// Index is a multi-platform image (OCI index or Docker manifest list).
type Index interface {
	Descriptor() ocispec.Descriptor
	IndexManifest(ctx context.Context) (ocispec.Index, error)
	RawIndex(ctx context.Context) ([]byte, error)
	// Image resolves the entry best matching platform.
	Image(ctx context.Context, platform ocispec.Platform) (Image, error)
}

// Layer is one layer blob, as the manifest describes it.
type Layer interface {
	Descriptor() ocispec.Descriptor
	// DiffID is the digest of the uncompressed tar, from the config's
	// rootfs.diff_ids (image-spec config.md); the unpacker checks it.
	DiffID(ctx context.Context) (digest.Digest, error)
	// Open streams the blob as stored (compressed), verified: the reader
	// fails at EOF if size or digest do not match the descriptor.
	Open(ctx context.Context) (io.ReadCloser, error)
}

// ReadAll fetches a small blob (manifest, index, config) into memory with a
// limit, and verifies it against desc.
func ReadAll(ctx context.Context, f Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes exceeds the limit of %d", desc.Digest, ErrTooLarge, desc.Size, limit)
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", desc.Digest, err)
	}
	if err := Verify(desc, data); err != nil {
		return nil, err
	}
	return data, nil
}

// FromDescriptor returns the Image or Index that desc names, fetching
// nothing yet. Exactly one of the results is non-nil.
func FromDescriptor(f Fetcher, desc ocispec.Descriptor) (Image, Index, error) {
	switch {
	case IsManifest(desc.MediaType):
		return &lazyImage{f: f, desc: desc}, nil, nil
	case IsIndex(desc.MediaType):
		return nil, &lazyIndex{f: f, desc: desc}, nil
	}
	return nil, nil, fmt.Errorf("%s: %w %q: not a manifest or index", desc.Digest, ErrUnsupportedMedia, desc.MediaType)
}

// maxIndexDepth bounds nested indexes (an index may point to an index,
// image-spec image-index.md); real images use one level.
const maxIndexDepth = 4

// ResolveImage returns the image desc names, choosing by platform through
// any indexes on the way.
func ResolveImage(ctx context.Context, f Fetcher, desc ocispec.Descriptor, platform ocispec.Platform) (Image, error) {
	for range maxIndexDepth {
		img, idx, err := FromDescriptor(f, desc)
		if err != nil {
			return nil, err
		}
		if img != nil {
			return img, nil
		}
		x, err := idx.IndexManifest(ctx)
		if err != nil {
			return nil, err
		}
		if desc, err = SelectManifest(platform, x.Manifests); err != nil {
			return nil, fmt.Errorf("index %s: %w", idx.Descriptor().Digest, err)
		}
	}
	return nil, fmt.Errorf("%w: indexes nested deeper than %d", ErrInvalidManifest, maxIndexDepth)
}

type lazyIndex struct {
	mu   sync.Mutex // guards raw: an Index may be used from several goroutines
	f    Fetcher
	desc ocispec.Descriptor
	raw  []byte
}

func (x *lazyIndex) Descriptor() ocispec.Descriptor { return x.desc }

func (x *lazyIndex) RawIndex(ctx context.Context) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.raw == nil {
		b, err := ReadAll(ctx, x.f, x.desc, MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("fetch index: %w", err)
		}
		x.raw = b
	}
	return x.raw, nil
}

func (x *lazyIndex) IndexManifest(ctx context.Context) (ocispec.Index, error) {
	b, err := x.RawIndex(ctx)
	if err != nil {
		return ocispec.Index{}, err
	}
	idx, err := ParseIndex(b, x.desc.MediaType)
	if err != nil {
		return idx, fmt.Errorf("index %s: %w", x.desc.Digest, err)
	}
	return idx, nil
}

func (x *lazyIndex) Image(ctx context.Context, platform ocispec.Platform) (Image, error) {
	return ResolveImage(ctx, x.f, x.desc, platform)
}

type lazyImage struct {
	mu        sync.Mutex // guards raw and rawConfig
	f         Fetcher
	desc      ocispec.Descriptor
	raw       []byte
	rawConfig []byte
}

func (m *lazyImage) Descriptor() ocispec.Descriptor { return m.desc }

func (m *lazyImage) RawManifest(ctx context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.raw == nil {
		b, err := ReadAll(ctx, m.f, m.desc, MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("fetch manifest: %w", err)
		}
		m.raw = b
	}
	return m.raw, nil
}

func (m *lazyImage) Manifest(ctx context.Context) (ocispec.Manifest, error) {
	b, err := m.RawManifest(ctx)
	if err != nil {
		return ocispec.Manifest{}, err
	}
	mf, err := ParseManifest(b, m.desc.MediaType)
	if err != nil {
		return mf, fmt.Errorf("manifest %s: %w", m.desc.Digest, err)
	}
	return mf, nil
}

func (m *lazyImage) RawConfig(ctx context.Context) ([]byte, error) {
	mf, err := m.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rawConfig == nil {
		b, err := ReadAll(ctx, m.f, mf.Config, MaxConfigSize)
		if err != nil {
			return nil, fmt.Errorf("fetch config: %w", err)
		}
		m.rawConfig = b
	}
	return m.rawConfig, nil
}

func (m *lazyImage) Config(ctx context.Context) (ocispec.Image, error) {
	var c ocispec.Image
	b, err := m.RawConfig(ctx)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("config of %s: %w", m.desc.Digest, err)
	}
	return c, nil
}

func (m *lazyImage) Layers(ctx context.Context) ([]Layer, error) {
	mf, err := m.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	ls := make([]Layer, len(mf.Layers))
	for i, d := range mf.Layers {
		ls[i] = &lazyLayer{img: m, index: i, desc: d}
	}
	return ls, nil
}

type lazyLayer struct {
	img   *lazyImage
	index int
	desc  ocispec.Descriptor
}

func (l *lazyLayer) Descriptor() ocispec.Descriptor { return l.desc }

func (l *lazyLayer) DiffID(ctx context.Context) (digest.Digest, error) {
	c, err := l.img.Config(ctx)
	if err != nil {
		return "", err
	}
	if l.index >= len(c.RootFS.DiffIDs) {
		return "", fmt.Errorf("%w: config of %s lists %d diff_ids for %d+ layers", ErrInvalidManifest, l.img.desc.Digest, len(c.RootFS.DiffIDs), l.index+1)
	}
	return c.RootFS.DiffIDs[l.index], nil
}

func (l *lazyLayer) Open(ctx context.Context) (io.ReadCloser, error) {
	rc, err := l.img.f.Fetch(ctx, l.desc)
	if err != nil {
		return nil, fmt.Errorf("fetch layer %s: %w", l.desc.Digest, err)
	}
	return VerifyReader(rc, l.desc), nil
}

// VerifyReader passes r through and fails instead of returning io.EOF when
// more or fewer bytes than desc.Size arrived, or they hash to another digest.
func VerifyReader(r io.ReadCloser, desc ocispec.Descriptor) io.ReadCloser {
	if err := desc.Digest.Validate(); err != nil {
		r.Close()
		return errReadCloser{fmt.Errorf("%s: %w", desc.Digest, err)}
	}
	return &verifyReader{r: r, desc: desc, h: desc.Digest.Algorithm().Hash()}
}

type errReadCloser struct{ err error }

func (e errReadCloser) Read([]byte) (int, error) { return 0, e.err }
func (e errReadCloser) Close() error             { return nil }

type verifyReader struct {
	r    io.ReadCloser
	desc ocispec.Descriptor
	h    hash.Hash
	n    int64
}

func (v *verifyReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.n > v.desc.Size {
		return n, fmt.Errorf("%s: %w: more than %d bytes", v.desc.Digest, content.ErrSizeMismatch, v.desc.Size)
	}
	if errors.Is(err, io.EOF) {
		if v.n != v.desc.Size {
			return n, fmt.Errorf("%s: %w: got %d bytes, descriptor says %d", v.desc.Digest, content.ErrSizeMismatch, v.n, v.desc.Size)
		}
		if got := digest.NewDigest(v.desc.Digest.Algorithm(), v.h); got != v.desc.Digest {
			return n, fmt.Errorf("%s: %w: content hashes to %s", v.desc.Digest, content.ErrDigestMismatch, got)
		}
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.r.Close() }

// StoreFetcher reads from a content store: images pulled earlier are Images
// again through it.
type StoreFetcher struct{ Provider content.Provider }

func (s StoreFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	ra, err := s.Provider.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
}

// BytesFetcher serves blobs from memory; for tests and for documents already
// fetched.
type BytesFetcher map[digest.Digest][]byte

func (b BytesFetcher) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	data, ok := b[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: %w", desc.Digest, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Children lists the descriptors desc refers to: an index's manifests, a
// manifest's config and layers; nothing for other blobs. Garbage
// collection and export walk images with it.
func Children(ctx context.Context, f Fetcher, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	switch {
	case IsIndex(desc.MediaType):
		b, err := ReadAll(ctx, f, desc, MaxManifestSize)
		if err != nil {
			return nil, err
		}
		x, err := ParseIndex(b, desc.MediaType)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		return x.Manifests, nil
	case IsManifest(desc.MediaType):
		b, err := ReadAll(ctx, f, desc, MaxManifestSize)
		if err != nil {
			return nil, err
		}
		m, err := ParseManifest(b, desc.MediaType)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		return append([]ocispec.Descriptor{m.Config}, m.Layers...), nil
	}
	return nil, nil
}

// ChainIDs returns the chain ID of each layer prefix (image-spec config.md,
// "Layer ChainID"): the first is the first diff ID, each next one
// sha256(previous + " " + diffID). Snapshots of unpacked layers are named
// by them, so they say which snapshots an image needs.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
