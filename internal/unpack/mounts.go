package unpack

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/opencontainers/go-digest"
)

// ApplyMounts applies a layer to the active snapshot described by mounts,
// as a snapshotter's Prepare returns them. opts.Whiteouts is chosen here:
//   - a single bind mount: the layer goes straight into its source
//     directory, the merged tree, with native whiteouts;
//   - a single overlay mount with an upperdir: the layer goes into the
//     upperdir with overlay whiteouts, no mount needed (containerd does
//     the same);
//   - anything else is mounted on a temporary directory and applied there
//     with native whiteouts (the filesystem records deletions itself).
func ApplyMounts(ctx context.Context, mounts []mount.Mount, r io.Reader, opts Options) (digest.Digest, int64, error) {
	return applyMounts(mounts, opts, func(root string, opts Options) (digest.Digest, int64, error) {
		return Apply(ctx, root, r, opts)
	})
}

// applyMounts picks the directory and whiteout mode for mounts, as
// ApplyMounts describes, and calls apply there.
func applyMounts(mounts []mount.Mount, opts Options, apply func(root string, opts Options) (digest.Digest, int64, error)) (digest.Digest, int64, error) {
	if len(mounts) == 1 {
		m := mounts[0]
		switch {
		case m.Type == "bind" && m.Target == "":
			if m.ReadOnly() {
				return "", 0, fmt.Errorf("apply layer: bind mount of %s is read-only", m.Source)
			}
			opts.Whiteouts = WhiteoutNative
			return apply(m.Source, opts)
		case m.Type == "overlay" && m.Target == "":
			if upper := overlayOption(m, "upperdir"); upper != "" {
				opts.Whiteouts = WhiteoutOverlay
				opts.Lowers = nil
				if l := overlayOption(m, "lowerdir"); l != "" {
					opts.Lowers = strings.Split(l, ":")
				}
				return apply(upper, opts)
			}
		}
	}
	var (
		d    digest.Digest
		size int64
	)
	err := mount.WithTempMount(mounts, func(root string) error {
		opts.Whiteouts = WhiteoutNative
		var err error
		d, size, err = apply(root, opts)
		return err
	})
	return d, size, err
}

func overlayOption(m mount.Mount, key string) string {
	for _, o := range m.Options {
		if v, ok := strings.CutPrefix(o, key+"="); ok {
			return v
		}
	}
	return ""
}
