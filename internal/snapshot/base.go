package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hako-runtime/hako/internal/mount"
	"golang.org/x/sys/unix"
)

// Base implements the bookkeeping that overlay/ and native/ share: the
// metadata Store and one directory per snapshot under <root>/snapshots/<id>.
// An implementation supplies how a new snapshot's directory is filled and
// which mounts realise a snapshot.
type Base struct {
	root  string
	store *Store
	// Populate fills dir (<root>/snapshots/<id>, already created) for a
	// new snapshot rec whose ancestors, nearest first, are chain.
	Populate func(ctx context.Context, dir string, rec *Record, chain []*Record) error
	// MountsFor returns the mounts of rec given its ancestors.
	MountsFor func(rec *Record, chain []*Record) []mount.Mount
}

// NewBase opens the snapshotter root, creating it if needed, and removes
// directories a crash left without metadata.
func NewBase(ctx context.Context, root string) (*Base, error) {
	if err := os.MkdirAll(filepath.Join(root, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("create snapshotter root: %w", err)
	}
	st, err := OpenStore(root)
	if err != nil {
		return nil, err
	}
	b := &Base{root: root, store: st}
	if err := b.cleanup(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Dir is the directory of the snapshot with the given ID.
func (b *Base) Dir(id string) string { return filepath.Join(b.root, "snapshots", id) }

// cleanup removes snapshot directories that no record names: the leftovers
// of a process killed between creating a directory and writing the
// metadata, or between removing a record and deleting its data. IDs only
// grow, so a removed ID is never handed out again while its data goes.
func (b *Base) cleanup(ctx context.Context) error {
	var stale []string
	err := b.store.View(ctx, func(t *Table) error {
		ents, err := os.ReadDir(filepath.Join(b.root, "snapshots"))
		if err != nil {
			return err
		}
		ids := t.IDs()
		for _, e := range ents {
			if !ids[e.Name()] {
				stale = append(stale, b.Dir(e.Name()))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("clean snapshot dirs: %w", err)
	}
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clean snapshot dirs: %w", err)
		}
	}
	return nil
}

// Stat implements Snapshotter.
func (b *Base) Stat(ctx context.Context, key string) (info Info, err error) {
	err = b.store.View(ctx, func(t *Table) error {
		info, err = t.Info(key)
		return err
	})
	return info, err
}

// Mounts implements Snapshotter.
func (b *Base) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	var ms []mount.Mount
	err := b.store.View(ctx, func(t *Table) error {
		rec, err := t.Get(key)
		if err != nil {
			return err
		}
		if rec.Kind == KindCommitted {
			return fmt.Errorf("%w: mounts of committed snapshot %q: View it instead", ErrFailedPrecondition, key)
		}
		chain, err := t.Chain(key)
		if err != nil {
			return err
		}
		ms = b.MountsFor(rec, chain)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mounts of snapshot %q: %w", key, err)
	}
	return ms, nil
}

// Prepare implements Snapshotter.
func (b *Base) Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error) {
	return b.create(ctx, KindActive, key, parent, opts)
}

// View implements Snapshotter.
func (b *Base) View(ctx context.Context, key, parent string, opts ...Opt) ([]mount.Mount, error) {
	return b.create(ctx, KindView, key, parent, opts)
}

func (b *Base) create(ctx context.Context, kind Kind, key, parent string, opts []Opt) ([]mount.Mount, error) {
	var ms []mount.Mount
	var dir string
	err := b.store.Update(ctx, func(t *Table) error {
		var rec *Record
		for {
			var err error
			rec, err = t.Create(kind, key, parent, opts)
			if err != nil {
				return err
			}
			dir = b.Dir(rec.ID)
			err = os.Mkdir(dir, 0o700)
			if err == nil {
				break
			}
			// EEXIST: the data of a create whose metadata write
			// failed, not yet cleaned; take the next ID.
			delete(t.Snapshots, key)
			dir = ""
			if !errors.Is(err, os.ErrExist) {
				return err
			}
		}
		chain, err := t.Chain(key)
		if err != nil {
			return err
		}
		if err := b.Populate(ctx, dir, rec, chain); err != nil {
			return errors.Join(err, os.RemoveAll(dir))
		}
		ms = b.MountsFor(rec, chain)
		return nil
	})
	if err != nil {
		if dir != "" {
			// The metadata write may have failed after Populate.
			_ = os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("create %s snapshot %q on %q: %w", kind, key, parent, err)
	}
	return ms, nil
}

// Commit implements Snapshotter.
func (b *Base) Commit(ctx context.Context, name, key string, opts ...Opt) error {
	err := b.store.Update(ctx, func(t *Table) error {
		_, err := t.Commit(name, key, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit snapshot %q as %q: %w", key, name, err)
	}
	return nil
}

// Remove implements Snapshotter. The data is deleted after the record, so
// the lock is not held through a long removal; a crash in between leaves
// a directory that the next NewBase cleans up.
func (b *Base) Remove(ctx context.Context, key string) error {
	var id string
	err := b.store.Update(ctx, func(t *Table) error {
		rec, err := t.Remove(key)
		if err != nil {
			return err
		}
		id = rec.ID
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	if err := os.RemoveAll(b.Dir(id)); err != nil {
		return fmt.Errorf("remove snapshot %q data: %w", key, err)
	}
	return nil
}

// Walk implements Snapshotter. fn runs after the lock is released, so it
// may call back into the snapshotter.
func (b *Base) Walk(ctx context.Context, fn WalkFunc) error {
	var infos []Info
	err := b.store.View(ctx, func(t *Table) error {
		for _, k := range t.Keys() {
			info, err := t.Info(k)
			if err != nil {
				return err
			}
			infos = append(infos, info)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := fn(ctx, info); err != nil {
			return err
		}
	}
	return nil
}

// Usage implements Snapshotter by walking the snapshot's directory. It
// runs without the lock: a snapshot removed meanwhile gives an error.
func (b *Base) Usage(ctx context.Context, key string) (Usage, error) {
	var id string
	err := b.store.View(ctx, func(t *Table) error {
		rec, err := t.Get(key)
		if err != nil {
			return err
		}
		id = rec.ID
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("usage of snapshot %q: %w", key, err)
	}
	var u Usage
	seen := map[uint64]bool{}
	err = filepath.WalkDir(b.Dir(id), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		u.Inodes++
		u.Size += st.Blocks * 512 // st_blocks counts 512-byte units (stat(2))
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("usage of snapshot %q: %w", key, err)
	}
	return u, nil
}

// Close implements Snapshotter.
func (b *Base) Close() error { return nil }
