package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
)

// ProgressState says where one blob of a pull is.
type ProgressState int

const (
	ProgressWaiting     ProgressState = iota // queued, or waiting for another writer of the digest
	ProgressDownloading                      // bytes arriving; Done counts them (including resumed ones)
	ProgressExists                           // already in the store, nothing fetched
	ProgressDone                             // fetched, verified, committed
)

// Progress reports one blob (the config or a layer) of a pull.
type Progress struct {
	Descriptor ocispec.Descriptor
	State      ProgressState
	Done       int64
	Total      int64
}

// PullStore is what Pull needs of a content store.
type PullStore interface {
	content.Ingester
	content.Provider
}

// PullOptions configures Pull.
type PullOptions struct {
	Store PullStore // required
	// Platform selects from an index; nil means image.DefaultPlatform().
	Platform *ocispec.Platform
	// Concurrency bounds the layers fetched at once; 0 means 3 (docker's
	// max-concurrent-downloads default).
	Concurrency int
	// Progress, if set, is called as blobs advance; calls are serialised,
	// so it needs no locking of its own, and must not block for long.
	Progress func(Progress)
	// StallTimeout, if positive, abandons a blob stream that delivers no
	// byte for that long and resumes it with a new request (within the
	// client's retry budget), like the kubelet's image pull progress
	// deadline; a stuck connection otherwise hangs a pull for ever.
	StallTimeout time.Duration
	// Manifest, if set, is called with the image manifest once its config
	// is in the store and checked, before any layer is fetched: a caller
	// that unpacks layers while later ones download learns their order
	// and diffIDs here.
	Manifest func(ocispec.Manifest)
	// Tee, if set, is asked for a Tee when a layer's download starts at
	// its first byte (not when it resumes an earlier pull's partial
	// ingest): an unpacker can read the layer as it arrives instead of
	// after its commit. nil means no tee for this layer.
	Tee func(ocispec.Descriptor) Tee
}

// Tee receives a layer's bytes as they are downloaded (PullOptions.Tee).
type Tee interface {
	// Write is handed each chunk, in order from byte 0, right after the
	// store took it. It must not block (the download would wait) and
	// must not keep p.
	Write(p []byte)
	// Close ends the tee, once: with nil when the blob was verified and
	// committed, so the bytes written were exactly the blob's; else with
	// why the stream stopped. A retried or resumed download closes the
	// tee with its error and carries on without it.
	Close(err error)
}

// ErrStalled is the cause of a blob stream abandoned by StallTimeout.
var ErrStalled = errors.New("no progress")

