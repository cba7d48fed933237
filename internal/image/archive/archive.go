// Package archive reads and writes images as tarballs: OCI image layouts
// packed in a tar (image-spec image-layout.md; skopeo's oci-archive, docker
// 25+'s `docker save`) and the older `docker save` format (manifest.json
// listing a config and uncompressed layer tars). It backs `hako load` and
// `hako save`.
//
// A tar is indexed once (entry name -> offset and size in the file) and
// then read at random, so loading does not unpack anything to disk and
// never creates a file from an entry name: names are only keys.
package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
)

var (
	ErrUnknownFormat = errors.New("not an OCI archive or docker save tarball")
	ErrMissing       = errors.New("archive lacks an entry")
)

// Annotation keys that name an image in an OCI index: containerd writes the
// full name, the image-spec one holds a tag (or, from some tools, a name).
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = ocispec.AnnotationRefName
)

// Image is one image found in (or to be put in) an archive.
type Image struct {
	// Name is the normalised reference, or "" for an unnamed image.
	Name   string
	Target ocispec.Descriptor
}

type entry struct {
	offset, size int64
}

// Archive is an opened, indexed tarball. It is an image.Fetcher for the
// blobs of its OCI layout (synthesised manifests of a legacy docker save
// included).
type Archive struct {
	f       *os.File
	entries map[string]entry
	images  []Image
	extra   map[digest.Digest][]byte // documents made up for legacy docker save
	blobAt  map[digest.Digest]string // digest -> entry, for legacy docker save
}

var _ image.Fetcher = (*Archive)(nil)

// Open indexes the tar at path and finds its images. The tar must be
// uncompressed (it is read at random); see OpenReader for the others.
func Open(ctx context.Context, p string) (*Archive, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	return openFile(ctx, f, p)
}

// OpenReader reads an archive from a stream (standard input, a pipe) that
// may be gzip-, bzip2- or zstd-compressed, as `docker load` accepts: the
// plain tar is copied to an unnamed file in tempDir ("" means
// os.TempDir(); put it on the store's file system), which Close releases.
func OpenReader(ctx context.Context, r io.Reader, tempDir string) (*Archive, error) {
	plain, err := decompress(r)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if tempDir == "" {
		tempDir = os.TempDir()
	}
	f, err := os.CreateTemp(tempDir, "hako-load-")
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	// Unlinked at once: nothing is left behind, whatever happens next.
	os.Remove(f.Name())
	if _, err := io.Copy(f, &ctxReader{ctx: ctx, r: plain}); err != nil {
		f.Close()
		return nil, fmt.Errorf("read archive: %w", err)
	}
	if closer, ok := plain.(io.Closer); ok {
		closer.Close()
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("read archive: %w", err)
	}
	return openFile(ctx, f, "stream")
}

// IsCompressed reports whether f starts with a gzip, bzip2 or zstd header:
// such an archive is loaded through OpenReader.
func IsCompressed(f io.ReaderAt) (bool, error) {
	var magic [4]byte
	n, err := f.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read archive: %w", err)
	}
	return compression(magic[:n]) != "", nil
}

// OpenFile is Open for a file already open (standard input redirected from
// a file); name is for messages. The archive owns f: Close closes it.
func OpenFile(ctx context.Context, f *os.File, name string) (*Archive, error) {
	return openFile(ctx, f, name)
}

func openFile(ctx context.Context, f *os.File, p string) (*Archive, error) {
	a := &Archive{f: f, entries: map[string]entry{}, extra: map[digest.Digest][]byte{}, blobAt: map[digest.Digest]string{}}
	if err := a.index(); err != nil {
		f.Close()
		return nil, fmt.Errorf("archive %s: %w", p, err)
	}
	var err error
	switch {
	case a.has("oci-layout") && a.has("index.json"):
		err = a.readOCI(ctx)
	case a.has("manifest.json"):
		err = a.readDockerSave(ctx)
	default:
		err = ErrUnknownFormat
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("archive %s: %w", p, err)
	}
	return a, nil
}

