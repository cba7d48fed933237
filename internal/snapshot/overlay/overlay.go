// Package overlay is a Snapshotter on overlayfs: each snapshot owns
// <root>/snapshots/<id>/fs (its layer, the upperdir while active) and
// work/ (overlayfs's workdir); committed layers are shared read-only by
// every snapshot above them (kernel Documentation/filesystems/overlayfs.rst).
package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
)

// Snapshotter is the overlayfs snapshotter.
type Snapshotter struct {
	*snapshot.Base
	// indexOff is set when the kernel knows the index option: with the
	// index on, overlayfs records the lower layers in the upper dir and
	// refuses later mounts of the same layers with another upper.
	indexOff bool
}

var _ snapshot.Snapshotter = (*Snapshotter)(nil)

// New opens an overlay snapshotter rooted at root. It fails if the kernel
// has no overlayfs; callers fall back to native.
func New(ctx context.Context, root string) (*Snapshotter, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	b, err := snapshot.NewBase(ctx, root)
	if err != nil {
		return nil, err
	}
	s := &Snapshotter{Base: b}
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		s.indexOff = true
	}
	b.Populate = s.populate
	b.MountsFor = s.mounts
	return s, nil
}

// Supported reports whether overlayfs is available, per /proc/filesystems.
func Supported() error {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("check overlayfs: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == "overlay" {
			return nil
		}
	}
	return fmt.Errorf("overlayfs is not available on this kernel")
}

func (s *Snapshotter) populate(_ context.Context, dir string, rec *snapshot.Record, _ []*snapshot.Record) error {
	if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
		return err
	}
	if rec.Kind == snapshot.KindActive {
		if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (s *Snapshotter) fs(id string) string { return filepath.Join(s.Dir(id), "fs") }

// mounts describes rec: an active snapshot without parent is a plain rw
// bind of its fs, one with parents an overlay with its fs as upperdir.
// A view of one layer is a read-only bind of that layer (cheaper than an
// overlay and what containerd does); of several, an overlay with
// lowerdirs only, which overlayfs mounts read-only.
func (s *Snapshotter) mounts(rec *snapshot.Record, chain []*snapshot.Record) []mount.Mount {
	if len(chain) == 0 {
		opts := []string{"rbind", "rw"}
		if rec.Kind == snapshot.KindView {
			opts = []string{"rbind", "ro"}
		}
		return []mount.Mount{{Type: "bind", Source: s.fs(rec.ID), Options: opts}}
	}
	if rec.Kind == snapshot.KindView && len(chain) == 1 {
		return []mount.Mount{{Type: "bind", Source: s.fs(chain[0].ID), Options: []string{"rbind", "ro"}}}
	}
	lowers := make([]string, len(chain))
	for i, p := range chain {
		lowers[i] = s.fs(p.ID)
	}
	var opts []string
	if s.indexOff {
		opts = append(opts, "index=off")
	}
	if rec.Kind == snapshot.KindActive {
		opts = append(opts, "upperdir="+s.fs(rec.ID), "workdir="+filepath.Join(s.Dir(rec.ID), "work"))
	} else {
		opts = append(opts, "ro")
	}
	opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	return []mount.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}
