package unpack

import (
	"errors"
	"io"
	"sync"
)

// Read-ahead sizes. The decompressor fills chunks of readAheadChunk
// bytes; Apply lets it run readAheadChunks ahead of the tar reader, and
// ApplyLayers lets the next layer's run up to prefetchChunks ahead while
// the current layer is applied. Measured on the debootstrap image of
// scripts/bench-pull.sh: 16 MiB of look-ahead pulls ~0.1 s faster than 4,
// and 64 no faster than 16 (peak RSS 66, 36 and 140 MB).
const (
	readAheadChunk  = 1 << 20
	readAheadChunks = 4
	prefetchChunks  = 16
)

// readAhead reads src in its own goroutine, so that inflating the stream
// (over half of an unpack's CPU time for a gzip layer) runs on another
// core while the applier creates files; the wall time of an unpack goes
// from their sum to about the larger of the two. A single gzip stream
// cannot be inflated in parallel, but it can be inflated ahead.
//
// Only the consumer calls Read and stop. src is only touched by the
// producer goroutine until stop has returned or Read has returned an
// error (the producer's last act before sending it is its last read).
type readAhead struct {
	chunks chan chunk
	free   chan []byte
	done   chan struct{}
	wg     sync.WaitGroup
	max    int // buffers the producer may allocate

	cur  chunk
	off  int
	err  error // sticky, once the producer's error has been reached
	once sync.Once
}

type chunk struct {
	buf []byte
	err error
}

// newReadAhead starts reading src with at most n chunks in flight;
// buffers are allocated as the producer gets ahead, not up front.
func newReadAhead(src io.Reader, n int) *readAhead {
	ra := &readAhead{
		chunks: make(chan chunk, n),
		free:   make(chan []byte, n+1),
		done:   make(chan struct{}),
		max:    n + 1,
	}
	ra.wg.Add(1)
	go ra.produce(src)
	return ra
}

func (ra *readAhead) produce(src io.Reader) {
	defer ra.wg.Done()
	allocated := 0
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		default:
			if allocated < ra.max {
				buf = make([]byte, readAheadChunk)
				allocated++
				break
			}
			select {
			case buf = <-ra.free:
			case <-ra.done:
				return
			}
		}
		n, err := io.ReadFull(src, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		if n > 0 {
			select {
			case ra.chunks <- chunk{buf: buf[:n]}:
			case <-ra.done:
				return
			}
		}
		if err != nil {
			select {
			case ra.chunks <- chunk{err: err}:
			case <-ra.done:
			}
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for ra.off == len(ra.cur.buf) {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.cur.buf != nil {
			ra.free <- ra.cur.buf[:cap(ra.cur.buf)]
			ra.cur, ra.off = chunk{}, 0
		}
		c := <-ra.chunks
		if c.err != nil {
			ra.err = c.err
			return 0, c.err
		}
		ra.cur, ra.off = c, 0
	}
	n := copy(p, ra.cur.buf[ra.off:])
	ra.off += n
	return n, nil
}

// stop ends the producer and waits for it, so that src may be closed.
// A read of src in flight is waited for.
func (ra *readAhead) stop() {
	ra.once.Do(func() { close(ra.done) })
	ra.wg.Wait()
}
