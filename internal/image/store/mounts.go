package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
)

// LabelMountedImage is set on the writable snapshots MountImage prepares:
// the image's name.
const LabelMountedImage = "hako.io/mounted-image"

// ErrInvalidKey: not a key MountImage hands out.
var ErrInvalidKey = errors.New("invalid mount key")

// mountKey is what MountImage generates; UnmountImage accepts nothing else,
// so a key from the command line can name neither another snapshot nor a
// path outside <data-root>/mounts.
var mountKey = regexp.MustCompile(`^mount-[0-9a-f]{12}$`)

// MountsDir is where MountImage mounts: <data-root>/mounts.
func (s *Store) MountsDir() string { return filepath.Join(s.root, "mounts") }

// MountImage prepares a writable snapshot on the named image (unpacking it
// first if needed) and mounts it at <data-root>/mounts/<key>, like
// `podman image mount` or `ctr snapshot prepare` plus a mount: a root file
// system for `hako run`, and what makes the image in use for RemoveImage.
// It returns the key (for UnmountImage) and the mount point.
func (s *Store) MountImage(ctx context.Context, name string, platform *ocispec.Platform) (key, path string, err error) {
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return "", "", err
	}
	unlock, err := s.snapshotLock(ctx, unix.LOCK_SH)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	u, err := s.unpackLocked(ctx, sn, name, platform, nil)
	if err != nil {
		return "", "", err
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	key = "mount-" + hex.EncodeToString(b[:])
	ms, err := sn.Prepare(ctx, key, u.ChainID.String(), snapshot.WithLabels(map[string]string{LabelMountedImage: u.Image.Name}))
	if err != nil {
		return "", "", fmt.Errorf("mount %s: %w", u.Image.Name, err)
	}
	path = filepath.Join(s.MountsDir(), key)
	err = func() error {
		if err := os.MkdirAll(s.MountsDir(), 0o700); err != nil {
			return err
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			return err
		}
		if err := mount.All(ms, path); err != nil {
			return errors.Join(err, os.Remove(path))
		}
		return nil
	}()
	if err != nil {
		return "", "", errors.Join(fmt.Errorf("mount %s: %w", u.Image.Name, err), sn.Remove(context.WithoutCancel(ctx), key))
	}
	return key, path, nil
}

// Mount is one MountImage mount.
type Mount struct {
	Key, Path, Image string
}

// Mounts lists the MountImage mounts.
func (s *Store) Mounts(ctx context.Context) ([]Mount, error) {
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return nil, err
	}
	t, err := readSnapshots(ctx, sn)
	if err != nil {
		return nil, err
	}
	var out []Mount
	for k, i := range t {
		if img, ok := i.Labels[LabelMountedImage]; ok && mountKey.MatchString(k) {
			out = append(out, Mount{Key: k, Path: filepath.Join(s.MountsDir(), k), Image: img})
		}
	}
	return out, nil
}

// UnmountImage undoes MountImage: it unmounts <data-root>/mounts/<key> and
// removes the writable snapshot with whatever was written to it. keyOrPath
// is the key or the mount point MountImage returned.
func (s *Store) UnmountImage(ctx context.Context, keyOrPath string) error {
	key := keyOrPath
	if filepath.IsAbs(keyOrPath) {
		if filepath.Dir(filepath.Clean(keyOrPath)) != filepath.Clean(s.MountsDir()) {
			return fmt.Errorf("%w: %q is not under %s", ErrInvalidKey, keyOrPath, s.MountsDir())
		}
		key = filepath.Base(keyOrPath)
	}
	if !mountKey.MatchString(key) {
		return fmt.Errorf("%w: %q (image mount prints mount-<12 hex digits>)", ErrInvalidKey, keyOrPath)
	}
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		return err
	}
	info, err := sn.Stat(ctx, key)
	if err != nil {
		if errors.Is(err, snapshot.ErrNotFound) {
			return fmt.Errorf("no image mount %s: %w", key, ErrNotFound)
		}
		return err
	}
	if _, ok := info.Labels[LabelMountedImage]; !ok {
		return fmt.Errorf("%w: %s is not an image mount", ErrInvalidKey, key)
	}
	path := filepath.Join(s.MountsDir(), key)
	if err := mount.Unmount(path, 0); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unmount %s: %w", key, err)
	}
	return sn.Remove(ctx, key)
}
