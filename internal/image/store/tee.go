package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image/remote"
)

// teeLimit bounds the bytes one layer's tee holds that its reader has
// not taken yet (or, before the unpacker asks for the layer, from byte
// 0). A tee that would exceed it stops taking bytes: its reader goes on
// from the committed blob where the tee stopped, and one nobody had asked
// for yet is dropped. Downloads never wait for the unpacker.
const teeLimit = 4 << 20

// teeWake: a reader waiting for bytes is woken once this many are held
// (or the download ended), not for each network read, which over a slow
// link would wake the unpacker for every few KiB.
const teeWake = 256 << 10

// errTeeBroken: a layer's download was retried (or failed) while the
// unpacker read it as it arrived.
var errTeeBroken = errors.New("layer stream broke off")

// arrivals tells the unpacker which blobs the pull has stored, and hands
// it the downloads it may read as they arrive.
type arrivals struct {
	mu    sync.Mutex
	blobs map[digest.Digest]*arrival
	every chan struct{} // closed when the pull has finished: all are in
	torn  atomic.Int64  // tees whose reader saw them break
}

type arrival struct {
	in      chan struct{} // closed once the blob is in the store
	tee     *layerTee     // its download from byte 0, if no reader took it yet
	offered chan struct{} // closed (and replaced) when tee is set
}

func newArrivals() *arrivals {
	return &arrivals{blobs: map[digest.Digest]*arrival{}, every: make(chan struct{})}
}

// get returns d's entry; a.mu is held.
func (a *arrivals) get(d digest.Digest) *arrival {
	e, ok := a.blobs[d]
	if !ok {
		e = &arrival{in: make(chan struct{}), offered: make(chan struct{})}
		a.blobs[d] = e
	}
	return e
}

func (a *arrivals) arrived(d digest.Digest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.get(d)
	select {
	case <-e.in:
	default:
		close(e.in)
	}
}

func (a *arrivals) all() { close(a.every) }

// wait blocks until the blob d is in the store.
func (a *arrivals) wait(ctx context.Context, d digest.Digest) error {
	a.mu.Lock()
	in := a.get(d).in
	a.mu.Unlock()
	select {
	case <-in:
		return nil
	case <-a.every:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// offer is remote.PullOptions.Tee: the download of desc starts at byte 0.
func (a *arrivals) offer(desc ocispec.Descriptor) remote.Tee {
	t := &layerTee{}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.get(desc.Digest)
	e.tee = t
	close(e.offered)
	e.offered = make(chan struct{})
	return t
}

// take waits until the blob d is in the store (nil) or its download from
// byte 0 can be read as it arrives (that download's tee, now the
// caller's).
func (a *arrivals) take(ctx context.Context, d digest.Digest) (*layerTee, error) {
	for {
		a.mu.Lock()
		e := a.get(d)
		t := e.tee
		e.tee = nil
		in, offered := e.in, e.offered
		a.mu.Unlock()
		if t != nil && t.claim() {
			return t, nil
		}
		select {
		case <-in:
			return nil, nil
		case <-a.every:
			return nil, nil
		case <-offered:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// layerTee holds the bytes of one layer's download, from byte 0, until
// the unpacker reads them. It implements remote.Tee.
type layerTee struct {
	mu      sync.Mutex
	wake    chan struct{} // set while the reader waits; closed on any change
	chunks  [][]byte
	held    int   // bytes in chunks
	n       int64 // bytes taken since byte 0
	claimed bool  // a reader has it
	full    bool  // stopped taking bytes at n (teeLimit)
	gone    bool  // the reader closed
	closed  bool  // the download ended: err is its outcome
	err     error
}

func (t *layerTee) Write(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.full || t.gone {
		return
	}
	if t.held+len(p) > teeLimit {
		t.full = true
		if !t.claimed {
			t.chunks, t.held = nil, 0 // nobody will read from byte 0
		}
		t.signal()
		return
	}
	t.chunks = append(t.chunks, bytes.Clone(p))
	t.held += len(p)
	t.n += int64(len(p))
	if t.held >= teeWake {
		t.signal()
	}
}

func (t *layerTee) Close(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed, t.err = true, err
	if !t.claimed {
		t.chunks, t.held = nil, 0
	}
	t.signal()
}

// claim makes the tee its reader's, if it still holds the layer from byte
// 0 and its download goes on.
func (t *layerTee) claim() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.claimed || t.closed || t.full {
		return false
	}
	t.claimed = true
	return true
}

// signal wakes the reader; t.mu is held.
func (t *layerTee) signal() {
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
}

// teeReader reads a layer as it downloads: the tee's bytes, then, if the
// tee filled up, the rest from the committed blob. It returns EOF only
// once the download has committed the blob, so every byte it returned is
// the verified blob's; a download that fails or is retried ends it with
// an error wrapping errTeeBroken.
type teeReader struct {
	ctx     context.Context
	t       *layerTee
	desc    ocispec.Descriptor
	store   content.Provider
	torn    *atomic.Int64
	rest    io.Reader // the committed blob from where the tee stopped
	restEnd io.Closer
	// stored is called once the reader sees the blob committed: progress
	// reports a layer "unpacking" once its blob is in the store (after
	// the download's "done"), as for a layer read from the store.
	stored func()
}

func (r *teeReader) Read(p []byte) (int, error) {
	if r.rest != nil {
		return r.rest.Read(p)
	}
	t := r.t
	t.mu.Lock()
	for len(t.chunks) == 0 && !t.closed {
		wake := make(chan struct{})
		t.wake = wake
		t.mu.Unlock()
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, context.Cause(r.ctx)
		}
		t.mu.Lock()
	}
	if t.closed && t.err == nil && r.stored != nil {
		stored := r.stored
		r.stored = nil
		t.mu.Unlock()
		stored()
		t.mu.Lock()
	}
	if len(t.chunks) > 0 {
		n := copy(p, t.chunks[0])
		if t.chunks[0] = t.chunks[0][n:]; len(t.chunks[0]) == 0 {
			t.chunks[0] = nil
			t.chunks = t.chunks[1:]
		}
		t.held -= n
		t.mu.Unlock()
		return n, nil
	}
	full, off, err := t.full, t.n, t.err
	t.mu.Unlock()
	if err != nil {
		r.torn.Add(1)
		return 0, fmt.Errorf("%w: %w", errTeeBroken, err)
	}
	if !full {
		return 0, io.EOF
	}
	ra, err := r.store.ReaderAt(r.ctx, r.desc)
	if err != nil {
		return 0, err
	}
	r.rest, r.restEnd = io.NewSectionReader(ra, off, ra.Size()-off), ra
	return r.rest.Read(p)
}

func (r *teeReader) Close() error {
	r.t.mu.Lock()
	r.t.gone = true
	r.t.chunks, r.t.held = nil, 0
	r.t.mu.Unlock()
	if r.restEnd != nil {
		return r.restEnd.Close()
	}
	return nil
}