// Pull fetches the image ref names into the store: manifests (the index, if
// any, and the manifest for the platform), config and layers, every blob
// verified. Layers are fetched in parallel and resume where an interrupted
// earlier pull stopped. Manifests are stored last, so a manifest in the
// store means every blob it names is there too.
//
// It returns the descriptor ref resolved to (an index for a multi-platform
// image: the digest a user would pin); image.ResolveImage with an
// image.StoreFetcher and the same platform gives the pulled image from it.
func (c *Client) Pull(ctx context.Context, ref image.Reference, opts PullOptions) (ocispec.Descriptor, error) {
	if opts.Store == nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: no content store", ref)
	}
	platform := image.DefaultPlatform()
	if opts.Platform != nil {
		platform = *opts.Platform
	}
	repo, err := c.Repository(ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	top, err := repo.Resolve(ctx)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
	}

	// Walk from the resolved descriptor through any index to the manifest,
	// keeping the verified documents to store at the end.
	type doc struct {
		desc ocispec.Descriptor
		data []byte
	}
	var docs []doc
	var manifest ocispec.Manifest
	cur := top
	for depth := 0; ; depth++ {
		if depth > 4 {
			return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w: indexes nested too deep", ref, image.ErrInvalidManifest)
		}
		data, err := image.ReadAll(ctx, repo, cur, image.MaxManifestSize)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
		}
		docs = append(docs, doc{cur, data})
		if image.IsIndex(cur.MediaType) {
			idx, err := image.ParseIndex(data, cur.MediaType)
			if err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("pull %s: index %s: %w", ref, cur.Digest, err)
			}
			if cur, err = image.SelectManifest(platform, idx.Manifests); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
			}
			continue
		}
		if manifest, err = image.ParseManifest(data, cur.MediaType); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("pull %s: manifest %s: %w", ref, cur.Digest, err)
		}
		break
	}

	// An OCI artifact (a signature, a Helm chart) is a manifest too; it is
	// not something to run (image-spec manifest.md, config.mediaType).
	if mt := manifest.Config.MediaType; mt != ocispec.MediaTypeImageConfig && mt != image.MediaTypeDockerConfig {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w: config media type %q: not a container image", ref, image.ErrUnsupportedMedia, mt)
	}
	p := &progress{fn: opts.Progress, stall: opts.StallTimeout}
	// The config first: it is small, and it must agree with the manifest on
	// the number of layers (image-spec config.md, rootfs.diff_ids).
	if manifest.Config.Size > image.MaxConfigSize {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: config %s: %w: %d bytes", ref, manifest.Config.Digest, image.ErrTooLarge, manifest.Config.Size)
	}
	if err := c.fetchBlob(ctx, repo, opts.Store, manifest.Config, p, nil); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: config: %w", ref, err)
	}
	if err := c.checkConfig(ctx, opts.Store, manifest, platform, opts.Platform != nil); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	if opts.Manifest != nil {
		opts.Manifest(manifest)
	}
	if err := c.fetchLayers(ctx, repo, opts.Store, manifest.Layers, opts.Concurrency, p, opts.Tee); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	for i := len(docs) - 1; i >= 0; i-- {
		if err := content.WriteBlob(ctx, opts.Store, docs[i].desc, bytes.NewReader(docs[i].data)); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("pull %s: store manifest %s: %w", ref, docs[i].desc.Digest, err)
		}
	}
	return top, nil
}

// checkConfig holds the config against the manifest, and against the
// platform when the image did not come through an index: a platform asked
// for explicitly must match (as containerd does); the host's default only
// warns, since some single-platform images leave the field wrong.
func (c *Client) checkConfig(ctx context.Context, store content.Provider, m ocispec.Manifest, want ocispec.Platform, explicit bool) error {
	b, err := content.ReadBlob(ctx, store, m.Config)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("config %s: %w: %v", m.Config.Digest, image.ErrInvalidManifest, err)
	}
	if n := len(cfg.RootFS.DiffIDs); n != len(m.Layers) {
		return fmt.Errorf("config %s: %w: %d diff_ids for %d layers", m.Config.Digest, image.ErrInvalidManifest, n, len(m.Layers))
	}
	have := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if have.OS != "" && have.Architecture != "" && image.PlatformMatch(want, have) == 0 {
		if explicit {
			return fmt.Errorf("%w: image is for %s, %s was asked for", image.ErrNoMatchingPlatform, image.PlatformString(have), image.PlatformString(want))
		}
		c.log.Warn("image platform differs from this host's", "image", image.PlatformString(have), "host", image.PlatformString(want))
	}
	return nil
}

