// Package unpack applies OCI image layers (tar archives, optionally gzip or
// zstd compressed) to a directory, safely.
//
// Layers come from registries and archives hako does not control, so every
// entry is treated as hostile: names are checked, each parent directory is
// resolved inside the root with openat2(RESOLVE_IN_ROOT) and every file is
// created with *at system calls relative to that parent, so no entry can
// create, modify or follow anything outside the root. The format follows
// image-spec layer.md ("Changesets", "Whiteouts").
//
// Choices where layers and tools disagree:
//   - Names with "..", absolute names and names with NUL are refused, not
//     cleaned: no tool hako knows writes them.
//   - A symlink in a parent path is followed inside the root, as if the
//     root were "/" (what docker, containerd and umoci do): a -> /etc
//     then a/passwd writes <root>/etc/passwd. Hardlink targets and
//     whiteout directories may not pass through a symlink at all.
//   - A whiteout below a name that is not a directory hides nothing and is
//     skipped (umoci writes x, then x/.wh.y, when x turned into a file).
//   - In overlay mode the layer is written to an empty upper directory and
//     cannot see the lower layers: a symlinked parent or a hardlink target
//     that exists only in a lower layer is not resolved (containerd's
//     limitation too; layers built by docker, buildah or umoci do not
//     need it). Implicit parent directories copy the lower's attributes
//     (Options.Lowers).
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// WhiteoutMode selects how whiteout entries are applied.
type WhiteoutMode int

const (
	// WhiteoutNative applies whiteouts by deleting the named files from
	// the directory, which must already hold the merged lower layers
	// (a copy of the parent snapshot).
	WhiteoutNative WhiteoutMode = iota
	// WhiteoutOverlay writes overlayfs whiteouts instead: a 0:0 character
	// device for a deleted name and the trusted.overlay.opaque=y xattr for
	// an opaque directory. The directory is an empty overlay upper dir.
	WhiteoutOverlay
)

// Defaults used when Options leave a limit at zero.
const (
	// DefaultMaxSize bounds the uncompressed size of one layer; a gzip
	// bomb stops here instead of filling the disk.
	DefaultMaxSize int64 = 32 << 30
	// DefaultMaxEntries bounds the number of tar entries of one layer
	// (an inode bomb of empty files costs no bytes).
	DefaultMaxEntries = 4 << 20
)

// Options tune Apply. The zero value applies native whiteouts with the
// default limits and no diffID check.
type Options struct {
	Whiteouts WhiteoutMode
	// DiffID, if set, is the expected digest of the uncompressed layer
	// (image-spec config.md "rootfs.diff_ids"); Apply fails with
	// ErrDiffIDMismatch when the stream does not match.
	DiffID digest.Digest
	// MaxSize is the limit on uncompressed bytes; 0 means DefaultMaxSize.
	MaxSize int64
	// MaxEntries is the limit on tar entries; 0 means DefaultMaxEntries.
	MaxEntries int
	// Lowers are, in overlay mode, the snapshot's lower directories,
	// topmost first (the overlayfs lowerdir order). A directory the layer
	// creates only implicitly, as the parent of an entry, copies owner,
	// mode and times from the topmost lower that has it.
	Lowers []string
}

// Errors classifying why Apply failed; test with errors.Is.
var (
	// ErrInvalidEntry: an entry is malformed or would escape the root.
	ErrInvalidEntry = errors.New("invalid layer entry")
	// ErrTooLarge: the layer is over MaxSize bytes or MaxEntries entries.
	ErrTooLarge = errors.New("layer too large")
	// ErrDiffIDMismatch: the uncompressed stream does not match DiffID.
	ErrDiffIDMismatch = errors.New("layer diffID mismatch")
	// ErrUnsupportedCompression: the stream is compressed with a format
	// image-spec does not allow for layers (xz, bzip2).
	ErrUnsupportedCompression = errors.New("unsupported layer compression")
)

