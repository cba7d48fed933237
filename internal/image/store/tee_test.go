package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/testenv"
)

// holdProxy serves one blob's first GET (the one without a Range header)
// up to byte at, then holds it until release is closed. After the hold it
// serves the rest, or ends the body with an error (cut), or (swap) serves
// the bytes of another blob of the same size from the start.
type holdProxy struct {
	base    http.RoundTripper
	digest  digest.Digest
	at      int64
	release chan struct{}
	cut     bool
	swap    []byte

	mu     sync.Mutex
	ranges []string // Range headers of the blob's requests
}

func (p *holdProxy) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+p.digest.String()) {
		return p.base.RoundTrip(r)
	}
	p.mu.Lock()
	p.ranges = append(p.ranges, r.Header.Get("Range"))
	first := len(p.ranges) == 1
	p.mu.Unlock()
	resp, err := p.base.RoundTrip(r)
	if err != nil || !first || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body := resp.Body
	if p.swap != nil {
		if resp.ContentLength != int64(len(p.swap)) {
			body.Close()
			return nil, errors.New("holdProxy: the swapped blob has another size")
		}
		body = struct {
			io.Reader
			io.Closer
		}{bytes.NewReader(p.swap), body}
	}
	resp.Body = &heldBody{ReadCloser: body, ctx: r.Context(), left: p.at, p: p}
	return resp, nil
}

