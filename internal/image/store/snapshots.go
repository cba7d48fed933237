package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/atomicfile"
	"github.com/hako-runtime/hako/internal/flock"
	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/snapshot/native"
	"github.com/hako-runtime/hako/internal/snapshot/overlay"
)

// Snapshotter names (Options.Snapshotter).
const (
	SnapshotterOverlay = "overlay"
	SnapshotterNative  = "native"
)

// Unpacked layers live in one snapshotter per data root:
//
//	<data-root>/snapshots/driver     "overlay" or "native", written once
//	<data-root>/snapshots/<driver>   the snapshotter's root
//	<data-root>/snapshots/gc.lock    LOCK_SH while unpacking or mounting, LOCK_EX to collect
//
// The choice is recorded because snapshots made by one driver mean nothing
// to the other: a data root keeps the driver it started with even if, say,
// it is later moved onto a file system where the detection would answer
// differently.
type lazySnapshotter struct {
	driver string // asked for; "" detects
	mu     sync.Mutex
	sn     snapshot.Snapshotter
	name   string
}

// Snapshotter opens (once) the data root's snapshotter and returns it with
// its name.
func (s *Store) Snapshotter(ctx context.Context) (snapshot.Snapshotter, string, error) {
	l := &s.snaps
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sn != nil {
		return l.sn, l.name, nil
	}
	dir := filepath.Join(s.root, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("open snapshots: %w", err)
	}
	name, err := chooseDriver(dir, l.driver)
	if err != nil {
		return nil, "", err
	}
	var sn snapshot.Snapshotter
	switch name {
	case SnapshotterOverlay:
		sn, err = overlay.New(ctx, filepath.Join(dir, name))
	case SnapshotterNative:
		sn, err = native.New(ctx, filepath.Join(dir, name))
	}
	if err != nil {
		return nil, "", fmt.Errorf("open %s snapshotter: %w", name, err)
	}
	l.sn, l.name = sn, name
	return sn, name, nil
}

// chooseDriver returns the driver recorded in dir, or the one asked for,
// or overlay when an overlay mount with two lowers works on dir's file
// system (overlayfs in the kernel is not enough: an upper dir on overlayfs
// itself, or on some network file systems, is refused at mount time), else
// native. A new choice is recorded.
func chooseDriver(dir, want string) (string, error) {
	if want != "" && want != SnapshotterOverlay && want != SnapshotterNative {
		return "", fmt.Errorf("unknown snapshotter %q (overlay or native)", want)
	}
	rec := filepath.Join(dir, "driver")
	b, err := os.ReadFile(rec)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if have != SnapshotterOverlay && have != SnapshotterNative {
			return "", fmt.Errorf("%s names an unknown snapshotter %q", rec, have)
		}
		if want != "" && want != have {
			return "", fmt.Errorf("data root uses the %s snapshotter, not %s", have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read %s: %w", rec, err)
	}
	name := want
	if name == "" {
		name = SnapshotterNative
		if overlayWorks(dir) == nil {
			name = SnapshotterOverlay
		}
	}
	if name == SnapshotterOverlay {
		if err := overlayWorks(dir); err != nil {
			return "", err
		}
	}
	if err := atomicfile.WriteFile(rec, []byte(name+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("record snapshotter: %w", err)
	}
	return name, nil
}

// overlayWorks mounts a small overlay (two lowers, an upper, a work dir)
// in a scratch directory under dir and unmounts it.
func overlayWorks(dir string) (err error) {
	if err := overlay.Supported(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".probe-")
	if err != nil {
		return fmt.Errorf("probe overlayfs: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("probe overlayfs: %w", rerr)
		}
	}()
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o700); err != nil {
			return fmt.Errorf("probe overlayfs: %w", err)
		}
	}
	p := func(d string) string { return filepath.Join(tmp, d) }
	m := mount.Mount{Type: "overlay", Source: "overlay", Options: []string{
		"lowerdir=" + p("l1") + ":" + p("l2"), "upperdir=" + p("upper"), "workdir=" + p("work"),
	}}
	if err := m.Mount(p("merged")); err != nil {
		return fmt.Errorf("overlayfs cannot be used on %s: %w", dir, err)
	}
	return mount.Unmount(p("merged"), unix.MNT_DETACH)
}

// snapshotLock takes the snapshot collection lock: shared by anything that
// relies on committed snapshots staying until it has recorded its use of
// them (an unpack until the image name is written, a mount until its
// snapshot is prepared), exclusive by the collector.
func (s *Store) snapshotLock(ctx context.Context, how int) (func(), error) {
	dir := filepath.Join(s.root, "snapshots")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return flock.Lock(ctx, filepath.Join(dir, "gc.lock"), how)
}
