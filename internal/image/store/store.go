// Package store is the local image store under one data root: the blob
// store, the image names and the registry client wired together, with the
// operations `hako pull/images/tag/rmi/load/save/import/image prune` and
// the CRI image service share. Layout:
//
//	<data-root>/content    blobs (package content)
//	<data-root>/metadata   image names (package metadata)
//	<data-root>/tmp        scratch on the same file system (imports)
//	<data-root>/snapshots  unpacked layers and containers' writable layers
//	                       (snapshots.go), <data-root>/mounts their mounts
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/metadata"
	"github.com/hako-runtime/hako/internal/registries"
)

// ErrNotFound: no image by that name.
var ErrNotFound = metadata.ErrNotFound

// Options configures Open.
type Options struct {
	DataRoot   string // e.g. /var/lib/hako
	Registries *registries.Config
	Auth       *registries.Auth
	Logger     *slog.Logger
	// Transport and Retries/Backoff are passed to the registry client
	// (tests shorten the back-off).
	Transport http.RoundTripper
	Retries   int
	Backoff   time.Duration
	// CertsDir is passed to the registry client (remote.DefaultCertsDir).
	CertsDir string
	// Snapshotter is "overlay", "native", or "" to use the one the data
	// root already has, else detect (see snapshots.go).
	Snapshotter string
}

// Store is one data root's images.
type Store struct {
	Content *content.Local
	Meta    *metadata.Store
	client  *remote.Client
	tmp     string
	root    string
	snaps   lazySnapshotter
}

// Open opens (creating) the store under opts.DataRoot.
func Open(opts Options) (*Store, error) {
	if opts.DataRoot == "" {
		return nil, fmt.Errorf("open image store: no data root")
	}
	cs, err := content.NewLocal(filepath.Join(opts.DataRoot, "content"))
	if err != nil {
		return nil, err
	}
	md, err := metadata.Open(filepath.Join(opts.DataRoot, "metadata"))
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(opts.DataRoot, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	c := remote.New(remote.Options{Config: opts.Registries, Auth: opts.Auth, Logger: opts.Logger, Transport: opts.Transport, Retries: opts.Retries, Backoff: opts.Backoff, CertsDir: opts.CertsDir})
	return &Store{Content: cs, Meta: md, client: c, tmp: tmp, root: opts.DataRoot, snaps: lazySnapshotter{driver: opts.Snapshotter}}, nil
}

// normalise turns what a user typed ("busybox") into the stored name.
func normalise(name string) (image.Reference, error) {
	return image.ParseReference(name)
}

// PullOptions configures Pull; see remote.PullOptions.
type PullOptions struct {
	Platform     *ocispec.Platform
	Concurrency  int
	Progress     func(remote.Progress)
	StallTimeout time.Duration
}

// Pull fetches name from its registry (or mirrors) and records it under its
// normalised name. The blobs are protected from Prune by a lease until the
// name is recorded.
func (s *Store) Pull(ctx context.Context, name string, opts PullOptions) (metadata.Image, error) {
	ref, err := normalise(name)
	if err != nil {
		return metadata.Image{}, err
	}
	release, err := s.Meta.Lease(ctx)
	if err != nil {
		return metadata.Image{}, err
	}
	defer release()
	desc, err := s.client.Pull(ctx, ref, remote.PullOptions{
		Store: s.Content, Platform: opts.Platform, Concurrency: opts.Concurrency, Progress: opts.Progress, StallTimeout: opts.StallTimeout,
	})
	if err != nil {
		return metadata.Image{}, err
	}
	p := image.DefaultPlatform()
	if opts.Platform != nil {
		p = *opts.Platform
	}
	return s.Meta.PutImage(ctx, metadata.Image{Name: ref.String(), Target: desc, Labels: map[string]string{LabelPlatform: image.PlatformString(p)}})
}

// LabelPlatform records on an image the platform it was pulled for, which
// Image picks when asked for none: an arm64 image pulled on purpose onto an
// amd64 host is what the user wants to run (under emulation), and the
// host's own platform was never fetched.
const LabelPlatform = "hako.io/platform"

// Get returns the record for name (as a user writes it).
func (s *Store) Get(ctx context.Context, name string) (metadata.Image, error) {
	ref, err := normalise(name)
	if err != nil {
		return metadata.Image{}, err
	}
	return s.Meta.GetImage(ctx, ref.String())
}

// List returns every named image.
func (s *Store) List(ctx context.Context) ([]metadata.Image, error) { return s.Meta.ListImages(ctx) }

// Image opens the named image for platform (nil: this host's) from the
// store, for unpacking or for its config.
func (s *Store) Image(ctx context.Context, name string, platform *ocispec.Platform) (image.Image, error) {
	rec, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	p := image.DefaultPlatform()
	if platform != nil {
		p = *platform
	} else if lp, ok := rec.Labels[LabelPlatform]; ok {
		if pp, err := image.ParsePlatform(lp); err == nil {
			p = pp
		}
	}
	img, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s.Content}, rec.Target, p)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", rec.Name, err)
	}
	return img, nil
}