// EntryError reports which tar entry failed and what was being done.
type EntryError struct {
	Name string // entry name as written in the archive
	Op   string // what was being done, e.g. "create file"
	Err  error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("layer entry %q: %s: %v", e.Name, e.Op, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// Apply reads a layer from r, decompressing gzip or zstd as it streams
// (detected by magic bytes), and applies it to the directory root. It
// returns the diffID (sha256 of the uncompressed stream) and the
// uncompressed size.
//
// On error the root holds a partly applied layer: the caller discards the
// snapshot. A diffID mismatch is only known after the whole stream has been
// applied, so the same holds for ErrDiffIDMismatch.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (digest.Digest, int64, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return "", 0, err
	}
	dec, closeDec, err := decompress(&ctxReader{ctx: ctx, r: r})
	if err != nil {
		return "", 0, err
	}
	defer closeDec()
	ra := newReadAhead(dec, readAheadChunks)
	defer ra.stop()
	return applyTar(ctx, root, ra, opts)
}

func (opts Options) withDefaults() (Options, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.DiffID != "" {
		if err := opts.DiffID.Validate(); err != nil {
			return opts, fmt.Errorf("expected diffID %q: %w", opts.DiffID, err)
		}
	}
	return opts, nil
}

// applyTar applies the uncompressed layer r, which the caller reads ahead
// (inflating runs in its own goroutine); hashing stays here, which
// balances the two (inflate is the slower half).
func applyTar(ctx context.Context, root string, r io.Reader, opts Options) (digest.Digest, int64, error) {
	a, err := newApplier(root, opts)
	if err != nil {
		return "", 0, err
	}
	defer a.close()
	m := &meter{r: r, h: sha256.New(), max: opts.MaxSize}

	tr := tar.NewReader(m)
	entries := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", m.n, fmt.Errorf("read layer after %d entries: %w", entries, err)
		}
		if err := ctx.Err(); err != nil {
			return "", m.n, err
		}
		entries++
		if entries > opts.MaxEntries {
			return "", m.n, fmt.Errorf("%w: more than %d entries", ErrTooLarge, opts.MaxEntries)
		}
		if hdr.Size > opts.MaxSize-m.n {
			return "", m.n, &EntryError{Name: hdr.Name, Op: "check size",
				Err: fmt.Errorf("%w: declares %d bytes, over the %d byte limit", ErrTooLarge, hdr.Size, opts.MaxSize)}
		}
		if err := a.apply(hdr, tr); err != nil {
			return "", m.n, err
		}
	}
	if err := a.finish(); err != nil {
		return "", m.n, err
	}
	// Bytes after the end-of-archive blocks are part of the diffID too,
	// and reading to EOF makes the decompressor verify its checksum.
	if _, err := io.Copy(io.Discard, m); err != nil {
		return "", m.n, fmt.Errorf("read layer trailer: %w", err)
	}
	got := digest.NewDigest(digest.SHA256, m.h)
	if opts.DiffID != "" && got != opts.DiffID {
		return got, m.n, fmt.Errorf("%w: got %s, want %s", ErrDiffIDMismatch, got, opts.DiffID)
	}
	return got, m.n, nil
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte{'B', 'Z', 'h'}
)

// decompress sniffs the stream's first bytes. image-spec media types name
// the compression, but registries and docker archives mislabel layers
// often enough that the bytes are the better witness.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("open gzip layer: %w", err)
		}
		return zr, func() { _ = zr.Close() }, nil
	case bytes.HasPrefix(head, magicZstd):
		// One decoder goroutine: layers are unpacked in order and the
		// pull already runs downloads in parallel. The window limit keeps
		// a hostile frame from reserving gigabytes before it is read.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, nil, fmt.Errorf("open zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(head, magicXz):
		return nil, nil, fmt.Errorf("%w: xz", ErrUnsupportedCompression)
	case bytes.HasPrefix(head, magicBzip2):
		return nil, nil, fmt.Errorf("%w: bzip2", ErrUnsupportedCompression)
	}
	return br, func() {}, nil
}

// meter hashes and counts the uncompressed stream and stops it at max.
type meter struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	max  int64
	over bool
}

func (m *meter) Read(p []byte) (int, error) {
	if m.over {
		return 0, fmt.Errorf("%w: over %d uncompressed bytes", ErrTooLarge, m.max)
	}
	// Allow one byte past max so that a stream of exactly max bytes passes
	// and one byte more is caught.
	if room := m.max - m.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := m.r.Read(p)
	m.h.Write(p[:n])
	m.n += int64(n)
	if m.n > m.max {
		m.over = true
		return 0, fmt.Errorf("%w: over %d uncompressed bytes", ErrTooLarge, m.max)
	}
	return n, err
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// openRoot opens the directory every entry is resolved against.
func openRoot(root string) (int, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open layer root", Path: root, Err: err}
	}
	return fd, nil
}
