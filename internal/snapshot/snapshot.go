// Package snapshot defines hako's Snapshotter, after containerd's
// snapshots.Snapshotter: a snapshot is a filesystem tree named by a key,
// either active (writable, from Prepare), a view (read-only, from View) or
// committed (immutable, from Commit, usable as a parent). A snapshot is
// handed out as the []mount.Mount that realise it, never as a path.
//
// An image is unpacked by preparing an active snapshot on the previous
// layer's committed one, applying the layer to its mounts and committing
// it under the layer's chain ID; a container's rootfs is one more active
// snapshot on top. The implementations are overlay/ (one directory per
// layer, shared between images) and native/ (full copies, for filesystems
// overlayfs cannot use).
package snapshot

import (
	"context"
	"errors"
	"time"

	"github.com/hako-runtime/hako/internal/mount"
)

// Kind is the state of a snapshot.
type Kind uint8

const (
	KindUnknown Kind = iota
	// KindView is read-only and cannot be committed.
	KindView
	// KindActive is writable and can be committed once.
	KindActive
	// KindCommitted is immutable and can be a parent.
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "view"
	case KindActive:
		return "active"
	case KindCommitted:
		return "committed"
	}
	return "unknown"
}

// Info describes a snapshot.
type Info struct {
	Kind    Kind
	Name    string // the key
	Parent  string // the key of the committed parent, "" for none
	Labels  map[string]string
	Created time.Time
	Updated time.Time
}

// Opt sets optional properties of a snapshot being created or committed.
type Opt func(*Info) error

// WithLabels adds labels to the snapshot (for example the layer digest,
// or a GC reference); later options win.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) error {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range labels {
			i.Labels[k] = v
		}
		return nil
	}
}

// Usage is the space a snapshot takes.
type Usage struct {
	Size   int64 // bytes of allocated blocks
	Inodes int64 // files, directories, links (a hardlinked inode once)
}

// WalkFunc is called for each snapshot by Walk.
type WalkFunc func(context.Context, Info) error

// Snapshotter stores snapshots. Implementations are safe for concurrent
// use by goroutines and by several processes sharing one root directory.
type Snapshotter interface {
	// Stat returns the snapshot's Info, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Mounts returns the mounts of an active snapshot or view.
	Mounts(ctx context.Context, key string) ([]mount.Mount, error)
	// Prepare creates an active snapshot on parent ("" for an empty one)
	// and returns its mounts.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// View creates a read-only snapshot of parent and returns its mounts.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error)
	// Commit turns the active snapshot key into the committed snapshot
	// name; key is gone afterwards. Nothing may still be mounted on it.
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove deletes a snapshot and its data. It fails with
	// ErrFailedPrecondition while other snapshots have it as parent.
	Remove(ctx context.Context, key string) error
	// Walk calls fn for each snapshot, in key order.
	Walk(ctx context.Context, fn WalkFunc) error
	// Usage returns the disk space the snapshot's own data takes: for
	// overlay its layer, for native its whole tree.
	Usage(ctx context.Context, key string) (Usage, error)
	// Close releases resources held by the snapshotter.
	Close() error
}

// Errors, classified once here; test with errors.Is.
var (
	ErrNotFound           = errors.New("snapshot not found")
	ErrAlreadyExists      = errors.New("snapshot already exists")
	ErrFailedPrecondition = errors.New("snapshot precondition failed")
	ErrInvalidArgument    = errors.New("invalid snapshot argument")
)
