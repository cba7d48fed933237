package content

import (
	"context"
	// go-digest only knows an algorithm whose hash is linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/atomicfile"
)

// Local is the on-disk store. Its layout under dir (hako uses
// <data-root>/content):
//
//	blobs/<alg>/<hex>          committed, verified blobs (read-only files)
//	ingest/<alg>-<hex>/lock    flock(2)ed by the one writer of that digest
//	ingest/<alg>-<hex>/data    bytes received so far
//
// Ingest and blobs live in the same file system, so publishing a blob is a
// rename(2): a reader sees either nothing or the whole verified blob, also
// after a crash. A writer killed with SIGKILL leaves only ingest/ behind,
// which the next writer of that digest resumes or restarts; the kernel drops
// the dead writer's flock.
type Local struct {
	dir string
}

var _ Store = (*Local)(nil)

// NewLocal opens (creating if needed) a store in dir.
func NewLocal(dir string) (*Local, error) {
	for _, d := range []string{filepath.Join(dir, "blobs"), filepath.Join(dir, "ingest")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create content store %s: %w", dir, err)
		}
	}
	return &Local{dir: dir}, nil
}

func validate(dgst digest.Digest) error {
	if err := dgst.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", ErrInvalid, dgst, err)
	}
	return nil
}

// blobPath is safe to build with Join: Validate has checked that the
// algorithm is a known one and the encoded part is lower-case hex.
func (s *Local) blobPath(dgst digest.Digest) string {
	return filepath.Join(s.dir, "blobs", dgst.Algorithm().String(), dgst.Encoded())
}

func (s *Local) ingestDir(dgst digest.Digest) string {
	return filepath.Join(s.dir, "ingest", dgst.Algorithm().String()+"-"+dgst.Encoded())
}

// Info reports a committed blob.
func (s *Local) Info(ctx context.Context, dgst digest.Digest) (Info, error) {
	if err := validate(dgst); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.blobPath(dgst))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("blob %s: %w", dgst, ErrNotFound)
		}
		return Info{}, fmt.Errorf("stat blob %s: %w", dgst, err)
	}
	return Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

type fileReaderAt struct {
	*os.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// ReaderAt opens a committed blob.
func (s *Local) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (ReaderAt, error) {
	if err := validate(desc.Digest); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(desc.Digest))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", desc.Digest, ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %s: %w", desc.Digest, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", desc.Digest, err)
	}
	return fileReaderAt{File: f, size: fi.Size()}, nil
}

// Delete removes a committed blob. It does not touch an ingest in progress.
func (s *Local) Delete(ctx context.Context, dgst digest.Digest) error {
	if err := validate(dgst); err != nil {
		return err
	}
	if err := os.Remove(s.blobPath(dgst)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob %s: %w", dgst, ErrNotFound)
		}
		return fmt.Errorf("delete blob %s: %w", dgst, err)
	}
	return nil
}

