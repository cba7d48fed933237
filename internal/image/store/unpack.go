package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/metadata"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/unpack"
)

// UnpackState says where the unpacking of one layer is.
type UnpackState int

const (
	// LayerUnpacking: the layer's blob is in the store and is being
	// applied (a pull may have started applying it while it downloaded).
	LayerUnpacking UnpackState = iota
	// LayerUnpacked: applied, checked against its diffID, committed.
	LayerUnpacked
	// LayerExists: the layer was unpacked already (by an earlier pull, or
	// for another image sharing it); nothing was applied.
	LayerExists
)

// UnpackProgress reports one layer of an unpack.
type UnpackProgress struct {
	Layer   ocispec.Descriptor // the blob, as the manifest lists it
	Index   int                // its position in the manifest, bottom 0
	ChainID digest.Digest      // the committed snapshot's name
	State   UnpackState
}

// Unpacked is an image made ready to run: its record, the platform's
// config descriptor (whose digest is the image ID docker and podman show)
// and the chain ID of its top layer (the parent of a container snapshot).
type Unpacked struct {
	Image   metadata.Image
	Config  ocispec.Descriptor
	ChainID digest.Digest
}

// PullAndUnpack pulls name as Pull does and unpacks its layers into the
// data root's snapshotter, pipelined: layer N is applied once layers
// 0..N-1 are, while later layers still download (layers must be applied
// bottom up, but downloads run in parallel and finish in any order).
// Layer N is read as it downloads when its download started from byte 0
// (a tee of the verified stream, see arrivals.offer), else from the store
// once its blob is committed; either way its snapshot is committed only
// after the blob's digest and the layer's diffID both checked out. A
// layer whose download is retried while it is read so is applied again,
// in a new snapshot, from the committed blob. Download progress goes to
// opts.Progress, unpack progress to progress; the two are serialised with
// each other.
//
// A failure of either side cancels the other and is the error returned.
// Blobs and layer snapshots already complete stay in the store for the
// next pull (the name is recorded only on success); Prune removes them.
func (s *Store) PullAndUnpack(ctx context.Context, name string, opts PullOptions, progress func(UnpackProgress)) (Unpacked, error) {
	ref, err := normalise(name)
	if err != nil {
		return Unpacked{}, err
	}
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return Unpacked{}, err
	}
	release, err := s.Meta.Lease(ctx)
	if err != nil {
		return Unpacked{}, err
	}
	defer release()
	unlock, err := s.snapshotLock(ctx, unix.LOCK_SH)
	if err != nil {
		return Unpacked{}, err
	}
	defer unlock()

	var mu sync.Mutex // serialises the two progress callbacks
	report := func(p UnpackProgress) {
		if progress != nil {
			mu.Lock()
			defer mu.Unlock()
			progress(p)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	blobs := newArrivals()
	manifests := make(chan ocispec.Manifest, 1)
	ropts := remote.PullOptions{
		Store: s.Content, Platform: opts.Platform, Concurrency: opts.Concurrency, StallTimeout: opts.StallTimeout,
		Tee: blobs.offer,
		Manifest: func(m ocispec.Manifest) {
			select {
			case manifests <- m:
			default:
			}
		},
		Progress: func(p remote.Progress) {
			if opts.Progress != nil {
				mu.Lock()
				opts.Progress(p)
				mu.Unlock()
			}
			if p.State == remote.ProgressDone || p.State == remote.ProgressExists {
				blobs.arrived(p.Descriptor.Digest)
			}
		},
	}
	type result struct {
		config ocispec.Descriptor
		chain  digest.Digest
		err    error
	}
	done := make(chan result, 1)
	pulled := make(chan struct{})
	go func() {
		var m ocispec.Manifest
		select {
		case m = <-manifests:
		case <-pulled:
			// The client calls the hook before fetching any layer, so
			// a finished pull has delivered it; be sure rather than hang.
			select {
			case m = <-manifests:
			default:
				done <- result{err: fmt.Errorf("pull %s: the registry client reported no manifest", ref)}
				return
			}
		case <-ctx.Done():
			done <- result{err: context.Cause(ctx)}
			return
		}
		chain, err := s.applyManifest(ctx, sn, m, blobs, report)
		if err != nil {
			cancel(err)
		}
		done <- result{m.Config, chain, err}
	}()
	desc, err := s.client.Pull(ctx, ref, ropts)
	if err != nil {
		cancel(err)
		<-done
		// The first failure is the cause; the other side only saw the
		// cancellation.
		return Unpacked{}, context.Cause(ctx)
	}
	close(pulled)
	blobs.all()
	res := <-done
	if res.err != nil {
		return Unpacked{}, res.err
	}
	p := image.DefaultPlatform()
	if opts.Platform != nil {
		p = *opts.Platform
	}
	rec, err := s.Meta.PutImage(ctx, metadata.Image{Name: ref.String(), Target: desc, Labels: map[string]string{LabelPlatform: image.PlatformString(p)}})
	if err != nil {
		return Unpacked{}, err
	}
	return Unpacked{Image: rec, Config: res.config, ChainID: res.chain}, nil
}

// Unpack unpacks the named image for platform (nil: the one it was pulled
// for, else this host's) from the content store into the snapshotter, if
// it is not unpacked yet: for images loaded from archives or imported, and
// for those whose snapshots were pruned.
func (s *Store) Unpack(ctx context.Context, name string, platform *ocispec.Platform, progress func(UnpackProgress)) (Unpacked, error) {
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return Unpacked{}, err
	}
	unlock, err := s.snapshotLock(ctx, unix.LOCK_SH)
	if err != nil {
		return Unpacked{}, err
	}
	defer unlock()
	return s.unpackLocked(ctx, sn, name, platform, progress)
}