// Close releases the file.
func (a *Archive) Close() error { return a.f.Close() }

// Images lists the images in the archive, in archive order.
func (a *Archive) Images() []Image { return a.images }

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (a *Archive) has(name string) bool { _, ok := a.entries[name]; return ok }

// index records every regular file's data offset. tar.Reader reads exactly
// the header blocks, so after Next the file offset is the data's start.
func (a *Archive) index() error {
	tr := tar.NewReader(a.f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		a.entries[clean(h.Name)] = entry{offset: off, size: h.Size}
	}
	if len(a.entries) == 0 {
		return fmt.Errorf("%w: no files", ErrUnknownFormat)
	}
	return nil
}

func (a *Archive) open(name string) (*io.SectionReader, error) {
	e, ok := a.entries[clean(name)]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrMissing, name)
	}
	return io.NewSectionReader(a.f, e.offset, e.size), nil
}

func (a *Archive) readSmall(name string, limit int64) ([]byte, error) {
	r, err := a.open(name)
	if err != nil {
		return nil, err
	}
	if r.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes", name, image.ErrTooLarge, r.Size())
	}
	return io.ReadAll(r)
}

// Fetch implements image.Fetcher.
func (a *Archive) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if b, ok := a.extra[desc.Digest]; ok {
		return io.NopCloser(strings.NewReader(string(b))), nil
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	name, ok := a.blobAt[desc.Digest]
	if !ok {
		name = "blobs/" + desc.Digest.Algorithm().String() + "/" + desc.Digest.Encoded()
	}
	r, err := a.open(name)
	if err != nil {
		// Both classifications, on one line (errors.Join would print two).
		return nil, fmt.Errorf("blob %s: %w: %w", desc.Digest, image.ErrNotFound, err)
	}
	return io.NopCloser(r), nil
}

// readOCI reads index.json; each entry is an image, named by its
// annotations.
func (a *Archive) readOCI(ctx context.Context) error {
	b, err := a.readSmall("oci-layout", 1<<10)
	if err != nil {
		return err
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(b, &lay); err != nil || lay.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("oci-layout: unsupported version %q (%v)", lay.Version, err)
	}
	b, err = a.readSmall("index.json", image.MaxManifestSize)
	if err != nil {
		return err
	}
	idx, err := image.ParseIndex(b, "")
	if err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	for _, m := range idx.Manifests {
		if !image.IsManifest(m.MediaType) && !image.IsIndex(m.MediaType) {
			continue
		}
		a.images = append(a.images, Image{Name: nameOf(m.Annotations), Target: m})
	}
	return nil
}

// nameOf turns index annotations into a normalised name: the containerd
// annotation is a full name; the image-spec one is a full name from some
// tools and a bare tag from others (a bare tag names nothing by itself).
func nameOf(ann map[string]string) string {
	for _, k := range []string{AnnotationImageName, AnnotationRefName} {
		v := ann[k]
		if v == "" || (k == AnnotationRefName && !strings.ContainsAny(v, "/:@")) {
			continue
		}
		if r, err := image.ParseReference(v); err == nil {
			return r.String()
		}
	}
	return ""
}

type dockerSaveEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// readDockerSave reads a legacy docker save tarball: a manifest is made up
// for each entry (OCI media types, digests from hashing the files), since
// the tarball carries none.
func (a *Archive) readDockerSave(ctx context.Context) error {
	b, err := a.readSmall("manifest.json", image.MaxManifestSize)
	if err != nil {
		return err
	}
	var entries []dockerSaveEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	for i, e := range entries {
		cfg, err := a.describe(ctx, e.Config, ocispec.MediaTypeImageConfig)
		if err != nil {
			return fmt.Errorf("manifest.json entry %d config: %w", i, err)
		}
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}}
		m.SchemaVersion = 2
		for _, l := range e.Layers {
			d, err := a.describe(ctx, l, "")
			if err != nil {
				return fmt.Errorf("manifest.json entry %d layer: %w", i, err)
			}
			m.Layers = append(m.Layers, d)
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return err
		}
		md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
		a.extra[md.Digest] = mb
		if len(e.RepoTags) == 0 {
			a.images = append(a.images, Image{Target: md})
		}
		for _, t := range e.RepoTags {
			r, err := image.ParseReference(t)
			if err != nil {
				return fmt.Errorf("manifest.json entry %d: %w", i, err)
			}
			a.images = append(a.images, Image{Name: r.String(), Target: md})
		}
	}
	return nil
}

