package unpack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/opencontainers/go-digest"
)

// Layer is one layer of an image to unpack.
type Layer struct {
	// DiffID is the digest of the uncompressed layer, from the image
	// config's rootfs.diff_ids.
	DiffID digest.Digest
	// Open returns the layer blob (compressed or not). It is only called
	// when the layer is not unpacked yet.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// LabelUncompressedSize is set on each committed layer snapshot.
const LabelUncompressedSize = "hako.io/uncompressed-size"

// ChainID returns the chain ID of a layer with the given diffID on top of
// layers whose chain ID is parent ("" for the bottom layer), per
// image-spec config.md "Layer ChainID": the bottom layer's chain ID is its
// diffID, each next one sha256(parent + " " + diffID).
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// ApplyLayers unpacks layers, bottom first, into snapshots committed under
// their chain IDs and returns the top chain ID, the parent for a
// container's Prepare. Layers already present (shared with another image)
// are not opened again. Each layer is applied in an active snapshot under
// a unique key and committed only once its diffID checked out, so a
// failure, or a kill, never leaves a committed half layer; two pulls of
// the same image may race, and the loser drops its copy.
func ApplyLayers(ctx context.Context, sn snapshot.Snapshotter, layers []Layer, opts Options) (digest.Digest, error) {
	var chain digest.Digest
	for i, l := range layers {
		if err := l.DiffID.Validate(); err != nil {
			return "", fmt.Errorf("layer %d: diffID %q: %w", i, l.DiffID, err)
		}
		parent := chain
		chain = ChainID(parent, l.DiffID)
		if err := applyLayer(ctx, sn, parent, chain, l, opts); err != nil {
			return "", fmt.Errorf("unpack layer %d (%s): %w", i, l.DiffID, err)
		}
	}
	return chain, nil
}

func applyLayer(ctx context.Context, sn snapshot.Snapshotter, parent, chain digest.Digest, l Layer, opts Options) (err error) {
	info, err := sn.Stat(ctx, chain.String())
	if err == nil {
		if info.Kind != snapshot.KindCommitted {
			return fmt.Errorf("snapshot %s exists but is %s", chain, info.Kind)
		}
		return nil
	}
	if !errors.Is(err, snapshot.ErrNotFound) {
		return err
	}
	key, err := extractKey(chain)
	if err != nil {
		return err
	}
	ms, err := sn.Prepare(ctx, key, parent.String())
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			// A cancelled ctx must not keep the half layer.
			if rerr := sn.Remove(context.WithoutCancel(ctx), key); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	rc, err := l.Open(ctx)
	if err != nil {
		return fmt.Errorf("open blob: %w", err)
	}
	defer rc.Close()
	opts.DiffID = l.DiffID
	_, size, err := ApplyMounts(ctx, ms, rc, opts)
	if err != nil {
		return err
	}
	err = sn.Commit(ctx, chain.String(), key, snapshot.WithLabels(map[string]string{
		LabelUncompressedSize: strconv.FormatInt(size, 10),
	}))
	if errors.Is(err, snapshot.ErrAlreadyExists) {
		return nil // another pull committed it first; ours goes
	}
	if err != nil {
		return err
	}
	committed = true
	return nil
}

func extractKey(chain digest.Digest) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "extract-" + hex.EncodeToString(b[:]) + "-" + chain.String(), nil
}