func (s *Store) unpackLocked(ctx context.Context, sn snapshot.Snapshotter, name string, platform *ocispec.Platform, progress func(UnpackProgress)) (Unpacked, error) {
	rec, err := s.Get(ctx, name)
	if err != nil {
		return Unpacked{}, err
	}
	img, err := s.Image(ctx, name, platform)
	if err != nil {
		return Unpacked{}, err
	}
	m, err := img.Manifest(ctx)
	if err != nil {
		return Unpacked{}, fmt.Errorf("image %s: %w", rec.Name, err)
	}
	if progress == nil {
		progress = func(UnpackProgress) {}
	}
	chain, err := s.applyManifest(ctx, sn, m, nil, progress)
	if err != nil {
		return Unpacked{}, fmt.Errorf("unpack %s: %w", rec.Name, err)
	}
	return Unpacked{Image: rec, Config: m.Config, ChainID: chain}, nil
}

// applyManifest unpacks m's layers, whose config is in the content store.
// blobs, if set, is the pull that brings the layers: a layer is read as
// it downloads, or from the store once it is in, and committed only once
// it is in.
func (s *Store) applyManifest(ctx context.Context, sn snapshot.Snapshotter, m ocispec.Manifest, blobs *arrivals, report func(UnpackProgress)) (digest.Digest, error) {
	b, err := image.ReadAll(ctx, image.StoreFetcher{Provider: s.Content}, m.Config, image.MaxConfigSize)
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("config %s: %w: %v", m.Config.Digest, image.ErrInvalidManifest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return "", fmt.Errorf("config %s: %w: %d diff_ids for %d layers", m.Config.Digest, image.ErrInvalidManifest, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	chains := image.ChainIDs(cfg.RootFS.DiffIDs)
	byChain := map[string]int{}
	layers := make([]unpack.Layer, len(m.Layers))
	for i, desc := range m.Layers {
		byChain[chains[i].String()] = i
		layers[i] = unpack.Layer{
			DiffID: cfg.RootFS.DiffIDs[i],
			Open: func(ctx context.Context) (io.ReadCloser, error) {
				if blobs != nil {
					t, err := blobs.take(ctx, desc.Digest)
					if err != nil {
						return nil, err
					}
					if t != nil {
						return &teeReader{ctx: ctx, t: t, desc: desc, store: s.Content, torn: &blobs.torn, stored: func() {
							report(UnpackProgress{Layer: desc, Index: i, ChainID: chains[i], State: LayerUnpacking})
						}}, nil
					}
				}
				ra, err := s.Content.ReaderAt(ctx, desc)
				if err != nil {
					return nil, err
				}
				report(UnpackProgress{Layer: desc, Index: i, ChainID: chains[i], State: LayerUnpacking})
				return readCloser{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
			},
		}
	}
	rs := &reportingSnapshotter{Snapshotter: sn, unpacked: map[string]bool{}, report: func(name string, st UnpackState) {
		if i, ok := byChain[name]; ok {
			report(UnpackProgress{Layer: m.Layers[i], Index: i, ChainID: chains[i], State: st})
		}
	}}
	if blobs != nil {
		// A layer read as it downloads may be applied before its
		// download has committed: its snapshot waits for that.
		rs.ready = func(ctx context.Context, name string) error {
			if i, ok := byChain[name]; ok {
				return blobs.wait(ctx, m.Layers[i].Digest)
			}
			return nil
		}
	}
	for {
		torn := int64(0)
		if blobs != nil {
			torn = blobs.torn.Load()
		}
		chain, err := unpack.ApplyLayers(ctx, rs, layers, unpack.Options{})
		if err == nil || blobs == nil || ctx.Err() != nil || blobs.torn.Load() == torn {
			return chain, err
		}
		// A layer's download broke off while it was read as it
		// arrived, and the download is resumed or retried: its half
		// snapshot is gone, and it is applied again from the committed
		// blob (a tee is taken once, so this ends). The layers below
		// are committed and are not applied again.
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// reportingSnapshotter tells which layers ApplyLayers finds committed
// already (Stat) and which it commits, and holds a commit until ready
// (if set) says the layer's blob is verified and in the store. Only
// ApplyLayers' own goroutine calls Stat and Commit.
type reportingSnapshotter struct {
	snapshot.Snapshotter
	report   func(name string, st UnpackState)
	ready    func(ctx context.Context, name string) error
	unpacked map[string]bool // committed here: not "exists" when ApplyLayers runs again
}

func (r *reportingSnapshotter) Stat(ctx context.Context, key string) (snapshot.Info, error) {
	info, err := r.Snapshotter.Stat(ctx, key)
	if err == nil && info.Kind == snapshot.KindCommitted && !r.unpacked[key] {
		r.report(key, LayerExists)
	}
	return info, err
}

func (r *reportingSnapshotter) Commit(ctx context.Context, name, key string, opts ...snapshot.Opt) error {
	if r.ready != nil {
		if err := r.ready(ctx, name); err != nil {
			return fmt.Errorf("wait for the layer's blob: %w", err)
		}
	}
	err := r.Snapshotter.Commit(ctx, name, key, opts...)
	if err == nil || errors.Is(err, snapshot.ErrAlreadyExists) {
		r.unpacked[name] = true
		r.report(name, LayerUnpacked)
	}
	return err
}
