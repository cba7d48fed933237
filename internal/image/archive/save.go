package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
)

// Format is an archive format for Save.
type Format int

const (
	// FormatOCI is an OCI image layout in a tar (skopeo's oci-archive).
	FormatOCI Format = iota
	// FormatDocker is what `docker save` writes since docker 25: an OCI
	// layout of one platform plus the manifest.json that `docker load` (and
	// older tools) read.
	FormatDocker
)

// SaveOptions configures Save.
type SaveOptions struct {
	Format Format
	// Platform picks the image from an index for FormatDocker, which holds
	// one platform per image; nil means image.DefaultPlatform().
	Platform *ocispec.Platform
}

// Save writes images as an OCI archive (an image layout in a tar) to w:
// oci-layout, index.json with one entry per image name, and every blob the
// images reach that the store holds. The output is deterministic (blobs in
// digest order, fixed times and owners), so saving the same images twice,
// or saving what was loaded from a saved archive, gives the same bytes.
// Manifests of an index that the store lacks (platforms never pulled) are
// left out, as `ctr export` does without --all-platforms.
func Save(ctx context.Context, w io.Writer, p content.Provider, images []Image, opts SaveOptions) error {
	if opts.Format == FormatDocker {
		return saveDocker(ctx, w, p, images, opts)
	}
	blobs := map[digest.Digest]ocispec.Descriptor{}
	f := image.StoreFetcher{Provider: p}
	var walk func(d ocispec.Descriptor, depth int, optional bool) error
	walk = func(d ocispec.Descriptor, depth int, optional bool) error {
		if _, ok := blobs[d.Digest]; ok {
			return nil
		}
		if depth > 8 {
			return fmt.Errorf("%w: indexes nested too deep", image.ErrInvalidManifest)
		}
		ra, err := p.ReaderAt(ctx, d)
		if err != nil {
			if optional && errors.Is(err, content.ErrNotFound) {
				return nil
			}
			return fmt.Errorf("blob %s: %w", d.Digest, err)
		}
		ra.Close()
		blobs[d.Digest] = d
		children, err := image.Children(ctx, f, d)
		if err != nil {
			return err
		}
		for _, c := range children {
			// An index's entries may be absent; a manifest's never.
			if err := walk(c, depth+1, image.IsIndex(d.MediaType)); err != nil {
				return err
			}
		}
		return nil
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	for _, img := range images {
		if err := walk(img.Target, 0, false); err != nil {
			return fmt.Errorf("save %s: %w", displayName(img), err)
		}
		d := img.Target
		d.Annotations = nil
		if img.Name != "" {
			r, err := image.ParseReference(img.Name)
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			d.Annotations = map[string]string{AnnotationImageName: r.String()}
			if r.Tag != "" {
				d.Annotations[AnnotationRefName] = r.Tag
			}
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	return writeLayout(ctx, w, p, idx, blobs, nil)
}

// writeLayout writes an image layout tar: oci-layout, index.json, the extra
// files (manifest.json of the docker format), then the blobs.
func writeLayout(ctx context.Context, w io.Writer, p content.Provider, idx ocispec.Index, blobs map[digest.Digest]ocispec.Descriptor, extra map[string][]byte) error {
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	layoutJSON, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	tw := tar.NewWriter(w)
	hdr := func(name string, typ byte, size int64) *tar.Header {
		mode := int64(0o644)
		if typ == tar.TypeDir {
			mode = 0o755
		}
		return &tar.Header{Name: name, Typeflag: typ, Size: size, Mode: mode, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	}
	writeFile := func(name string, data []byte) error {
		if err := tw.WriteHeader(hdr(name, tar.TypeReg, int64(len(data)))); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := writeFile(ocispec.ImageLayoutFile, layoutJSON); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := writeFile("index.json", idxJSON); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	extraNames := make([]string, 0, len(extra))
	for n := range extra {
		extraNames = append(extraNames, n)
	}
	sort.Strings(extraNames)
	for _, n := range extraNames {
		if err := writeFile(n, extra[n]); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	digests := make([]digest.Digest, 0, len(blobs))
	algs := map[string]bool{}
	for d := range blobs {
		digests = append(digests, d)
		algs[d.Algorithm().String()] = true
	}
	sort.Slice(digests, func(i, j int) bool { return digests[i] < digests[j] })
	if err := tw.WriteHeader(hdr("blobs/", tar.TypeDir, 0)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	algList := make([]string, 0, len(algs))
	for a := range algs {
		algList = append(algList, a)
	}
	sort.Strings(algList)
	for _, a := range algList {
		if err := tw.WriteHeader(hdr("blobs/"+a+"/", tar.TypeDir, 0)); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	for _, d := range digests {
		if err := ctx.Err(); err != nil {
			return err
		}
		ra, err := p.ReaderAt(ctx, blobs[d])
		if err != nil {
			return fmt.Errorf("save blob %s: %w", d, err)
		}
		err = tw.WriteHeader(hdr("blobs/"+d.Algorithm().String()+"/"+d.Encoded(), tar.TypeReg, ra.Size()))
		if err == nil {
			_, err = io.Copy(tw, &ctxReader{ctx: ctx, r: io.NewSectionReader(ra, 0, ra.Size())})
		}
		ra.Close()
		if err != nil {
			return fmt.Errorf("save blob %s: %w", d, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// saveDocker writes the docker format: each image resolved to one platform,
// its blobs in the layout, and manifest.json naming config and layers by
// their paths, with familiar repository tags (docker load's format).
func saveDocker(ctx context.Context, w io.Writer, p content.Provider, images []Image, opts SaveOptions) error {
	platform := image.DefaultPlatform()
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	f := image.StoreFetcher{Provider: p}
	blobs := map[digest.Digest]ocispec.Descriptor{}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var entries []*entry
	byManifest := map[digest.Digest]*entry{}
	blobPath := func(d digest.Digest) string { return "blobs/" + d.Algorithm().String() + "/" + d.Encoded() }
	for _, im := range images {
		img, err := image.ResolveImage(ctx, f, im.Target, platform)
		if err != nil {
			return fmt.Errorf("save %s: %w", displayName(im), err)
		}
		m, err := img.Manifest(ctx)
		if err != nil {
			return fmt.Errorf("save %s: %w", displayName(im), err)
		}
		md := img.Descriptor()
		md.Platform, md.Annotations = nil, nil
		var tag string
		if im.Name != "" {
			r, err := image.ParseReference(im.Name)
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			md.Annotations = map[string]string{AnnotationImageName: r.String()}
			if r.Tag != "" {
				md.Annotations[AnnotationRefName] = r.Tag
				tag = image.Reference{Domain: r.Domain, Path: r.Path, Tag: r.Tag}.Familiar()
			}
		}
		idx.Manifests = append(idx.Manifests, md)
		e, ok := byManifest[md.Digest]
		if !ok {
			for _, d := range append([]ocispec.Descriptor{md, m.Config}, m.Layers...) {
				ra, err := p.ReaderAt(ctx, d)
				if err != nil {
					return fmt.Errorf("save %s: blob %s: %w", displayName(im), d.Digest, err)
				}
				ra.Close()
				blobs[d.Digest] = d
			}
			e = &entry{Config: blobPath(m.Config.Digest), RepoTags: []string{}}
			for _, l := range m.Layers {
				e.Layers = append(e.Layers, blobPath(l.Digest))
			}
			byManifest[md.Digest] = e
			entries = append(entries, e)
		}
		if tag != "" {
			e.RepoTags = append(e.RepoTags, tag)
		}
	}
	mj, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	return writeLayout(ctx, w, p, idx, blobs, map[string][]byte{"manifest.json": mj})
}
