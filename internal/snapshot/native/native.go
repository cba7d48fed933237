// Package native is a Snapshotter that copies: an active snapshot starts
// as a full copy of its parent's tree, so it works on any filesystem,
// where overlayfs cannot (an overlay or network filesystem below the data
// root, or a kernel without it). Each committed snapshot holds the whole
// merged tree; a view of a committed snapshot binds it read-only instead
// of copying it.
package native

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
)

// Snapshotter is the copying snapshotter.
type Snapshotter struct {
	*snapshot.Base
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens a native snapshotter rooted at root.
func New(ctx context.Context, root string) (*Snapshotter, error) {
	b, err := snapshot.NewBase(ctx, root)
	if err != nil {
		return nil, err
	}
	s := &Snapshotter{Base: b}
	b.Populate = s.populate
	b.MountsFor = s.mounts
	return s, nil
}

func (s *Snapshotter) fs(id string) string { return filepath.Join(s.Dir(id), "fs") }

func (s *Snapshotter) populate(ctx context.Context, dir string, rec *snapshot.Record, chain []*snapshot.Record) error {
	fs := filepath.Join(dir, "fs")
	if rec.Kind == snapshot.KindView || len(chain) == 0 {
		return os.Mkdir(fs, 0o755)
	}
	if err := CopyTree(ctx, fs, s.fs(chain[0].ID)); err != nil {
		return fmt.Errorf("copy parent %s: %w", chain[0].ID, err)
	}
	return nil
}

func (s *Snapshotter) mounts(rec *snapshot.Record, chain []*snapshot.Record) []mount.Mount {
	if rec.Kind == snapshot.KindView {
		src := s.fs(rec.ID)
		if len(chain) > 0 {
			src = s.fs(chain[0].ID)
		}
		return []mount.Mount{{Type: "bind", Source: src, Options: []string{"rbind", "ro"}}}
	}
	return []mount.Mount{{Type: "bind", Source: s.fs(rec.ID), Options: []string{"rbind", "rw"}}}
}
