package remote_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/testenv"
)

// recordingTee keeps what one download handed it.
type recordingTee struct {
	mu     sync.Mutex
	data   bytes.Buffer
	closes int
	err    error
}

func (r *recordingTee) Write(p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.data.Write(p)
}

func (r *recordingTee) Close(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes++
	r.err = err
}

type tees struct {
	mu sync.Mutex
	m  map[digest.Digest][]*recordingTee
}

func (t *tees) tee(d ocispec.Descriptor) remote.Tee {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := &recordingTee{}
	t.m[d.Digest] = append(t.m[d.Digest], r)
	return r
}

// TestPullTee: each layer's download is teed once, whole, and closed with
// nil after its commit; the config is not teed; a blob already in the
// store is not teed again.
func TestPullTee(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "test/app", "v1", img)
	s := newStore(t)
	ts := &tees{m: map[digest.Digest][]*recordingTee{}}
	if _, err := newClient(t, "", nil).Pull(context.Background(), ref(t, reg.Host+"/test/app:v1"), remote.PullOptions{Store: s, Tee: ts.tee}); err != nil {
		t.Fatal(err)
	}
	if len(ts.m) != len(img.Layers) {
		t.Fatalf("%d blobs teed, want the %d layers", len(ts.m), len(img.Layers))
	}
	for _, l := range img.Layers {
		rs := ts.m[l.Digest]
		if len(rs) != 1 {
			t.Fatalf("layer %s: %d tees, want one", l.Digest, len(rs))
		}
		if r := rs[0]; r.closes != 1 || r.err != nil || !bytes.Equal(r.data.Bytes(), img.Blobs[l.Digest]) {
			t.Fatalf("layer %s: tee closed %d times with %v, got %d bytes of %d", l.Digest, r.closes, r.err, r.data.Len(), l.Size)
		}
	}
	ts.m = map[digest.Digest][]*recordingTee{}
	if _, err := newClient(t, "", nil).Pull(context.Background(), ref(t, reg.Host+"/test/app:v1"), remote.PullOptions{Store: s, Tee: ts.tee}); err != nil {
		t.Fatal(err)
	}
	if len(ts.m) != 0 {
		t.Fatalf("blobs in the store teed again: %v", ts.m)
	}
}

// TestPullTeeEndsOnResume: a layer stream cut half-way ends its tee with
// an error (the bytes it got are the blob's first ones); the resumed
// request is not teed.
func TestPullTeeEndsOnResume(t *testing.T) {
	host, img, _ := brokenStreamImage(t)
	layer := img.Layers[0]
	blob := img.Blobs[layer.Digest]
	s := newStore(t)
	ts := &tees{m: map[digest.Digest][]*recordingTee{}}
	if _, err := newClient(t, "", nil).Pull(context.Background(), ref(t, host+"/test/big:v1"), remote.PullOptions{Store: s, Tee: ts.tee}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	rs := ts.m[layer.Digest]
	if len(rs) != 1 || rs[0].closes != 1 || rs[0].err == nil {
		t.Fatalf("%d tees; want one, closed once with an error (%+v)", len(rs), rs)
	}
	if got := rs[0].data.Bytes(); len(got) > len(blob)/2 || !bytes.HasPrefix(blob, got) {
		t.Fatalf("tee got %d bytes, not a prefix of the blob's first half", len(got))
	}
}