// Walk calls fn for every committed blob, skipping files that are not named
// like a digest of their directory's algorithm.
func (s *Local) Walk(ctx context.Context, fn WalkFunc) error {
	algs, err := os.ReadDir(filepath.Join(s.dir, "blobs"))
	if err != nil {
		return fmt.Errorf("walk content store: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.dir, "blobs", a.Name()))
		if err != nil {
			return fmt.Errorf("walk content store: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			dgst := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if dgst.Validate() != nil || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // deleted meanwhile
					continue
				}
				return fmt.Errorf("walk content store: %w", err)
			}
			if err := fn(Info{Digest: dgst, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Writer opens the ingest for desc, waiting (honouring ctx) while another
// writer holds it. See Ingester.
func (s *Local) Writer(ctx context.Context, desc ocispec.Descriptor) (Writer, error) {
	if err := validate(desc.Digest); err != nil {
		return nil, err
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("%w: blob %s: negative size %d", ErrInvalid, desc.Digest, desc.Size)
	}
	if _, err := s.Info(ctx, desc.Digest); err == nil {
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, ErrAlreadyExists)
	}
	dir := s.ingestDir(desc.Digest)
	lock, err := lockIngest(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	// Whoever held the lock before us may have committed the blob.
	if _, err := s.Info(ctx, desc.Digest); err == nil {
		unlockIngest(lock, dir, true)
		return nil, fmt.Errorf("blob %s: %w", desc.Digest, ErrAlreadyExists)
	}
	w := &localWriter{s: s, desc: desc, dir: dir, lock: lock, digester: desc.Digest.Algorithm().Digester()}
	if err := w.open(); err != nil {
		unlockIngest(lock, dir, false)
		return nil, fmt.Errorf("ingest %s: %w", desc.Digest, err)
	}
	return w, nil
}

// lockIngest takes the exclusive flock on dir/lock. flock(2) locks belong to
// the open file description, so this excludes other goroutines of this
// process as well as other processes. The lock file is removed by the
// committer while it still holds the lock; a waiter that then wins the lock
// on the unlinked file notices (the path no longer names its inode) and
// starts over on the new file.
func lockIngest(ctx context.Context, dir string) (*os.File, error) {
	wait := 5 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A committer may remove the directory at any moment (after
		// publishing); both failures below mean "it just went", so retry.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
			if err == nil || !(errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EINTR)) {
				break
			}
			// Polling keeps the wait cancellable; a blocking flock in a
			// goroutine could not be abandoned cleanly.
			select {
			case <-ctx.Done():
				f.Close()
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			if wait < 100*time.Millisecond {
				wait *= 2
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("flock: %w", err)
		}
		var held, onDisk unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &held); err != nil {
			f.Close()
			return nil, err
		}
		if err := unix.Stat(filepath.Join(dir, "lock"), &onDisk); err == nil && held.Ino == onDisk.Ino && held.Dev == onDisk.Dev {
			return f, nil
		}
		f.Close() // stale: the lock file was replaced or removed
	}
}

// unlockIngest releases the lock; with remove it also deletes the ingest
// directory first (the blob is committed, nothing is left to resume).
func unlockIngest(lock *os.File, dir string, remove bool) {
	if remove {
		os.Remove(filepath.Join(dir, "data"))
		os.Remove(filepath.Join(dir, "lock"))
		os.Remove(dir)
	}
	lock.Close() // closing the last descriptor drops the flock
}

type localWriter struct {
	s        *Local
	desc     ocispec.Descriptor
	dir      string
	lock     *os.File
	data     *os.File
	digester digest.Digester
	offset   int64
	failed   error // set when the data is known bad: discarded on Close
	done     bool
}

// open opens dir/data and rehashes what an earlier writer left there, so the
// ingest resumes where it stopped.
func (w *localWriter) open() error {
	f, err := os.OpenFile(filepath.Join(w.dir, "data"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	w.data = f
	n, err := io.Copy(w.digester.Hash(), f)
	if err != nil {
		f.Close()
		return fmt.Errorf("rehash partial ingest: %w", err)
	}
	w.offset = n
	if n > w.desc.Size {
		return w.Reset()
	}
	return nil
}

func (w *localWriter) Offset() int64 { return w.offset }

func (w *localWriter) Reset() error {
	if w.done {
		return fmt.Errorf("ingest %s: writer closed", w.desc.Digest)
	}
	if err := w.data.Truncate(0); err != nil {
		return fmt.Errorf("ingest %s: reset: %w", w.desc.Digest, err)
	}
	if _, err := w.data.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("ingest %s: reset: %w", w.desc.Digest, err)
	}
	w.digester = w.desc.Digest.Algorithm().Digester()
	w.offset = 0
	w.failed = nil
	return nil
}

// Write refuses to go past the expected size: a source sending more than the
// descriptor says is wrong, and must not be allowed to fill the disk.
func (w *localWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("ingest %s: writer closed", w.desc.Digest)
	}
	if w.failed != nil {
		return 0, w.failed
	}
	if int64(len(p)) > w.desc.Size-w.offset {
		w.failed = fmt.Errorf("ingest %s: %w: more than the expected %d bytes", w.desc.Digest, ErrSizeMismatch, w.desc.Size)
		return 0, w.failed
	}
	n, err := w.data.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	return n, nil
}

func (w *localWriter) Commit(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("ingest %s: writer closed", w.desc.Digest)
	}
	if w.failed != nil {
		w.Close()
		return w.failed
	}
	if w.offset != w.desc.Size {
		w.failed = fmt.Errorf("ingest %s: %w: got %d bytes, want %d", w.desc.Digest, ErrSizeMismatch, w.offset, w.desc.Size)
		w.Close()
		return w.failed
	}
	if got := w.digester.Digest(); got != w.desc.Digest {
		w.failed = fmt.Errorf("ingest %s: %w: content hashes to %s", w.desc.Digest, ErrDigestMismatch, got)
		w.Close()
		return w.failed
	}
	if err := w.data.Sync(); err != nil {
		return fmt.Errorf("ingest %s: fsync: %w", w.desc.Digest, err)
	}
	if err := w.data.Chmod(0o444); err != nil {
		return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	target := w.s.blobPath(w.desc.Digest)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	if err := os.Rename(filepath.Join(w.dir, "data"), target); err != nil {
		return fmt.Errorf("ingest %s: publish: %w", w.desc.Digest, err)
	}
	// The rename is durable only once the directory is synced.
	if err := atomicfile.SyncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("ingest %s: %w", w.desc.Digest, err)
	}
	w.done = true
	w.data.Close()
	unlockIngest(w.lock, w.dir, true)
	return nil
}

// Close keeps partial data for a later resume, unless it is known bad.
func (w *localWriter) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.failed != nil {
		w.data.Truncate(0)
	}
	err := w.data.Close()
	unlockIngest(w.lock, w.dir, w.failed != nil)
	return err
}

// PruneIngests removes interrupted ingests whose data has not changed for
// olderThan and that no writer holds now; it returns how many went. A pull
// killed for good leaves its partial data behind for a resume; this is how
// that space comes back (hako image prune).
func (s *Local) PruneIngests(ctx context.Context, olderThan time.Duration) (int, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "ingest"))
	if err != nil {
		return 0, fmt.Errorf("prune ingests: %w", err)
	}
	cutoff := time.Now().Add(-olderThan)
	n := 0
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		dir := filepath.Join(s.dir, "ingest", e.Name())
		if fi, err := os.Stat(filepath.Join(dir, "data")); err == nil && fi.ModTime().After(cutoff) {
			continue
		}
		// Take the lock without waiting: a held ingest is in use.
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|unix.O_CLOEXEC, 0)
		if errors.Is(err, fs.ErrNotExist) {
			os.Remove(filepath.Join(dir, "data"))
			os.Remove(dir)
			continue
		}
		if err != nil {
			return n, fmt.Errorf("prune ingests: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		unlockIngest(f, dir, true)
		n++
	}
	return n, nil
}
