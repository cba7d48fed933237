package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadBlob reads a whole committed blob into memory; for manifests and
// configs, which are small. The descriptor's size is the limit.
func ReadBlob(ctx context.Context, p Provider, desc ocispec.Descriptor) ([]byte, error) {
	ra, err := p.ReaderAt(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return nil, fmt.Errorf("read blob %s: %w: stored %d bytes, descriptor says %d", desc.Digest, ErrSizeMismatch, ra.Size(), desc.Size)
	}
	buf := make([]byte, ra.Size())
	if _, err := ra.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	return buf, nil
}

// WriteBlob stores the content of r under desc, verifying it. r is read from
// the start: a partial ingest left by an interrupted writer is discarded
// (use a Writer directly to resume). A blob that is already present is not
// an error: WriteBlob then reads nothing. ctx cancels the wait for another
// writer of the same digest; once started, the blob is copied until r ends
// (a network reader stops with its own context) and committed even if ctx
// was cancelled meanwhile: it is whole and verified, and a caller that
// stops between blobs (an interrupted load rolls back whole blobs) must
// not be left with a partial ingest.
func WriteBlob(ctx context.Context, ing Ingester, desc ocispec.Descriptor, r io.Reader) error {
	w, err := ing.Writer(ctx, desc)
	if err != nil {
		if errors.Is(err, ErrAlreadyExists) {
			return nil
		}
		return err
	}
	defer w.Close()
	if w.Offset() != 0 {
		if err := w.Reset(); err != nil {
			return err
		}
	}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("write blob %s: %w", desc.Digest, err)
	}
	return w.Commit(context.WithoutCancel(ctx))
}
