package remote_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/registries"
	"github.com/hako-runtime/hako/internal/testenv"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

func newStore(t *testing.T) *content.Local {
	t.Helper()
	s, err := content.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newClient(t *testing.T, cfg string, auth *registries.Auth) *remote.Client {
	t.Helper()
	c, err := registries.Parse([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	return remote.New(remote.Options{Config: c, Auth: auth, Backoff: time.Millisecond, Retries: 2, Transport: hermetic()})
}

// hermetic is a transport that answers names under .invalid (RFC 2606) as
// not found without asking DNS, so tests do not depend on a resolver.
func hermetic() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, _, _ := net.SplitHostPort(addr); strings.HasSuffix(host, ".invalid") {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

func ref(t *testing.T, s string) image.Reference {
	t.Helper()
	r, err := image.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func authFor(t *testing.T, host, user, pass string) *registries.Auth {
	t.Helper()
	a, err := registries.ParseAuth([]byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// assertStored checks that every blob of img is in the store.
func assertStored(t *testing.T, s content.Store, img *testenv.TestImage) {
	t.Helper()
	for dg, b := range img.Blobs {
		got, err := content.ReadBlob(context.Background(), s, ocispec.Descriptor{Digest: dg, Size: int64(len(b))})
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %s not stored correctly: %v", dg, err)
		}
	}
}

func assertAbsent(t *testing.T, s content.Store, dgs ...digest.Digest) {
	t.Helper()
	for _, dg := range dgs {
		if _, err := s.Info(context.Background(), dg); !errors.Is(err, content.ErrNotFound) {
			t.Fatalf("blob %s in the store (Info: %v), want absent", dg, err)
		}
	}
}

func twoLayerImage(t *testing.T, p ocispec.Platform) *testenv.TestImage {
	big := strings.Repeat("x", 300<<10) + p.Architecture // gzip compresses it; still several reads
	return testenv.BuildImage(t, p, testenv.TestLayer{"etc/arch": p.Architecture}, testenv.TestLayer{"big": big, "bin/tool": "tool " + p.Architecture})
}

func TestPullByTagAndDigest(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "test/app", "v1", img)
	c := newClient(t, "", nil)
	ctx := context.Background()

	s := newStore(t)
	var mu sync.Mutex
	final := map[digest.Digest]remote.Progress{}
	desc, err := c.Pull(ctx, ref(t, reg.Host+"/test/app:v1"), remote.PullOptions{Store: s, Progress: func(p remote.Progress) {
		mu.Lock()
		final[p.Descriptor.Digest] = p
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != img.Manifest.Digest || desc.MediaType != ocispec.MediaTypeImageManifest || desc.Size != img.Manifest.Size {
		t.Fatalf("Pull = %+v, want %+v", desc, img.Manifest)
	}
	assertStored(t, s, img)
	for _, l := range append(img.Layers, img.Config) {
		if p := final[l.Digest]; p.State != remote.ProgressDone || p.Done != l.Size || p.Total != l.Size {
			t.Errorf("last progress for %s = %+v, want done %d/%d", l.Digest, p, l.Size, l.Size)
		}
	}

	// A second pull finds everything present.
	final = map[digest.Digest]remote.Progress{}
	if _, err := c.Pull(ctx, ref(t, reg.Host+"/test/app:v1"), remote.PullOptions{Store: s, Progress: func(p remote.Progress) { final[p.Descriptor.Digest] = p }}); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if final[l.Digest].State != remote.ProgressExists {
			t.Errorf("re-pull: layer %s state %v, want exists", l.Digest, final[l.Digest].State)
		}
	}

	// By digest, into a fresh store, and read back as an Image.
	s2 := newStore(t)
	byDigest := ref(t, reg.Host+"/test/app@"+img.Manifest.Digest.String())
	if desc, err = c.Pull(ctx, byDigest, remote.PullOptions{Store: s2}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s2, img)
	local, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s2}, desc, amd64)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := local.Config(ctx)
	if err != nil || len(cfg.RootFS.DiffIDs) != 2 {
		t.Fatalf("stored image config: %+v, %v", cfg, err)
	}

	// The lazy remote Image reads the same layers.
	rimg, err := c.Image(ctx, ref(t, reg.Host+"/test/app:v1"), amd64)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := rimg.Layers(ctx)
	if err != nil || len(ls) != 2 {
		t.Fatalf("remote layers: %v %v", ls, err)
	}
	rc, err := ls[1].Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, img.Blobs[img.Layers[1].Digest]) {
		t.Fatalf("remote layer read: %v", err)
	}

	// Unknown tag: a clear not-found naming the endpoint.
	_, err = c.Pull(ctx, ref(t, reg.Host+"/test/app:nope"), remote.PullOptions{Store: s})
	if !errors.Is(err, image.ErrNotFound) || !strings.Contains(err.Error(), reg.Host+"/test/app") {
		t.Fatalf("pull of unknown tag: %v", err)
	}
}

func TestPullMultiArch(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	imgAMD, imgARM := twoLayerImage(t, amd64), twoLayerImage(t, arm64)
	idx := reg.PushIndex(t, "test/multi", "latest", imgAMD, imgARM)
	c := newClient(t, "", nil)
	ctx := context.Background()
	for _, tt := range []struct {
		platform   *ocispec.Platform
		want, skip *testenv.TestImage
	}{
		{nil, imgAMD, imgARM}, // the default is this host: linux/amd64 on CI
		{&arm64, imgARM, imgAMD},
		{&amd64, imgAMD, imgARM},
	} {
		if tt.platform == nil && image.DefaultPlatform().Architecture != "amd64" {
			continue
		}
		s := newStore(t)
		desc, err := c.Pull(ctx, ref(t, reg.Host+"/test/multi"), remote.PullOptions{Store: s, Platform: tt.platform})
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != idx.Digest || !image.IsIndex(desc.MediaType) {
			t.Fatalf("Pull resolved %+v, want the index %s", desc, idx.Digest)
		}
		assertStored(t, s, tt.want)
		assertAbsent(t, s, tt.skip.Manifest.Digest, tt.skip.Config.Digest)
		p := image.DefaultPlatform()
		if tt.platform != nil {
			p = *tt.platform
		}
		local, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s}, desc, p)
		if err != nil || local.Descriptor().Digest != tt.want.Manifest.Digest {
			t.Fatalf("resolve from store: %v, %v", local, err)
		}
	}
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}
	if _, err := c.Pull(ctx, ref(t, reg.Host+"/test/multi"), remote.PullOptions{Store: newStore(t), Platform: &s390x}); !errors.Is(err, image.ErrNoMatchingPlatform) {
		t.Fatalf("pull for a platform the index lacks: %v", err)
	}
}

func TestPullBasicAuth(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "alice", Password: "s3cret"})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "private/app", "v1", img)
	ctx := context.Background()
	r := ref(t, reg.Host+"/private/app:v1")

	_, err := newClient(t, "", nil).Pull(ctx, r, remote.PullOptions{Store: newStore(t)})
	if !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("pull without credentials: %v, want ErrUnauthorized", err)
	}
	_, err = newClient(t, "", authFor(t, reg.Host, "alice", "wrong")).Pull(ctx, r, remote.PullOptions{Store: newStore(t)})
	if !errors.Is(err, remote.ErrUnauthorized) {
		t.Fatalf("pull with a wrong password: %v, want ErrUnauthorized", err)
	}
	s := newStore(t)
	if _, err := newClient(t, "", authFor(t, reg.Host, "alice", "s3cret")).Pull(ctx, r, remote.PullOptions{Store: s}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
}

