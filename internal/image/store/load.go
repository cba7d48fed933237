package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/metadata"
)

// An image that arrives without a name (an archive entry with no name
// annotation or RepoTags, `hako import FILE` without NAME) is what docker
// calls dangling. Every record in the metadata store has a name, and the
// collector keeps only what a record reaches, so a dangling image is
// recorded under a name made of its digest: localhost/dangling@sha256:...
// (localhost/ as podman names local-only images; the digest makes it
// unique and says which content it is). `hako images` shows it as <none>
// (IsDangling), and it goes once the same content is loaded under a name.
const danglingRepo = "localhost/dangling"

// DanglingName is the record name of an unnamed image whose target is d.
func DanglingName(d digest.Digest) string { return danglingRepo + "@" + d.String() }

// IsDangling reports whether a record name is one DanglingName made.
func IsDangling(name string) bool { return strings.HasPrefix(name, danglingRepo+"@") }

// LoadArchive stores the images of an opened archive (archive.Open or
// OpenReader) and records their names; an unnamed one is recorded under
// DanglingName unless a name already points at it. The returned records
// are in archive order, a dangling one with its DanglingName. A failed
// load leaves no blob it added (archive.Archive.Load) and no name.
func (s *Store) LoadArchive(ctx context.Context, a *archive.Archive) ([]metadata.Image, error) {
	release, err := s.Meta.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	imgs, err := a.Load(ctx, s.Content)
	if err != nil {
		return nil, err
	}
	var out []metadata.Image
	for _, img := range imgs {
		var rec metadata.Image
		if img.Name == "" {
			rec, err = s.putDangling(ctx, img.Target)
		} else {
			rec, err = s.putNamed(ctx, img.Name, img.Target, nil)
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// LoadStream is LoadArchive for an archive read from r (standard input),
// plain or compressed; the copy it needs is made under the data root.
func (s *Store) LoadStream(ctx context.Context, r io.Reader) ([]metadata.Image, error) {
	a, err := archive.OpenReader(ctx, r, s.tmp)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return s.LoadArchive(ctx, a)
}

// ImportUnnamed is Import without a name: the image is recorded under its
// DanglingName, as `docker import FILE` makes a dangling image.
func (s *Store) ImportUnnamed(ctx context.Context, r io.Reader, opts archive.ImportOptions) (metadata.Image, error) {
	return s.importAs(ctx, r, opts, func(desc ocispec.Descriptor) (metadata.Image, error) {
		return s.putDangling(ctx, desc)
	})
}

// importAs stores the image archive.Import makes of r under a lease, and
// records it with put.
func (s *Store) importAs(ctx context.Context, r io.Reader, opts archive.ImportOptions, put func(ocispec.Descriptor) (metadata.Image, error)) (metadata.Image, error) {
	release, err := s.Meta.Lease(ctx)
	if err != nil {
		return metadata.Image{}, err
	}
	defer release()
	if opts.TempDir == "" {
		opts.TempDir = s.tmp
	}
	desc, err := archive.Import(ctx, r, s.Content, opts)
	if err != nil {
		return metadata.Image{}, err
	}
	return put(desc)
}

// putNamed records name -> target and drops the dangling record of the
// same content, which the name now keeps. The image the name pointed at
// before, if other, becomes dangling unless another name holds it, as
// `docker load` does ("renaming the old one ... to empty string"): it is
// not silently left for the collector.
func (s *Store) putNamed(ctx context.Context, name string, target ocispec.Descriptor, labels map[string]string) (metadata.Image, error) {
	old, oldErr := s.Meta.GetImage(ctx, name)
	rec, err := s.Meta.PutImage(ctx, metadata.Image{Name: name, Target: target, Labels: labels})
	if err != nil {
		return rec, err
	}
	if err := s.Meta.DeleteImage(ctx, DanglingName(target.Digest)); err != nil && !IsNotFound(err) {
		return rec, err
	}
	if oldErr == nil && old.Target.Digest != target.Digest {
		if _, err := s.putDangling(ctx, old.Target); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// putDangling records target under its DanglingName unless a name points
// at it already; it returns that record.
func (s *Store) putDangling(ctx context.Context, target ocispec.Descriptor) (metadata.Image, error) {
	recs, err := s.Meta.ListImages(ctx)
	if err != nil {
		return metadata.Image{}, err
	}
	for _, r := range recs {
		if r.Target.Digest == target.Digest {
			return r, nil
		}
	}
	t := target
	t.Annotations, t.Platform = nil, nil
	rec, err := s.Meta.PutImage(ctx, metadata.Image{Name: DanglingName(target.Digest), Target: t})
	if err != nil {
		return rec, fmt.Errorf("record unnamed image %s: %w", target.Digest, err)
	}
	return rec, nil
}

// ImageID is the ID docker and the CRI show for an image: the digest of
// its config, for the platform it was pulled for (LabelPlatform) or this
// host's. An index without that platform in the store has its own digest
// as ID.
func (s *Store) ImageID(ctx context.Context, rec metadata.Image) (digest.Digest, error) {
	p := image.DefaultPlatform()
	if lp, ok := rec.Labels[LabelPlatform]; ok {
		if pp, err := image.ParsePlatform(lp); err == nil {
			p = pp
		}
	}
	img, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s.Content}, rec.Target, p)
	var m ocispec.Manifest
	if err == nil {
		m, err = img.Manifest(ctx)
	}
	switch {
	case err == nil:
		return m.Config.Digest, nil
	case image.IsIndex(rec.Target.MediaType) && (errors.Is(err, image.ErrNoMatchingPlatform) || IsNotFound(err)):
		return rec.Target.Digest, nil
	}
	return "", fmt.Errorf("image %s: %w", rec.Name, err)
}