// Tag gives the image named src the name dst too.
func (s *Store) Tag(ctx context.Context, src, dst string) (metadata.Image, error) {
	rec, err := s.Get(ctx, src)
	if err != nil {
		return metadata.Image{}, err
	}
	ref, err := normalise(dst)
	if err != nil {
		return metadata.Image{}, err
	}
	return s.Meta.PutImage(ctx, metadata.Image{Name: ref.String(), Target: rec.Target, Labels: rec.Labels})
}

// Remove deletes a name; the blobs go at the next Prune if nothing else
// names them. Refusing images that containers use is the caller's job
// until containers are recorded here.
func (s *Store) Remove(ctx context.Context, name string) error {
	ref, err := normalise(name)
	if err != nil {
		return err
	}
	return s.Meta.DeleteImage(ctx, ref.String())
}

// PruneReport says what Prune freed.
type PruneReport struct {
	Blobs   []digest.Digest
	Ingests int
}

// Prune removes blobs no image names and partial downloads untouched for
// ingestAge.
func (s *Store) Prune(ctx context.Context, ingestAge time.Duration) (PruneReport, error) {
	var r PruneReport
	var err error
	if r.Blobs, err = s.Meta.CollectGarbage(ctx, s.Content); err != nil {
		return r, err
	}
	r.Ingests, err = s.Content.PruneIngests(ctx, ingestAge)
	return r, err
}

// Load reads an OCI archive or docker save tarball, stores its images and
// records their names; unnamed images are returned with an empty Name.
func (s *Store) Load(ctx context.Context, path string) ([]metadata.Image, error) {
	release, err := s.Meta.Lease(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	a, err := archive.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	imgs, err := a.Load(ctx, s.Content)
	if err != nil {
		return nil, err
	}
	var out []metadata.Image
	for _, img := range imgs {
		if img.Name == "" {
			out = append(out, metadata.Image{Target: img.Target})
			continue
		}
		rec, err := s.Meta.PutImage(ctx, metadata.Image{Name: img.Name, Target: img.Target})
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Save writes the named images to w as an archive.
func (s *Store) Save(ctx context.Context, w io.Writer, names []string, opts archive.SaveOptions) error {
	var imgs []archive.Image
	for _, n := range names {
		rec, err := s.Get(ctx, n)
		if err != nil {
			return err
		}
		imgs = append(imgs, archive.Image{Name: rec.Name, Target: rec.Target})
	}
	return archive.Save(ctx, w, s.Content, imgs, opts)
}

// Import makes a one-layer image from a root file system tarball and
// records it as name.
func (s *Store) Import(ctx context.Context, r io.Reader, name string, opts archive.ImportOptions) (metadata.Image, error) {
	ref, err := normalise(name)
	if err != nil {
		return metadata.Image{}, err
	}
	return s.importAs(ctx, r, opts, func(desc ocispec.Descriptor) (metadata.Image, error) {
		return s.Meta.PutImage(ctx, metadata.Image{Name: ref.String(), Target: desc})
	})
}

// IsNotFound reports whether err means an unknown image or blob.
func IsNotFound(err error) bool {
	return errors.Is(err, metadata.ErrNotFound) || errors.Is(err, content.ErrNotFound) || errors.Is(err, image.ErrNotFound)
}

// ChainIDs lists the chain IDs of every layer prefix of every image in the
// store, all platforms present included: the snapshots that images need,
// which a snapshot collector must keep (besides containers' own).
func (s *Store) ChainIDs(ctx context.Context) (map[digest.Digest]bool, error) {
	return s.neededChains(ctx, "")
}

// Push uploads the image named name to dest's registry ("" means name's
// own), from the store: every platform the store holds of it; an index
// whose other platforms were never pulled cannot be pushed whole.
func (s *Store) Push(ctx context.Context, name, dest string) error {
	rec, err := s.Get(ctx, name)
	if err != nil {
		return err
	}
	if dest == "" {
		dest = rec.Name
	}
	ref, err := normalise(dest)
	if err != nil {
		return err
	}
	return s.client.Push(ctx, ref, image.StoreFetcher{Provider: s.Content}, rec.Target)
}