func (p *holdProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

type heldBody struct {
	io.ReadCloser
	ctx  context.Context
	left int64 // bytes before the hold
	held bool
	p    *holdProxy
}

func (b *heldBody) Read(buf []byte) (int, error) {
	if b.left == 0 && !b.held {
		select {
		case <-b.p.release:
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
		b.held = true
		if b.p.cut {
			return 0, errors.New("holdProxy: connection cut")
		}
	}
	if !b.held && int64(len(buf)) > b.left {
		buf = buf[:b.left]
	}
	n, err := b.ReadCloser.Read(buf)
	if !b.held {
		b.left -= int64(n)
	}
	return n, err
}

// randomText is n incompressible bytes, the same for the same seed.
func randomText(seed uint64, n int) string {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

// bigLayerImage: layer 0 small, layer 1 two incompressible files of
// nearly 2 MiB, "a" first. The unpacker takes its input in 1 MiB chunks,
// and "a" ends just before 2 MiB into the layer: it is written once 2 MiB
// (and the unpacker's buffers) have arrived, well before the 3 MiB where
// the tests' proxy holds the layer. swapped swaps the files' bytes: a
// layer of the same size (it compresses the same), another digest.
func bigLayerImage(t *testing.T, swapped bool) (*testenv.TestImage, testenv.TestLayer) {
	a, b := randomText(1, 2<<20-16<<10), randomText(2, 2<<20-16<<10)
	if swapped {
		a, b = b, a
	}
	top := testenv.TestLayer{"big/a": a, "big/b": b}
	return testenv.BuildImage(t, image.DefaultPlatform(), testenv.TestLayer{"etc/os-release": "hako"}, top), top
}

func openAt(t *testing.T, dir string, transport http.RoundTripper) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{DataRoot: dir, Backoff: time.Millisecond, Transport: transport})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitUnpacked waits until a snapshot being unpacked under dir holds path
// with the content want (or ctx ends).
func waitUnpacked(ctx context.Context, t *testing.T, dir, path, want string) {
	t.Helper()
	for {
		found, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "snapshots", "*", "fs", path))
		for _, f := range found {
			if b, err := os.ReadFile(f); err == nil && string(b) == want {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s was not unpacked while its layer was held back: %v", path, context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// heldPull starts a pull of reg's lib/big:v1 through p into a data root of
// its own, and returns the store, its directory, the pull's context (ended
// with the test) and the channel its error arrives on.
func heldPull(t *testing.T, reg *testenv.Registry, p *holdProxy) (*store.Store, string, context.Context, <-chan error) {
	t.Helper()
	dir := t.TempDir()
	s := openAt(t, dir, p)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	errs := make(chan error, 1)
	go func() {
		_, err := s.PullAndUnpack(ctx, reg.Host+"/lib/big:v1", store.PullOptions{}, nil)
		errs <- err
	}()
	return s, dir, ctx, errs
}

// snapshotInfos lists every snapshot of s's snapshotter.
func snapshotInfos(ctx context.Context, t *testing.T, s *store.Store) []snapshot.Info {
	t.Helper()
	sn, _, err := s.Snapshotter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var infos []snapshot.Info
	if err := sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		infos = append(infos, i)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return infos
}

// TestPullUnpacksWhileDownloading: the top layer's download is held three
// quarters in, until its first file is in the snapshot being unpacked;
// a pull that unpacks a layer only once its blob is in the store would
// never get there.
func TestPullUnpacksWhileDownloading(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img, top := bigLayerImage(t, false)
	reg.PushImage(t, "lib/big", "v1", img)
	layer := img.Layers[1]
	p := &holdProxy{base: http.DefaultTransport.(*http.Transport).Clone(), digest: layer.Digest, at: layer.Size * 3 / 4, release: make(chan struct{})}
	s, dir, ctx, errs := heldPull(t, reg, p)
	waitUnpacked(ctx, t, dir, "big/a", top["big/a"])
	if _, err := s.Content.ReaderAt(ctx, layer); err == nil {
		t.Fatal("the held layer's blob is in the store")
	}
	close(p.release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if r := p.requests(); len(r) != 1 {
		t.Fatalf("layer requests %q, want one", r)
	}
	key, path, err := s.MountImage(ctx, reg.Host+"/lib/big:v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnmountImage(ctx, key)
	for name, want := range top {
		if b, err := os.ReadFile(filepath.Join(path, name)); err != nil || string(b) != want {
			t.Fatalf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}

// TestPullStreamedLayerWrongDigest: the registry serves another blob of
// the same size for a layer that is being unpacked as it downloads. The
// pull fails with the digest mismatch; no snapshot (committed or being
// unpacked), no blob and no image is left.
func TestPullStreamedLayerWrongDigest(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img, _ := bigLayerImage(t, false)
	other, otherTop := bigLayerImage(t, true)
	reg.PushImage(t, "lib/big", "v1", img)
	layer := img.Layers[1]
	swap := other.Blobs[other.Layers[1].Digest]
	if int64(len(swap)) != layer.Size {
		t.Fatalf("swapped layer is %d bytes, want %d", len(swap), layer.Size)
	}
	p := &holdProxy{base: http.DefaultTransport.(*http.Transport).Clone(), digest: layer.Digest, at: layer.Size * 3 / 4, release: make(chan struct{}), swap: swap}
	s, dir, ctx, errs := heldPull(t, reg, p)
	waitUnpacked(ctx, t, dir, "big/a", otherTop["big/a"])
	close(p.release)
	err := <-errs
	if !errors.Is(err, content.ErrDigestMismatch) {
		t.Fatalf("pull of a layer with the wrong digest: %v", err)
	}
	if _, err := s.Get(ctx, reg.Host+"/lib/big:v1"); !store.IsNotFound(err) {
		t.Fatalf("image recorded after a failed pull: %v", err)
	}
	if _, err := s.Content.ReaderAt(ctx, layer); err == nil {
		t.Fatal("the wrong blob is in the store")
	}
	// Only the bottom layer, which was good, may be committed.
	for _, i := range snapshotInfos(ctx, t, s) {
		if i.Kind != snapshot.KindCommitted || i.Parent != "" {
			t.Errorf("snapshot left: %+v", i)
		}
	}
}

// TestPullStreamedLayerResumed: the connection of a layer being unpacked
// as it downloads is cut half-way; the download resumes with a Range
// request, the layer is unpacked again from the committed blob, and the
// tree is the one an ordinary pull gives.
func TestPullStreamedLayerResumed(t *testing.T) {
	testenv.RequireRoot(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img, top := bigLayerImage(t, false)
	reg.PushImage(t, "lib/big", "v1", img)
	layer := img.Layers[1]
	p := &holdProxy{base: http.DefaultTransport.(*http.Transport).Clone(), digest: layer.Digest, at: layer.Size * 3 / 4, release: make(chan struct{}), cut: true}
	s, dir, ctx, errs := heldPull(t, reg, p)
	name := reg.Host + "/lib/big:v1"
	waitUnpacked(ctx, t, dir, "big/a", top["big/a"])
	close(p.release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if r := p.requests(); len(r) != 2 || r[0] != "" || !strings.HasPrefix(r[1], "bytes=") {
		t.Fatalf("layer requests %q, want a GET and a resuming one", r)
	}
	infos := snapshotInfos(ctx, t, s)
	for _, i := range infos {
		if i.Kind != snapshot.KindCommitted {
			t.Errorf("snapshot left: %+v", i)
		}
	}
	if len(infos) != 2 {
		t.Fatalf("%d snapshots, want 2", len(infos))
	}

	plain := openAt(t, t.TempDir(), nil)
	if _, err := plain.PullAndUnpack(ctx, name, store.PullOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := mountedTree(ctx, t, s, name), mountedTree(ctx, t, plain, name); got != want {
		t.Fatalf("tree after a resumed layer:\n%s\nafter an ordinary pull:\n%s", got, want)
	}
}

// mountedTree lists the image's files: path, mode, size and digest.
func mountedTree(ctx context.Context, t *testing.T, s *store.Store, name string) string {
	t.Helper()
	key, root, err := s.MountImage(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.UnmountImage(ctx, key)
	var b strings.Builder
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = digest.FromBytes(data).String()
		}
		b.WriteString(rel + " " + fi.Mode().String() + " " + sum + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