// TestPullBearerToken puts a token-checking proxy and a token server in
// front of the real registry: the client must follow the challenge to the
// realm with its basic credentials and the repository's pull scope.
func TestPullBearerToken(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "team/app", "v1", img)

	var tokenCalls atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenCalls.Add(1)
		user, pass, ok := r.BasicAuth()
		if !ok || user != "bob" || pass != "pw" {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Get("service") != "test-registry" {
			http.Error(w, "wrong service", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"token":"tok:%s","expires_in":300}`, r.URL.Query().Get("scope"))
	}))
	defer tokens.Close()
	target, _ := url.Parse("http://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := ""
		if strings.HasPrefix(r.URL.Path, "/v2/team/app/") {
			want = "Bearer tok:repository:team/app:pull"
		}
		if r.URL.Path == "/v2/" || r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test-registry"`, tokens.URL))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	ctx := context.Background()

	s := newStore(t)
	if _, err := newClient(t, "", authFor(t, host, "bob", "pw")).Pull(ctx, ref(t, host+"/team/app:v1"), remote.PullOptions{Store: s}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	if n := tokenCalls.Load(); n != 1 {
		t.Errorf("token endpoint called %d times, want once (tokens are cached per scope)", n)
	}
	_, err := newClient(t, "", authFor(t, host, "bob", "nope")).Pull(ctx, ref(t, host+"/team/app:v1"), remote.PullOptions{Store: newStore(t)})
	if !errors.Is(err, remote.ErrUnauthorized) || !strings.Contains(err.Error(), "token") {
		t.Fatalf("pull with bad token credentials: %v", err)
	}
}

