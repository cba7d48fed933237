// Package contenttest is a test suite that every content.Store must pass:
// verified writes, nothing visible before Commit, resumable ingests, one
// writer per digest, and the read/inspect/delete side.
package contenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
)

// Run runs the suite; newStore must return an empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) content.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s content.Store)
	}{
		{"WriteReadBack", testWriteReadBack},
		{"EmptyBlob", testEmptyBlob},
		{"AlreadyExists", testAlreadyExists},
		{"DigestMismatch", testDigestMismatch},
		{"TooLong", testTooLong},
		{"TooShort", testTooShort},
		{"ResumeAfterClose", testResumeAfterClose},
		{"Reset", testReset},
		{"ConcurrentWritersOneWins", testConcurrentWriters},
		{"WaitHonoursContext", testWaitHonoursContext},
		{"NotFound", testNotFound},
		{"InvalidDigest", testInvalidDigest},
		{"WalkAndDelete", testWalkAndDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

func desc(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func blob(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func write(t *testing.T, s content.Store, d ocispec.Descriptor, b []byte) error {
	t.Helper()
	ctx := context.Background()
	w, err := s.Writer(ctx, d)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Commit(ctx)
}

func mustRead(t *testing.T, s content.Store, d ocispec.Descriptor) []byte {
	t.Helper()
	b, err := content.ReadBlob(context.Background(), s, d)
	if err != nil {
		t.Fatalf("read back %s: %v", d.Digest, err)
	}
	return b
}

func assertAbsent(t *testing.T, s content.Store, d ocispec.Descriptor) {
	t.Helper()
	if _, err := s.Info(context.Background(), d.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Info(%s) = %v, want ErrNotFound", d.Digest, err)
	}
	if _, err := s.ReaderAt(context.Background(), d); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("ReaderAt(%s) = %v, want ErrNotFound", d.Digest, err)
	}
}

func testWriteReadBack(t *testing.T, s content.Store) {
	b := blob(1<<20+123, 1)
	d := desc(b)
	ctx := context.Background()
	w, err := s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Write in odd chunks; the blob must stay invisible until Commit.
	for off := 0; off < len(b); off += 4093 {
		if _, err := w.Write(b[off:min(off+4093, len(b))]); err != nil {
			t.Fatal(err)
		}
	}
	assertAbsent(t, s, d)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, d); !bytes.Equal(got, b) {
		t.Fatal("read back differs from what was written")
	}
	info, err := s.Info(ctx, d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != d.Digest || info.Size != d.Size {
		t.Fatalf("Info = %+v, want %s/%d", info, d.Digest, d.Size)
	}
	ra, err := s.ReaderAt(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	part := make([]byte, 100)
	if _, err := ra.ReadAt(part, 5000); err != nil || !bytes.Equal(part, b[5000:5100]) {
		t.Fatalf("ReadAt(5000) = %v, content equal %v", err, bytes.Equal(part, b[5000:5100]))
	}
}

func testEmptyBlob(t *testing.T, s content.Store) {
	d := desc(nil)
	if err := write(t, s, d, nil); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, d); len(got) != 0 {
		t.Fatalf("empty blob reads %d bytes", len(got))
	}
}

func testAlreadyExists(t *testing.T, s content.Store) {
	b := blob(1000, 2)
	d := desc(b)
	if err := write(t, s, d, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer(context.Background(), d); !errors.Is(err, content.ErrAlreadyExists) {
		t.Fatalf("second Writer = %v, want ErrAlreadyExists", err)
	}
	// WriteBlob treats that as success without reading.
	if err := content.WriteBlob(context.Background(), s, d, errReader{}); err != nil {
		t.Fatalf("WriteBlob of present blob: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func testDigestMismatch(t *testing.T, s content.Store) {
	b := blob(5000, 3)
	d := desc(b)
	bad := append([]byte(nil), b...)
	bad[4000] ^= 0xff
	err := write(t, s, d, bad)
	if !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("commit of wrong content = %v, want ErrDigestMismatch", err)
	}
	assertAbsent(t, s, d)
	// The bad bytes are not kept for a resume.
	w, err := s.Writer(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != 0 {
		t.Fatalf("after a digest mismatch the next writer starts at %d, want 0", w.Offset())
	}
}

func testTooLong(t *testing.T, s content.Store) {
	b := blob(5000, 4)
	d := desc(b)
	d.Size = 4000 // the source sends more than the descriptor says
	ctx := context.Background()
	w, err := s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write(b)
	cerr := w.Commit(ctx)
	w.Close()
	if !errors.Is(werr, content.ErrSizeMismatch) || !errors.Is(cerr, content.ErrSizeMismatch) {
		t.Fatalf("write past size: Write = %v, Commit = %v; want ErrSizeMismatch", werr, cerr)
	}
	assertAbsent(t, s, d)
}

func testTooShort(t *testing.T, s content.Store) {
	b := blob(5000, 5)
	d := desc(b)
	if err := write(t, s, d, b[:4999]); !errors.Is(err, content.ErrSizeMismatch) {
		t.Fatalf("commit of short content = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, d)
}

func testResumeAfterClose(t *testing.T, s content.Store) {
	b := blob(300000, 6)
	d := desc(b)
	ctx := context.Background()
	w, err := s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b[:123456]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, s, d)
	w, err = s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != 123456 {
		t.Fatalf("resumed writer Offset = %d, want 123456", w.Offset())
	}
	if _, err := w.Write(b[w.Offset():]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, s, d), b) {
		t.Fatal("resumed blob differs")
	}
}

func testReset(t *testing.T, s content.Store) {
	b := blob(10000, 7)
	d := desc(b)
	ctx := context.Background()
	w, err := s.Writer(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("garbage that is not the start")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("Offset after Reset = %d", w.Offset())
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// testConcurrentWriters starts several writers of one digest at once: one
// must do the work, the others must wait and then see ErrAlreadyExists.
func testConcurrentWriters(t *testing.T, s content.Store) {
	b := blob(200000, 8)
	d := desc(b)
	ctx := context.Background()
	var wrote, existed atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Writer(ctx, d)
			if errors.Is(err, content.ErrAlreadyExists) {
				existed.Add(1)
				return
			}
			if err != nil {
				errs <- err
				return
			}
			defer w.Close()
			if w.Offset() != 0 {
				errs <- fmt.Errorf("writer saw a partial ingest of %d bytes", w.Offset())
				return
			}
			for off := 0; off < len(b); off += 10000 {
				if _, err := w.Write(b[off : off+10000]); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Millisecond) // give the others a chance to collide
			}
			if err := w.Commit(ctx); err != nil {
				errs <- err
				return
			}
			wrote.Add(1)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if wrote.Load() != 1 || existed.Load() != 7 {
		t.Fatalf("%d writers wrote and %d found the blob present; want 1 and 7", wrote.Load(), existed.Load())
	}
	if !bytes.Equal(mustRead(t, s, d), b) {
		t.Fatal("blob differs")
	}
}

func testWaitHonoursContext(t *testing.T, s content.Store) {
	b := blob(100, 9)
	d := desc(b)
	w, err := s.Writer(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if w2, err := s.Writer(ctx, d); err == nil {
		w2.Close()
		t.Fatal("second Writer got the digest while the first held it")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Writer = %v, want context.DeadlineExceeded", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("waiting writer ignored its context")
	}
}

func testNotFound(t *testing.T, s content.Store) {
	d := desc([]byte("absent"))
	assertAbsent(t, s, d)
	if err := s.Delete(context.Background(), d.Digest); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("Delete of absent blob = %v, want ErrNotFound", err)
	}
}

func testInvalidDigest(t *testing.T, s content.Store) {
	ctx := context.Background()
	for _, dg := range []digest.Digest{"", "sha256:../../etc/passwd", "sha256:ABC", "md5:d41d8cd98f00b204e9800998ecf8427e"} {
		if _, err := s.Info(ctx, dg); !errors.Is(err, content.ErrInvalid) {
			t.Errorf("Info(%q) = %v, want ErrInvalid", dg, err)
		}
		if w, err := s.Writer(ctx, ocispec.Descriptor{Digest: dg, Size: 1}); !errors.Is(err, content.ErrInvalid) {
			if err == nil {
				w.Close()
			}
			t.Errorf("Writer(%q) = %v, want ErrInvalid", dg, err)
		}
	}
}

func testWalkAndDelete(t *testing.T, s content.Store) {
	ctx := context.Background()
	want := map[digest.Digest]int64{}
	for i := range 5 {
		b := blob(100*(i+1), byte(10+i))
		d := desc(b)
		if err := write(t, s, d, b); err != nil {
			t.Fatal(err)
		}
		want[d.Digest] = d.Size
	}
	// An unfinished ingest is not a blob.
	partial := blob(1000, 99)
	w, err := s.Writer(ctx, desc(partial))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(partial[:10])
	w.Close()

	got := map[digest.Digest]int64{}
	if err := s.Walk(ctx, func(i content.Info) error { got[i.Digest] = i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Walk = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := s.Walk(ctx, func(content.Info) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("Walk did not return fn's error: %v", err)
	}
	for dg := range want {
		if err := s.Delete(ctx, dg); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Info(ctx, dg); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("Info after Delete = %v", err)
		}
	}
	n := 0
	s.Walk(ctx, func(content.Info) error { n++; return nil })
	if n != 0 {
		t.Fatalf("Walk after deleting all sees %d blobs", n)
	}
}
