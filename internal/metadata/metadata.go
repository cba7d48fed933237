// Package metadata records what the content store's blobs mean: which image
// names point at which manifests. It is the root set of garbage collection:
// a blob no image reaches is removed by CollectGarbage.
//
// Storage is one small JSON file per image, written atomically (temp file,
// fsync, rename), rather than an embedded database: bbolt holds an
// exclusive flock on its file for as long as it is open, which would
// serialise a long-running `hako daemon` against every `hako pull` or
// `hako images` from the shell. Here readers never lock, and writers and the
// collector take short flocks:
//
//	<dir>/images/<sha256 of name>.json   one Image record
//	<dir>/images.lock                    held (LOCK_EX) by writers for a read-modify-write
//	<dir>/gc.lock                        LOCK_SH by leases (pulls in progress), LOCK_EX by the collector
package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/atomicfile"
	"github.com/hako-runtime/hako/internal/flock"
	"github.com/hako-runtime/hako/internal/image"
)

var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid argument")
)

// Image is a name for content: Target is what the name resolved to when it
// was pulled (an index or a manifest).
type Image struct {
	// Name is the full normalised reference, "docker.io/library/busybox:1.36"
	// or "host/repo@sha256:...".
	Name      string             `json:"name"`
	Target    ocispec.Descriptor `json:"target"`
	Labels    map[string]string  `json:"labels,omitempty"`
	CreatedAt time.Time          `json:"createdAt"`
	UpdatedAt time.Time          `json:"updatedAt"`
}

// Store is the metadata directory (hako uses <data-root>/metadata).
type Store struct {
	dir string
}

// Open opens (creating if needed) the metadata store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o700); err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) imagePath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, "images", hex.EncodeToString(sum[:])+".json")
}

// checkName accepts only names as image.ParseReference prints them, so
// that "busybox" and "docker.io/library/busybox:latest" cannot become two
// records for one image.
func checkName(name string) error {
	r, err := image.ParseReference(name)
	if err != nil {
		return fmt.Errorf("%w: image name: %v", ErrInvalid, err)
	}
	if r.String() != name {
		return fmt.Errorf("%w: image name %q is not normalised (%q)", ErrInvalid, name, r.String())
	}
	return nil
}

// GetImage returns the record for name (a normalised reference).
func (s *Store) GetImage(ctx context.Context, name string) (Image, error) {
	if err := checkName(name); err != nil {
		return Image{}, err
	}
	return s.readImage(s.imagePath(name), name)
}

func (s *Store) readImage(path, name string) (Image, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Image{}, fmt.Errorf("image %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("read image record: %w", err)
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Image{}, fmt.Errorf("image record %s: %w", path, err)
	}
	return img, nil
}

// ListImages returns every image, sorted by name.
func (s *Store) ListImages(ctx context.Context) ([]Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var imgs []Image
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue // a temp file of a writer
		}
		img, err := s.readImage(filepath.Join(s.dir, "images", e.Name()), e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}

// PutImage creates or updates the record for img.Name. CreatedAt of an
// existing record is kept; UpdatedAt is set to now.
func (s *Store) PutImage(ctx context.Context, img Image) (Image, error) {
	if err := checkName(img.Name); err != nil {
		return Image{}, err
	}
	if err := img.Target.Digest.Validate(); err != nil {
		return Image{}, fmt.Errorf("%w: image %s target: %v", ErrInvalid, img.Name, err)
	}
	if !image.IsIndex(img.Target.MediaType) && !image.IsManifest(img.Target.MediaType) {
		return Image{}, fmt.Errorf("%w: image %s target is %q, not a manifest or index", ErrInvalid, img.Name, img.Target.MediaType)
	}
	unlock, err := s.lock(ctx, "images.lock", unix.LOCK_EX)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	now := time.Now().UTC()
	img.CreatedAt, img.UpdatedAt = now, now
	if old, err := s.readImage(s.imagePath(img.Name), img.Name); err == nil {
		img.CreatedAt = old.CreatedAt
	}
	b, err := json.Marshal(img)
	if err != nil {
		return Image{}, err
	}
	if err := atomicfile.WriteFile(s.imagePath(img.Name), b, 0o600); err != nil {
		return Image{}, fmt.Errorf("write image %s: %w", img.Name, err)
	}
	return img, nil
}

// DeleteImage removes the record; the content stays until CollectGarbage.
func (s *Store) DeleteImage(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	unlock, err := s.lock(ctx, "images.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Remove(s.imagePath(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("image %s: %w", name, ErrNotFound)
		}
		return fmt.Errorf("delete image %s: %w", name, err)
	}
	return atomicfile.SyncDir(filepath.Join(s.dir, "images"))
}

// lock takes a flock on a file in the store (see package flock).
func (s *Store) lock(ctx context.Context, name string, how int) (func(), error) {
	return flock.Lock(ctx, filepath.Join(s.dir, name), how)
}