// describe hashes an entry; mediaType "" means a layer, typed by its magic.
func (a *Archive) describe(ctx context.Context, name, mediaType string) (ocispec.Descriptor, error) {
	r, err := a.open(name)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if mediaType == "" {
		var magic [4]byte
		n, _ := r.ReadAt(magic[:], 0)
		switch {
		case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			mediaType = ocispec.MediaTypeImageLayerGzip
		case n == 4 && magic == [4]byte{0x28, 0xb5, 0x2f, 0xfd}:
			mediaType = ocispec.MediaTypeImageLayerZstd
		default:
			mediaType = ocispec.MediaTypeImageLayer
		}
	}
	d := digest.Canonical.Digester()
	if _, err := io.Copy(d.Hash(), &ctxReader{ctx: ctx, r: r}); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("hash %s: %w", name, err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: d.Digest(), Size: r.Size()}
	a.blobAt[desc.Digest] = clean(name)
	return desc, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Load copies every image of the archive into the store, verifying each
// blob, and returns them. Blobs an index names but the archive lacks (other
// platforms) are skipped, as a pull of one platform would.
//
// A failed load leaves the store as it was when the store can delete
// (content.Manager, as content.Local): the blobs this load added are
// removed again, so a corrupt or hostile archive leaves nothing behind.
// Blobs that were present before are never touched.
func (a *Archive) Load(ctx context.Context, store content.Ingester) (imgs []Image, err error) {
	rec := &recordingIngester{Ingester: store}
	defer func() {
		if err != nil {
			err = rec.rollback(err)
		}
	}()
	return a.load(ctx, rec)
}

func (a *Archive) load(ctx context.Context, store content.Ingester) ([]Image, error) {
	seen := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor, depth int, top bool) error
	walk = func(d ocispec.Descriptor, depth int, top bool) error {
		if seen[d.Digest] {
			return nil
		}
		if depth > 8 {
			return fmt.Errorf("%w: indexes nested too deep", image.ErrInvalidManifest)
		}
		if !top && (image.IsManifest(d.MediaType) || image.IsIndex(d.MediaType)) && !a.present(d) {
			return nil // another platform's manifest, not in the archive
		}
		children, err := image.Children(ctx, a, d)
		if err != nil {
			return err
		}
		for _, c := range children {
			if err := walk(c, depth+1, false); err != nil {
				return err
			}
		}
		// Children first: a stored manifest implies its blobs are there.
		if err := a.store(ctx, store, d); err != nil {
			return err
		}
		seen[d.Digest] = true
		return nil
	}
	for _, img := range a.images {
		if err := walk(img.Target, 0, true); err != nil {
			return nil, fmt.Errorf("load %s: %w", displayName(img), err)
		}
	}
	return a.images, nil
}

func displayName(img Image) string {
	if img.Name != "" {
		return img.Name
	}
	return img.Target.Digest.String()
}

func (a *Archive) present(d ocispec.Descriptor) bool {
	if _, ok := a.extra[d.Digest]; ok {
		return true
	}
	if _, ok := a.blobAt[d.Digest]; ok {
		return true
	}
	return d.Digest.Validate() == nil && a.has("blobs/"+d.Digest.Algorithm().String()+"/"+d.Digest.Encoded())
}

func (a *Archive) store(ctx context.Context, store content.Ingester, d ocispec.Descriptor) error {
	rc, err := a.Fetch(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := content.WriteBlob(ctx, store, d, rc); err != nil {
		return fmt.Errorf("store %s: %w", d.Digest, err)
	}
	return nil
}