func TestPullThroughMirror(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "mirrored/lib/app", "v1", img)
	ctx := context.Background()

	// The name's own registry does not exist; the mirror serves it under
	// another path. The pulled image keeps its name and digest.
	cfg := fmt.Sprintf(`
[[registry]]
prefix = "unreachable.invalid"
[[registry.mirror]]
location = "%s/mirrored"
`, reg.Host)
	s := newStore(t)
	desc, err := newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app:v1"), remote.PullOptions{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != img.Manifest.Digest {
		t.Fatalf("pulled %s, want %s", desc.Digest, img.Manifest.Digest)
	}
	assertStored(t, s, img)

	// A dead mirror falls back to the location (here the real registry,
	// reached by rewriting the prefix).
	cfg = fmt.Sprintf(`
[[registry]]
prefix = "unreachable.invalid"
location = "%s/mirrored"
[[registry.mirror]]
location = "127.0.0.1:1/dead"
`, reg.Host)
	if _, err := newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app:v1"), remote.PullOptions{Store: newStore(t)}); err != nil {
		t.Fatalf("fallback from a dead mirror: %v", err)
	}

	// Nothing serves it: the error names every host tried.
	cfg = `
[[registry]]
prefix = "unreachable.invalid"
[[registry.mirror]]
location = "127.0.0.1:1/dead"
`
	_, err = newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app:v1"), remote.PullOptions{Store: newStore(t)})
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1/dead/lib/app") || !strings.Contains(err.Error(), "unreachable.invalid/lib/app") {
		t.Fatalf("error should name both endpoints: %v", err)
	}
	// A digest-only mirror (CRI-O's pull-from-mirror) serves pinned
	// references only; a tag goes to the (here unreachable) location.
	cfg = fmt.Sprintf(`
[[registry]]
prefix = "unreachable.invalid"
[[registry.mirror]]
location = "%s/mirrored"
pull-from-mirror = "digest-only"
`, reg.Host)
	if _, err := newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app@"+img.Manifest.Digest.String()), remote.PullOptions{Store: newStore(t)}); err != nil {
		t.Fatalf("digest pull through a digest-only mirror: %v", err)
	}
	if _, err := newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app:v1"), remote.PullOptions{Store: newStore(t)}); err == nil || strings.Contains(err.Error(), reg.Host) {
		t.Fatalf("tag pull must not use a digest-only mirror: %v", err)
	}

	// A mirror that lacks the image (404) also falls through.
	cfg = fmt.Sprintf(`
[[registry]]
prefix = "unreachable.invalid"
location = "%[1]s/mirrored"
[[registry.mirror]]
location = "%[1]s/elsewhere"
`, reg.Host)
	if _, err := newClient(t, cfg, nil).Pull(ctx, ref(t, "unreachable.invalid/lib/app:v1"), remote.PullOptions{Store: newStore(t)}); err != nil {
		t.Fatalf("fallback from a mirror without the image: %v", err)
	}
}