// fetchLayers fetches layers with n workers; the first failure cancels the
// rest. (Workers, not a goroutine per layer: a 4 MiB manifest can list
// tens of thousands of layers.)
func (c *Client) fetchLayers(ctx context.Context, repo *Repository, store content.Ingester, layers []ocispec.Descriptor, n int, p *progress, tee func(ocispec.Descriptor) Tee) error {
	if n <= 0 {
		n = 3
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, l := range layers {
		p.report(Progress{Descriptor: l, State: ProgressWaiting, Total: l.Size})
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, len(layers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := c.fetchBlob(ctx, repo, store, layers[i], p, tee); err != nil {
					cancel(fmt.Errorf("layer %d: %w", i, err))
				}
			}
		}()
	}
feed:
	for i := range layers {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// fetchBlob streams one blob into the store, resuming a partial ingest with
// a Range request and retrying a stream that breaks off mid-way (the
// registry's bytes so far are kept). Size and digest are verified by the
// store's Writer; a mismatch discards the data. newTee, if set, may tee
// a download that starts at byte 0 (PullOptions.Tee); the tee ends with
// the first attempt that fails, or with the commit.
func (c *Client) fetchBlob(ctx context.Context, repo *Repository, store content.Ingester, desc ocispec.Descriptor, p *progress, newTee func(ocispec.Descriptor) Tee) (err error) {
	w, err := store.Writer(ctx, desc)
	if errors.Is(err, content.ErrAlreadyExists) {
		p.report(Progress{Descriptor: desc, State: ProgressExists, Done: desc.Size, Total: desc.Size})
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	var tee Tee
	if newTee != nil && w.Offset() == 0 {
		tee = newTee(desc)
	}
	defer func() {
		if tee != nil {
			tee.Close(err)
		}
	}()
	for attempt := 0; ; attempt++ {
		err := c.copyBlob(ctx, repo, w, desc, p, tee)
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, content.ErrSizeMismatch) || errors.Is(err, content.ErrDigestMismatch) || attempt >= c.retries {
			return err
		}
		if tee != nil {
			// Only a stream from byte 0 without a break is teed: its
			// reader falls back to the committed blob.
			tee.Close(fmt.Errorf("blob %s: download resumed: %w", desc.Digest, err))
			tee = nil
		}
		c.log.Debug("blob stream broke off, resuming", "digest", desc.Digest, "offset", w.Offset(), "error", err)
		if err := c.sleep(ctx, attempt, 0); err != nil {
			return err
		}
	}
	if err := w.Commit(ctx); err != nil {
		return err
	}
	p.report(Progress{Descriptor: desc, State: ProgressDone, Done: desc.Size, Total: desc.Size})
	return nil
}

func (c *Client) copyBlob(parent context.Context, repo *Repository, w content.Writer, desc ocispec.Descriptor, p *progress, tee Tee) (err error) {
	ctx := parent
	if p.stall > 0 {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(parent)
		defer cancel(nil)
		watchdog := time.AfterFunc(p.stall, func() { cancel(ErrStalled) })
		defer watchdog.Stop()
		defer func() {
			if err != nil && parent.Err() == nil && errors.Is(context.Cause(ctx), ErrStalled) {
				err = fmt.Errorf("blob %s: %w for %s at byte %d", desc.Digest, ErrStalled, p.stall, w.Offset())
			}
		}()
		w = &stallWriter{Writer: w, watchdog: watchdog, stall: p.stall}
	}
	rc, start, err := repo.FetchBlob(ctx, desc, w.Offset())
	if err != nil {
		return err
	}
	defer rc.Close()
	if start != w.Offset() {
		if err := w.Reset(); err != nil {
			return err
		}
	}
	buf := make([]byte, 128<<10)
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if tee != nil {
				tee.Write(buf[:n])
			}
			p.report(Progress{Descriptor: desc, State: ProgressDownloading, Done: w.Offset(), Total: desc.Size})
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read blob %s: %w", desc.Digest, rerr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// stallWriter rearms the stall watchdog whenever bytes arrive.
type stallWriter struct {
	content.Writer
	watchdog *time.Timer
	stall    time.Duration
}

func (s *stallWriter) Write(b []byte) (int, error) {
	s.watchdog.Reset(s.stall)
	return s.Writer.Write(b)
}

type progress struct {
	mu    sync.Mutex
	fn    func(Progress)
	stall time.Duration
}

func (p *progress) report(pr Progress) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fn(pr)
}
