package metadata

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
)

// Lease protects blobs that no image names yet (a pull in progress, an
// import) from CollectGarbage: hold it from before the first blob is
// written until the image record is put. Leases are shared; the collector
// waits for all of them, and new leases wait for a running collection.
func (s *Store) Lease(ctx context.Context) (release func(), err error) {
	return s.lock(ctx, "gc.lock", unix.LOCK_SH)
}

// GCContent is what the collector needs of a content store.
type GCContent interface {
	content.Provider
	content.Manager
}

// CollectGarbage removes every committed blob that no image reaches
// (mark and sweep; the marks follow image.Children from each image's
// target). Children absent from the store are fine: a multi-platform index
// is pulled for one platform. It returns the digests removed.
func (s *Store) CollectGarbage(ctx context.Context, cs GCContent) ([]digest.Digest, error) {
	unlock, err := s.lock(ctx, "gc.lock", unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	imgs, err := s.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	f := image.StoreFetcher{Provider: cs}
	marked := map[digest.Digest]bool{}
	var walk func(d ocispec.Descriptor, depth int) error
	walk = func(d ocispec.Descriptor, depth int) error {
		if marked[d.Digest] || depth > 8 {
			return nil
		}
		if _, err := cs.Info(ctx, d.Digest); errors.Is(err, content.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		marked[d.Digest] = true
		children, err := image.Children(ctx, f, d)
		if err != nil {
			return fmt.Errorf("gc: walk %s: %w", d.Digest, err)
		}
		for _, c := range children {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, img := range imgs {
		if err := walk(img.Target, 0); err != nil {
			return nil, fmt.Errorf("gc: image %s: %w", img.Name, err)
		}
	}
	var garbage []digest.Digest
	if err := cs.Walk(ctx, func(i content.Info) error {
		if !marked[i.Digest] {
			garbage = append(garbage, i.Digest)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var removed []digest.Digest
	for _, d := range garbage {
		if err := cs.Delete(ctx, d); err != nil && !errors.Is(err, content.ErrNotFound) {
			return removed, fmt.Errorf("gc: %w", err)
		}
		removed = append(removed, d)
	}
	return removed, nil
}
