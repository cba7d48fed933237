// Package content is hako's content-addressed blob store, shaped like
// containerd's content.Store: blobs are named by digest, every write is
// verified against the expected digest and size while it streams in, and a
// blob becomes visible only once it is complete and verified.
//
// The interfaces below are what consumers (the registry client, the unpacker,
// image export) need; Local is the on-disk implementation and contenttest is
// the suite any implementation must pass.
package content

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Errors are classified once here; callers use errors.Is.
var (
	ErrNotFound       = errors.New("content not found")
	ErrAlreadyExists  = errors.New("content already exists")
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrInvalid        = errors.New("invalid argument")
)

// Info describes a committed blob.
type Info struct {
	Digest    digest.Digest
	Size      int64
	CreatedAt time.Time
}

// ReaderAt reads a committed blob at random offsets (the unpacker and image
// export read the same blob more than once, and tar indexes seek).
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Writer ingests one blob whose digest and size are known in advance (from a
// descriptor). Bytes are hashed as they are written; Commit makes the blob
// visible only when size and digest match, and discards the data otherwise.
// Close without Commit keeps what was written so that a later Writer for the
// same digest can resume from Offset (OCI distribution-spec lets a client
// fetch the rest with a Range request).
type Writer interface {
	io.Writer
	// Offset is how many bytes the writer already holds: non-zero when an
	// earlier, interrupted ingest of the same digest is being resumed.
	Offset() int64
	// Reset discards everything held so far; use it when the source cannot
	// resume from Offset (a registry answering a Range request with 200).
	Reset() error
	// Commit verifies size and digest and publishes the blob. On a mismatch
	// the data is discarded and the error wraps ErrSizeMismatch or
	// ErrDigestMismatch.
	Commit(ctx context.Context) error
	// Close releases the writer (and the per-digest lock); it is safe after
	// Commit and may be called more than once.
	Close() error
}

// Provider gives read access to committed blobs.
type Provider interface {
	ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error)
}

// Ingester opens writers. Writer blocks while another writer (in this or
// another process) holds the same digest, so a blob is downloaded once; it
// returns an error wrapping ErrAlreadyExists when the blob is (or has just
// become) present.
type Ingester interface {
	Writer(ctx context.Context, desc ocispec.Descriptor) (Writer, error)
}

// WalkFunc is called for each committed blob; returning an error stops Walk.
type WalkFunc func(Info) error

// Manager inspects and removes committed blobs.
type Manager interface {
	Info(ctx context.Context, dgst digest.Digest) (Info, error)
	Walk(ctx context.Context, fn WalkFunc) error
	Delete(ctx context.Context, dgst digest.Digest) error
}

// Store is the whole blob store.
type Store interface {
	Provider
	Ingester
	Manager
}