// TestPullManifestLiesAboutSize pushes manifests whose layer descriptor is
// smaller and larger than the blob really is.
func TestPullManifestLiesAboutSize(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, amd64)
	reg.PushImage(t, "test/liar", "honest", img)
	c := newClient(t, "", nil)
	for _, delta := range []int64{-10, +10} {
		m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":%d}]}`,
			ocispec.MediaTypeImageManifest, img.Config.MediaType, img.Config.Digest, img.Config.Size,
			img.Layers[0].MediaType, img.Layers[0].Digest, img.Layers[0].Size,
			img.Layers[1].MediaType, img.Layers[1].Digest, img.Layers[1].Size+delta)
		tag := fmt.Sprintf("lie%d", delta+100)
		reg.PushManifest(t, "test/liar", tag, ocispec.MediaTypeImageManifest, []byte(m))
		s := newStore(t)
		_, err := c.Pull(context.Background(), ref(t, reg.Host+"/test/liar:"+tag), remote.PullOptions{Store: s})
		if !errors.Is(err, content.ErrSizeMismatch) {
			t.Fatalf("manifest with layer size %+d: %v, want ErrSizeMismatch", delta, err)
		}
		t.Logf("size %+d: %v", delta, err)
		assertAbsent(t, s, img.Layers[1].Digest, digest.FromString(m))
	}
}

// fakeRegistry serves one image from memory, letting a test tamper with it.
type fakeRegistry struct {
	blobs     map[digest.Digest][]byte
	manifests map[string][]byte // tag or digest -> document
	serve     func(dg digest.Digest, b []byte) []byte
	hits      sync.Map // path -> *atomic.Int32
}

func (f *fakeRegistry) hit(p string) int32 {
	v, _ := f.hits.LoadOrStore(p, new(atomic.Int32))
	return v.(*atomic.Int32).Add(1)
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.hit(r.URL.Path)
	if r.URL.Path == "/v2/" {
		return
	}
	if i := strings.Index(r.URL.Path, "/manifests/"); i > 0 {
		m, ok := f.manifests[r.URL.Path[i+len("/manifests/"):]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(m).String())
		w.Write(m)
		return
	}
	if i := strings.Index(r.URL.Path, "/blobs/"); i > 0 {
		dg := digest.Digest(r.URL.Path[i+len("/blobs/"):])
		b, ok := f.blobs[dg]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if f.serve != nil {
			b = f.serve(dg, b)
		}
		w.Write(b)
		return
	}
	http.NotFound(w, r)
}

func manifestsOf(img *testenv.TestImage) map[string][]byte {
	m := img.Blobs[img.Manifest.Digest]
	return map[string][]byte{"v1": m, img.Manifest.Digest.String(): m}
}

