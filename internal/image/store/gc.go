package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/snapshot"
)

// ErrInUse: the image is the base of a writable snapshot (a container's,
// or one from MountImage).
var ErrInUse = errors.New("image is in use")

// walkChains calls fn with the layer chain IDs (bottom first) of every
// platform of target whose manifest is in the store.
func (s *Store) walkChains(ctx context.Context, target ocispec.Descriptor, fn func([]digest.Digest)) error {
	f := image.StoreFetcher{Provider: s.Content}
	var walk func(d ocispec.Descriptor, depth int) error
	walk = func(d ocispec.Descriptor, depth int) error {
		if depth > 8 {
			return nil
		}
		if _, err := s.Content.Info(ctx, d.Digest); errors.Is(err, content.ErrNotFound) {
			return nil // a platform never pulled
		}
		if image.IsIndex(d.MediaType) {
			children, err := image.Children(ctx, f, d)
			if err != nil {
				return err
			}
			for _, c := range children {
				if err := walk(c, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		img, _, err := image.FromDescriptor(f, d)
		if err != nil || img == nil {
			return nil // not an image (an artifact): no snapshots
		}
		cfg, err := img.Config(ctx)
		if err != nil {
			return err
		}
		fn(image.ChainIDs(cfg.RootFS.DiffIDs))
		return nil
	}
	return walk(target, 0)
}

// neededChains is ChainIDs without the image named except.
func (s *Store) neededChains(ctx context.Context, except string) (map[digest.Digest]bool, error) {
	recs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	keep := map[digest.Digest]bool{}
	for _, r := range recs {
		if r.Name == except {
			continue
		}
		if err := s.walkChains(ctx, r.Target, func(cs []digest.Digest) {
			for _, c := range cs {
				keep[c] = true
			}
		}); err != nil {
			return nil, fmt.Errorf("chain IDs of %s: %w", r.Name, err)
		}
	}
	return keep, nil
}

// snapshotTable is every snapshot by key.
type snapshotTable map[string]snapshot.Info

func readSnapshots(ctx context.Context, sn snapshot.Snapshotter) (snapshotTable, error) {
	t := snapshotTable{}
	err := sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		t[i.Name] = i
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return t, nil
}

// isExtract reports whether key is a layer being unpacked: unpack.ApplyLayers
// names those "extract-<random>-<chain ID>". Outside a pull (which holds
// the snapshot lock shared) one is the leftover of a killed pull.
func isExtract(key string) bool { return strings.HasPrefix(key, "extract-") }

// ancestors returns key's committed parents, nearest first.
func (t snapshotTable) ancestors(key string) []string {
	var out []string
	for p := t[key].Parent; p != "" && len(out) <= len(t); p = t[p].Parent {
		out = append(out, p)
	}
	return out
}

// users are the writable snapshots and views (not layers being unpacked)
// with their committed ancestors: what containers stand on.
func (t snapshotTable) users() map[string][]string {
	u := map[string][]string{}
	for k, i := range t {
		if i.Kind != snapshot.KindCommitted && !isExtract(k) {
			u[k] = t.ancestors(k)
		}
	}
	return u
}

// usersOf lists the writable snapshots standing on the layer chain top.
func (t snapshotTable) usersOf(top digest.Digest) []string {
	var keys []string
	for k, anc := range t.users() {
		for _, a := range anc {
			if a == top.String() {
				keys = append(keys, k)
				break
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// withoutKeptChildren drops from keys those with a child that is not in
// keys (the half-unpacked layer of a killed pull, say): they stay for a
// later prune.
func (t snapshotTable) withoutKeptChildren(keys []string) []string {
	in := map[string]bool{}
	for _, k := range keys {
		in[k] = true
	}
	for changed := true; changed; {
		changed = false
		for k, i := range t {
			if !in[k] && in[i.Parent] {
				delete(in, i.Parent)
				changed = true
			}
		}
	}
	var out []string
	for _, k := range keys {
		if in[k] {
			out = append(out, k)
		}
	}
	return out
}

// removeSnapshots removes keys, children before parents, and returns the
// ones removed with the bytes they held.
func (s *Store) removeSnapshots(ctx context.Context, sn snapshot.Snapshotter, t snapshotTable, keys []string) ([]string, int64, error) {
	depth := func(k string) int { return len(t.ancestors(k)) }
	sort.Slice(keys, func(i, j int) bool {
		if di, dj := depth(keys[i]), depth(keys[j]); di != dj {
			return di > dj
		}
		return keys[i] < keys[j]
	})
	var removed []string
	var size int64
	for _, k := range keys {
		u, _ := sn.Usage(ctx, k)
		if err := sn.Remove(ctx, k); err != nil {
			return removed, size, err
		}
		removed = append(removed, k)
		size += u.Size
	}
	return removed, size, nil
}

// RemoveReport says what RemoveImage removed.
type RemoveReport struct {
	Name      string   // the record removed
	Snapshots []string // layer snapshots no other image or container needed
	Size      int64    // bytes those held
}

// RemoveImage removes the name and then the layer snapshots that only this
// image needed. It refuses with ErrInUse when a writable snapshot stands on
// the image's top layer and no other image has that layer, unless force:
// then the name goes and the snapshots the container needs stay (until a
// prune after the container is gone). Blobs go at the next Prune.
func (s *Store) RemoveImage(ctx context.Context, name string, force bool) (RemoveReport, error) {
	rec, err := s.Get(ctx, name)
	if err != nil {
		return RemoveReport{}, err
	}
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return RemoveReport{}, err
	}
	unlock, err := s.snapshotLock(ctx, unix.LOCK_EX)
	if err != nil {
		return RemoveReport{}, err
	}
	defer unlock()
	others, err := s.neededChains(ctx, rec.Name)
	if err != nil {
		return RemoveReport{}, err
	}
	mine := map[digest.Digest]bool{}
	var tops []digest.Digest
	if err := s.walkChains(ctx, rec.Target, func(cs []digest.Digest) {
		for _, c := range cs {
			mine[c] = true
		}
		if len(cs) > 0 {
			tops = append(tops, cs[len(cs)-1])
		}
	}); err != nil {
		return RemoveReport{}, fmt.Errorf("chain IDs of %s: %w", rec.Name, err)
	}
	t, err := readSnapshots(ctx, sn)
	if err != nil {
		return RemoveReport{}, err
	}
	if !force {
		for _, top := range tops {
			if others[top] {
				continue // another name keeps the image: this is an untag
			}
			if users := t.usersOf(top); len(users) > 0 {
				return RemoveReport{}, fmt.Errorf("%w: mounted as %s; unmount it or use --force", ErrInUse, strings.Join(users, ", "))
			}
		}
	}
	if err := s.Meta.DeleteImage(ctx, rec.Name); err != nil {
		return RemoveReport{}, err
	}
	keep := map[string]bool{}
	for _, anc := range t.users() {
		for _, a := range anc {
			keep[a] = true
		}
	}
	var drop []string
	for c := range mine {
		if _, ok := t[c.String()]; ok && !others[c] && !keep[c.String()] {
			drop = append(drop, c.String())
		}
	}
	r := RemoveReport{Name: rec.Name}
	r.Snapshots, r.Size, err = s.removeSnapshots(ctx, sn, t, t.withoutKeptChildren(drop))
	if err != nil {
		return r, fmt.Errorf("remove snapshots of %s: %w", rec.Name, err)
	}
	return r, nil
}

// SnapshotPruneReport says what PruneSnapshots removed.
type SnapshotPruneReport struct {
	Snapshots []string
	Size      int64
}

// PruneSnapshots removes the layer snapshots that no image (ChainIDs) and
// no writable snapshot needs, and layers left half unpacked by a pull that
// was killed.
func (s *Store) PruneSnapshots(ctx context.Context) (SnapshotPruneReport, error) {
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return SnapshotPruneReport{}, err
	}
	unlock, err := s.snapshotLock(ctx, unix.LOCK_EX)
	if err != nil {
		return SnapshotPruneReport{}, err
	}
	defer unlock()
	need, err := s.neededChains(ctx, "")
	if err != nil {
		return SnapshotPruneReport{}, err
	}
	t, err := readSnapshots(ctx, sn)
	if err != nil {
		return SnapshotPruneReport{}, err
	}
	keep := map[string]bool{}
	for k, anc := range t.users() {
		keep[k] = true
		for _, a := range anc {
			keep[a] = true
		}
	}
	var drop []string
	for k, i := range t {
		switch {
		case isExtract(k):
			drop = append(drop, k)
		case i.Kind == snapshot.KindCommitted && !keep[k] && !need[digest.Digest(k)]:
			drop = append(drop, k)
		}
	}
	var r SnapshotPruneReport
	r.Snapshots, r.Size, err = s.removeSnapshots(ctx, sn, t, drop)
	return r, err
}
