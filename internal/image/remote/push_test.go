package remote_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/testenv"
)

// TestPushRoundTrip pushes a multi-platform image from memory to a registry
// with basic auth (through a proxy that counts uploads), pulls each
// platform back, and pushes again to see that present blobs are skipped.
func TestPushRoundTrip(t *testing.T) {
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "u", Password: "p"})
	target, _ := url.Parse("http://" + reg.Host)
	rp := httputil.NewSingleHostReverseProxy(target)
	var uploads, manifestPuts atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
			uploads.Add(1)
		}
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			manifestPuts.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	host := strings.TrimPrefix(front.URL, "http://")

	amd, arm := twoLayerImage(t, amd64), twoLayerImage(t, arm64)
	idx, idxBytes := testenv.IndexOf(t, amd, arm)
	src := image.BytesFetcher{idx.Digest: idxBytes}
	for _, img := range []*testenv.TestImage{amd, arm} {
		for d, b := range img.Blobs {
			src[d] = b
		}
	}
	ctx := context.Background()
	c := newClient(t, "", authFor(t, host, "u", "p"))
	if err := c.Push(ctx, ref(t, host+"/pushed/app:v1"), src, idx); err != nil {
		t.Fatal(err)
	}
	if n := uploads.Load(); n != 6 {
		t.Errorf("%d blob uploads, want 6 (2 configs, 4 layers)", n)
	}
	for _, tt := range []struct {
		p   ocispec.Platform
		img *testenv.TestImage
	}{{amd64, amd}, {arm64, arm}} {
		s := newStore(t)
		desc, err := c.Pull(ctx, ref(t, host+"/pushed/app:v1"), remote.PullOptions{Store: s, Platform: &tt.p})
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest != idx.Digest {
			t.Fatalf("pulled back %s, pushed %s", desc.Digest, idx.Digest)
		}
		assertStored(t, s, tt.img)
	}

	uploads.Store(0)
	if err := c.Push(ctx, ref(t, host+"/pushed/app:v2"), src, idx); err != nil {
		t.Fatal(err)
	}
	if n := uploads.Load(); n != 0 {
		t.Errorf("second push uploaded %d blobs the registry had", n)
	}

	// Without credentials the registry refuses.
	if err := newClient(t, "", nil).Push(ctx, ref(t, host+"/pushed/app:v3"), src, idx); err == nil {
		t.Fatal("push without credentials succeeded")
	}
	// A source that lies (bytes that do not match the digest) publishes
	// nothing under that digest.
	bad := image.BytesFetcher{}
	for d, b := range src {
		bad[d] = b
	}
	lb := append([]byte(nil), bad[amd.Layers[0].Digest]...)
	lb[len(lb)/2] ^= 1
	bad[amd.Layers[0].Digest] = lb
	if err := c.Push(ctx, ref(t, host+"/other/app:v1"), bad, amd.Manifest); err == nil {
		t.Fatal("push of a corrupted blob succeeded")
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg.Host+"/v2/other/app/blobs/"+amd.Layers[0].Digest.String(), nil)
	req.SetBasicAuth("u", "p")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("corrupted blob: registry answers %s, want 404", resp.Status)
	}
}
