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
//
// While a layer is applied, the next one is opened and inflated ahead
// (up to prefetchChunks MiB): inflating is most of an unpack's CPU time,
// and this way two layers inflate at once on two cores. Open may block
// until the blob is there (a pull that unpacks as layers arrive).
func ApplyLayers(ctx context.Context, sn snapshot.Snapshotter, layers []Layer, opts Options) (digest.Digest, error) {
	chains := make([]digest.Digest, len(layers))
	var chain digest.Digest
	for i, l := range layers {
		if err := l.DiffID.Validate(); err != nil {
			return "", fmt.Errorf("layer %d: diffID %q: %w", i, l.DiffID, err)
		}
		chain = ChainID(chain, l.DiffID)
		chains[i] = chain
	}
	var next *prefetch
	defer func() {
		if next != nil {
			next.stop()
		}
	}()
	// nextPresent: the look-ahead found layer i+1 committed already, so
	// it is not asked again (a committed snapshot stays; asking twice
	// would only report it twice to a snapshotter that reports).
	nextPresent := false
	for i, l := range layers {
		cur, known := next, nextPresent
		next, nextPresent = nil, false
		var parent digest.Digest
		if i > 0 {
			parent = chains[i-1]
		}
		err := func() error {
			if cur != nil {
				defer cur.stop()
			}
			if known {
				return nil
			}
			done, err := present(ctx, sn, chains[i])
			if err != nil || done {
				return err
			}
			if cur != nil {
				// Not the next one before this one opened: for a pull,
				// that would wait for downloads that may never come.
				if _, err := cur.stream(); err != nil {
					return err
				}
			}
			if i+1 < len(layers) {
				done, err := present(ctx, sn, chains[i+1])
				if err == nil && !done {
					next = startPrefetch(ctx, layers[i+1])
				}
				nextPresent = err == nil && done
			}
			return applyLayer(ctx, sn, parent, chains[i], l, cur, opts)
		}()
		if err != nil {
			return "", fmt.Errorf("unpack layer %d (%s): %w", i, l.DiffID, err)
		}
	}
	return chain, nil
}

// present reports whether the layer snapshot chain is committed.
func present(ctx context.Context, sn snapshot.Snapshotter, chain digest.Digest) (bool, error) {
	info, err := sn.Stat(ctx, chain.String())
	if err == nil {
		if info.Kind != snapshot.KindCommitted {
			return false, fmt.Errorf("snapshot %s exists but is %s", chain, info.Kind)
		}
		return true, nil
	}
	if errors.Is(err, snapshot.ErrNotFound) {
		return false, nil
	}
	return false, err
}

// applyLayer applies l in a new active snapshot on parent and commits it
// as chain. src, if not nil, is l already opened and inflating.
func applyLayer(ctx context.Context, sn snapshot.Snapshotter, parent, chain digest.Digest, l Layer, src *prefetch, opts Options) (err error) {
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
	opts.DiffID = l.DiffID
	var size int64
	if src != nil {
		r, err := src.stream()
		if err != nil {
			return err
		}
		if opts, err = opts.withDefaults(); err != nil {
			return err
		}
		_, size, err = applyMounts(ms, opts, func(root string, opts Options) (digest.Digest, int64, error) {
			return applyTar(ctx, root, r, opts)
		})
		if err != nil {
			return err
		}
	} else {
		rc, err := l.Open(ctx)
		if err != nil {
			return fmt.Errorf("open blob: %w", err)
		}
		defer rc.Close()
		if _, size, err = ApplyMounts(ctx, ms, rc, opts); err != nil {
			return err
		}
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

// prefetch is a layer opened and inflating ahead of its turn.
type prefetch struct {
	cancel   context.CancelFunc
	ready    chan struct{} // closed once Open and the decompressor returned
	rc       io.ReadCloser
	closeDec func()
	ra       *readAhead
	err      error
}

func startPrefetch(ctx context.Context, l Layer) *prefetch {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetch{cancel: cancel, ready: make(chan struct{})}
	go func() {
		defer close(p.ready)
		rc, err := l.Open(ctx)
		if err != nil {
			p.err = fmt.Errorf("open blob: %w", err)
			return
		}
		dec, closeDec, err := decompress(&ctxReader{ctx: ctx, r: rc})
		if err != nil {
			rc.Close()
			p.err = err
			return
		}
		p.rc, p.closeDec = rc, closeDec
		p.ra = newReadAhead(dec, prefetchChunks)
	}()
	return p
}

// stream waits until the layer is open and returns its uncompressed
// stream.
func (p *prefetch) stream() (io.Reader, error) {
	<-p.ready
	return p.ra, p.err
}

// stop ends the read-ahead and closes the blob.
func (p *prefetch) stop() {
	p.cancel()
	<-p.ready
	if p.ra != nil {
		p.ra.stop()
		p.closeDec()
		p.rc.Close()
	}
}

func extractKey(chain digest.Digest) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "extract-" + hex.EncodeToString(b[:]) + "-" + chain.String(), nil
}
