package unpack

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

func TestReadAhead(t *testing.T) {
	data := make([]byte, 3*readAheadChunk+12345)
	rand.New(rand.NewSource(1)).Read(data)

	t.Run("all bytes in order", func(t *testing.T) {
		// OneByteReader makes the producer assemble chunks from many reads.
		ra := newReadAhead(iotest.HalfReader(bytes.NewReader(data)), 2)
		defer ra.stop()
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(ra, 1000)))
		if err != nil || !bytes.Equal(got, data[:1000]) {
			t.Fatalf("first 1000 bytes: %v", err)
		}
		rest, err := io.ReadAll(ra)
		if err != nil || !bytes.Equal(rest, data[1000:]) {
			t.Fatalf("rest: %d bytes, %v", len(rest), err)
		}
		if n, err := ra.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after EOF: %d, %v", n, err)
		}
	})
	t.Run("error after data", func(t *testing.T) {
		boom := errors.New("boom")
		ra := newReadAhead(io.MultiReader(bytes.NewReader(data[:100]), iotest.ErrReader(boom)), readAheadChunks)
		defer ra.stop()
		got, err := io.ReadAll(ra)
		if !errors.Is(err, boom) || !bytes.Equal(got, data[:100]) {
			t.Fatalf("got %d bytes, %v; want 100 bytes, boom", len(got), err)
		}
	})
	t.Run("stop before the end", func(t *testing.T) {
		// An endless source: stop must end the producer, blocked on a
		// full queue, without the consumer reading on.
		ra := newReadAhead(neverEnding{}, readAheadChunks)
		if _, err := io.ReadFull(ra, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		ra.stop()
		ra.stop() // twice is fine
	})
}

type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) { return len(p), nil }
