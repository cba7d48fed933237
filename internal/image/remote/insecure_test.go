package remote_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/registries"
)

// TestInsecureOnlyWhenConfigured reaches a TLS server with an untrusted
// certificate and a plain-HTTP server under non-loopback names (a dialer
// maps them): both must fail unless the config marks them insecure.
func TestInsecureOnlyWhenConfigured(t *testing.T) {
	img := twoLayerImage(t, amd64)
	var plainHits atomic.Int32
	f := &fakeRegistry{blobs: img.Blobs, manifests: manifestsOf(img)}
	tlsSrv := httptest.NewTLSServer(f)
	defer tlsSrv.Close()
	plainSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		f.ServeHTTP(w, r)
	}))
	defer plainSrv.Close()
	addr := map[string]string{
		"tls.test":   strings.TrimPrefix(tlsSrv.URL, "https://"),
		"plain.test": strings.TrimPrefix(plainSrv.URL, "http://"),
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(a)
		if real, ok := addr[host]; ok {
			return d.DialContext(ctx, network, real)
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	client := func(cfg string) *remote.Client {
		c, err := registries.Parse([]byte(cfg), nil)
		if err != nil {
			t.Fatal(err)
		}
		return remote.New(remote.Options{Config: c, Transport: tr, Backoff: time.Millisecond, Retries: 2})
	}
	ctx := context.Background()

	_, err := client("").Pull(ctx, ref(t, "tls.test/x/y:v1"), remote.PullOptions{Store: newStore(t)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate on a secure registry: %v", err)
	}
	if _, err := client("[[registry]]\nlocation = \"tls.test\"\ninsecure = true\n").Pull(ctx, ref(t, "tls.test/x/y:v1"), remote.PullOptions{Store: newStore(t)}); err != nil {
		t.Fatalf("insecure TLS registry: %v", err)
	}

	_, err = client("").Pull(ctx, ref(t, "plain.test/x/y:v1"), remote.PullOptions{Store: newStore(t)})
	if err == nil || plainHits.Load() != 0 {
		t.Fatalf("plain HTTP registry not marked insecure: err=%v, %d plain requests", err, plainHits.Load())
	}
	if _, err := client("[[registry]]\nlocation = \"plain.test\"\ninsecure = true\n").Pull(ctx, ref(t, "plain.test/x/y:v1"), remote.PullOptions{Store: newStore(t)}); err != nil {
		t.Fatalf("insecure plain-HTTP registry: %v", err)
	}
}
