package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
)

// recordingIngester notes the blobs that its writers commit, i.e. the ones
// that were not in the store before (a present blob gets no writer), so
// that a failed Load or Import can take back exactly what it added.
type recordingIngester struct {
	content.Ingester
	added []digest.Digest
}

func (r *recordingIngester) Writer(ctx context.Context, desc ocispec.Descriptor) (content.Writer, error) {
	w, err := r.Ingester.Writer(ctx, desc)
	if err != nil {
		return nil, err
	}
	return &recordingWriter{Writer: w, r: r, dgst: desc.Digest}, nil
}

type recordingWriter struct {
	content.Writer
	r    *recordingIngester
	dgst digest.Digest
}

func (w *recordingWriter) Commit(ctx context.Context) error {
	if err := w.Writer.Commit(ctx); err != nil {
		return err
	}
	w.r.added = append(w.r.added, w.dgst)
	return nil
}

type deleter interface {
	Delete(ctx context.Context, dgst digest.Digest) error
}

// rollback deletes the added blobs, newest first (a manifest before the
// blobs it names), and returns cause with any failure to do so joined.
// The caller holds a metadata lease, so the collector is not running; a
// concurrent pull that found one of these blobs present a moment ago and
// skipped it would see it vanish, the same window `hako image prune` has
// for blobs no image names yet.
func (r *recordingIngester) rollback(cause error) error {
	d, ok := r.Ingester.(deleter)
	if !ok {
		return cause
	}
	// The blobs go even when the load was cancelled.
	ctx := context.Background()
	var errs []string
	for i := len(r.added) - 1; i >= 0; i-- {
		if err := d.Delete(ctx, r.added[i]); err != nil && !errors.Is(err, content.ErrNotFound) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w (and removing what it stored: %s)", cause, strings.Join(errs, "; "))
	}
	return cause
}