func fake(t *testing.T, img *testenv.TestImage) (*fakeRegistry, string) {
	f := &fakeRegistry{blobs: img.Blobs, manifests: manifestsOf(img)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func TestPullBlobDigestMismatch(t *testing.T) {
	img := twoLayerImage(t, amd64)
	bad := img.Layers[1].Digest
	f, host := fake(t, img)
	f.serve = func(dg digest.Digest, b []byte) []byte {
		if dg != bad {
			return b
		}
		b = append([]byte(nil), b...)
		b[len(b)/2] ^= 0x55 // same size, other content
		return b
	}
	s := newStore(t)
	_, err := newClient(t, "", nil).Pull(context.Background(), ref(t, host+"/x/y:v1"), remote.PullOptions{Store: s})
	if !errors.Is(err, content.ErrDigestMismatch) || !strings.Contains(err.Error(), bad.String()) {
		t.Fatalf("pull of a tampered layer: %v, want ErrDigestMismatch naming %s", err, bad)
	}
	t.Log(err)
	assertAbsent(t, s, bad, img.Manifest.Digest)
	if n, _ := f.hits.Load("/v2/x/y/blobs/" + bad.String()); n.(*atomic.Int32).Load() != 1 {
		t.Errorf("a digest mismatch was retried %d times; it is not transient", n.(*atomic.Int32).Load())
	}
}

func TestPullRetriesAndRedirects(t *testing.T) {
	img := twoLayerImage(t, amd64)
	_, blobHost := fake(t, img) // plays the CDN that blobs are redirected to
	var failures atomic.Int32
	f := &fakeRegistry{blobs: img.Blobs, manifests: manifestsOf(img)}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every path fails twice with 503 before it works.
		if f.hit(r.URL.Path) <= 2 {
			failures.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, "http://"+blobHost+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	s := newStore(t)
	if _, err := newClient(t, "", nil).Pull(context.Background(), ref(t, host+"/x/y:v1"), remote.PullOptions{Store: s}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	if failures.Load() == 0 {
		t.Fatal("the server never failed: test is broken")
	}

	// Failing for longer than the retry budget is an error that says so.
	always := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer always.Close()
	h := strings.TrimPrefix(always.URL, "http://")
	_, err := newClient(t, "", nil).Pull(context.Background(), ref(t, h+"/x/y:v1"), remote.PullOptions{Store: newStore(t)})
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("pull from a failing registry: %v", err)
	}
}

// brokenStreamImage pushes a one-layer image of 2 MiB to a new registry and
// fronts it with a proxy whose first response for the layer blob announces
// the full length, sends half and drops the connection. ranges returns the
// Range headers of every request for that blob.
func brokenStreamImage(t *testing.T) (host string, img *testenv.TestImage, ranges func() []string) {
	t.Helper()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i*7 + i/1000)
	}
	img = testenv.BuildImage(t, amd64, testenv.TestLayer{"big": string(big)})
	reg.PushImage(t, "test/big", "v1", img)
	layer := img.Layers[0]
	target, _ := url.Parse("http://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	var cut atomic.Bool
	var seen []string
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+layer.Digest.String()) {
			mu.Lock()
			seen = append(seen, r.Header.Get("Range"))
			mu.Unlock()
			if !cut.Swap(true) {
				b := img.Blobs[layer.Digest]
				w.Header().Set("Content-Length", fmt.Sprint(len(b)))
				w.WriteHeader(http.StatusOK)
				w.Write(b[:len(b)/2])
				w.(http.Flusher).Flush()
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return strings.TrimPrefix(front.URL, "http://"), img, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestPullResumesBrokenStream cuts a layer download in half: the client must
// continue with a Range request and keep the bytes it has.
func TestPullResumesBrokenStream(t *testing.T) {
	host, img, rangesOf := brokenStreamImage(t)
	s := newStore(t)
	if _, err := newClient(t, "", nil).Pull(context.Background(), ref(t, host+"/test/big:v1"), remote.PullOptions{Store: s}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	if ranges := rangesOf(); len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes=") || ranges[1] == "bytes=0-" {
		t.Fatalf("blob requests' Range headers: %q, want a first without and a resuming one", ranges)
	}
}

func TestManifestTooLarge(t *testing.T) {
	img := twoLayerImage(t, amd64)
	f, host := fake(t, img)
	f.manifests["huge"] = []byte(`{"schemaVersion":2,"padding":"` + strings.Repeat("a", image.MaxManifestSize) + `"}`)
	_, err := newClient(t, "", nil).Pull(context.Background(), ref(t, host+"/x/y:huge"), remote.PullOptions{Store: newStore(t)})
	if !errors.Is(err, image.ErrTooLarge) {
		t.Fatalf("pull of a 4 MiB+ manifest: %v, want ErrTooLarge", err)
	}
}

// TestConcurrentPullsDownloadOnce pulls one image twice at the same time
// into one store: each blob crosses the network once.
func TestConcurrentPullsDownloadOnce(t *testing.T) {
	img := twoLayerImage(t, amd64)
	f, host := fake(t, img)
	slow := f.serve
	f.serve = func(dg digest.Digest, b []byte) []byte {
		time.Sleep(20 * time.Millisecond) // widen the window for a collision
		if slow != nil {
			return slow(dg, b)
		}
		return b
	}
	s := newStore(t)
	c := newClient(t, "", nil)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Pull(context.Background(), ref(t, host+"/x/y:v1"), remote.PullOptions{Store: s})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	assertStored(t, s, img)
	for _, l := range append(img.Layers, img.Config) {
		if n, _ := f.hits.Load("/v2/x/y/blobs/" + l.Digest.String()); n.(*atomic.Int32).Load() != 1 {
			t.Errorf("blob %s fetched %d times", l.Digest, n.(*atomic.Int32).Load())
		}
	}
}

// TestPullDockerSchema2 pulls a Docker manifest list over a Docker schema 2
// manifest, the media types most registries still serve.
func TestPullDockerSchema2(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, arm64)
	cfg := reg.PushBlob(t, "test/docker", img.Blobs[img.Config.Digest])
	var layers []string
	for _, l := range img.Layers {
		reg.PushBlob(t, "test/docker", img.Blobs[l.Digest])
		layers = append(layers, fmt.Sprintf(`{"mediaType":%q,"size":%d,"digest":%q}`, image.MediaTypeDockerLayer, l.Size, l.Digest))
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"size":%d,"digest":%q},"layers":[%s]}`,
		image.MediaTypeDockerManifest, image.MediaTypeDockerConfig, cfg.Size, cfg.Digest, strings.Join(layers, ","))
	md := reg.PushManifest(t, "test/docker", "arm-only", image.MediaTypeDockerManifest, []byte(m))
	list := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"size":%d,"digest":%q,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`,
		image.MediaTypeDockerManifestList, image.MediaTypeDockerManifest, md.Size, md.Digest)
	ld := reg.PushManifest(t, "test/docker", "list", image.MediaTypeDockerManifestList, []byte(list))

	c := newClient(t, "", nil)
	s := newStore(t)
	desc, err := c.Pull(context.Background(), ref(t, reg.Host+"/test/docker:list"), remote.PullOptions{Store: s, Platform: &arm64})
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != image.MediaTypeDockerManifestList || desc.Digest != ld.Digest {
		t.Fatalf("resolved %+v, want the manifest list %s", desc, ld.Digest)
	}
	assertStored(t, s, &testenv.TestImage{Blobs: map[digest.Digest][]byte{
		md.Digest: []byte(m), ld.Digest: []byte(list), cfg.Digest: img.Blobs[img.Config.Digest],
		img.Layers[0].Digest: img.Blobs[img.Layers[0].Digest], img.Layers[1].Digest: img.Blobs[img.Layers[1].Digest],
	}})
	desc, err = c.Pull(context.Background(), ref(t, reg.Host+"/test/docker:arm-only"), remote.PullOptions{Store: newStore(t)})
	if err != nil || desc.MediaType != image.MediaTypeDockerManifest {
		t.Fatalf("pull of a schema 2 manifest: %+v, %v", desc, err)
	}
}

// TestPullResumesAfterCancel cancels a pull while a layer streams, then
// pulls again: the second pull must ask only for the missing bytes.
func TestPullResumesAfterCancel(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*13 + i/777)
	}
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"big": string(big)})
	reg.PushImage(t, "test/cancel", "v1", img)
	layer := img.Layers[0]
	target, _ := url.Parse("http://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stalled atomic.Bool
	var ranges []string
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+layer.Digest.String()) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
			if !stalled.Swap(true) {
				b := img.Blobs[layer.Digest]
				w.Header().Set("Content-Length", fmt.Sprint(len(b)))
				w.Write(b[:len(b)/3])
				w.(http.Flusher).Flush()
				<-r.Context().Done() // the client cancels (below) once bytes arrived
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")
	s := newStore(t)
	c := newClient(t, "", nil)
	// The user presses ^C once the layer is partly downloaded.
	onProgress := func(p remote.Progress) {
		if p.Descriptor.Digest == layer.Digest && p.State == remote.ProgressDownloading && p.Done > 0 {
			cancel()
		}
	}
	if _, err := c.Pull(ctx, ref(t, host+"/test/cancel:v1"), remote.PullOptions{Store: s, Progress: onProgress}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull: %v", err)
	}
	assertAbsent(t, s, layer.Digest, img.Manifest.Digest)
	if _, err := c.Pull(context.Background(), ref(t, host+"/test/cancel:v1"), remote.PullOptions{Store: s}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	if len(ranges) != 2 || ranges[1] == "" || ranges[1] == "bytes=0-" {
		t.Fatalf("Range headers %q: the second pull did not resume", ranges)
	}
}

// TestPullStallTimeout: a layer stream that stops delivering is abandoned
// after StallTimeout and resumed; one that never recovers fails with
// ErrStalled instead of hanging.
func TestPullStallTimeout(t *testing.T) {
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*17 + i/333)
	}
	img := testenv.BuildImage(t, amd64, testenv.TestLayer{"big": string(big)})
	layer := img.Layers[0]
	f := &fakeRegistry{blobs: img.Blobs, manifests: manifestsOf(img)}
	var stalls atomic.Int32
	stalls.Store(1)
	var ranges []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+layer.Digest.String()) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
			b := img.Blobs[layer.Digest]
			off := 0
			if rg := r.Header.Get("Range"); rg != "" {
				fmt.Sscanf(rg, "bytes=%d-", &off)
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, len(b)-1, len(b)))
				w.Header().Set("Content-Length", fmt.Sprint(len(b)-off))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", fmt.Sprint(len(b)))
			}
			if stalls.Add(-1) >= 0 {
				w.Write(b[off : off+(len(b)-off)/3])
				w.(http.Flusher).Flush()
				<-r.Context().Done() // hang until the client gives up
				return
			}
			w.Write(b[off:])
			return
		}
		f.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newClient(t, "", nil)
	s := newStore(t)
	start := time.Now()
	if _, err := c.Pull(context.Background(), ref(t, host+"/x/y:v1"), remote.PullOptions{Store: s, StallTimeout: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	assertStored(t, s, img)
	if len(ranges) != 2 || ranges[1] == "" {
		t.Fatalf("Range headers %q: the stalled stream was not resumed", ranges)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("stall detection took %v", time.Since(start))
	}

	stalls.Store(100)
	_, err := c.Pull(context.Background(), ref(t, host+"/x/y:v1"), remote.PullOptions{Store: newStore(t), StallTimeout: 100 * time.Millisecond})
	if !errors.Is(err, remote.ErrStalled) {
		t.Fatalf("pull from a registry that always stalls: %v, want ErrStalled", err)
	}
	t.Log(err)
}

// TestPullRefusesArtifactsAndWrongPlatform: a manifest whose config is not
// an image config is not pulled as an image, and a single-platform image
// for another platform is refused when a platform is asked for.
func TestPullRefusesArtifactsAndWrongPlatform(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := twoLayerImage(t, arm64)
	reg.PushImage(t, "test/armonly", "v1", img)
	c := newClient(t, "", nil)
	ctx := context.Background()
	if _, err := c.Pull(ctx, ref(t, reg.Host+"/test/armonly:v1"), remote.PullOptions{Store: newStore(t), Platform: &amd64}); !errors.Is(err, image.ErrNoMatchingPlatform) {
		t.Fatalf("arm64-only image pulled for amd64: %v", err)
	}
	if _, err := c.Pull(ctx, ref(t, reg.Host+"/test/armonly:v1"), remote.PullOptions{Store: newStore(t), Platform: &arm64}); err != nil {
		t.Fatal(err)
	}

	cfg := reg.PushBlob(t, "test/chart", []byte(`{"name":"chart"}`))
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":%q,"size":%d},"layers":[]}`,
		ocispec.MediaTypeImageManifest, cfg.Digest, cfg.Size)
	reg.PushManifest(t, "test/chart", "v1", ocispec.MediaTypeImageManifest, []byte(m))
	if _, err := c.Pull(ctx, ref(t, reg.Host+"/test/chart:v1"), remote.PullOptions{Store: newStore(t)}); !errors.Is(err, image.ErrUnsupportedMedia) {
		t.Fatalf("pull of a Helm chart: %v", err)
	}
}
