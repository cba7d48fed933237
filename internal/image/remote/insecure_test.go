package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestCertsDir: a registry with a private CA is trusted through
// <certs.d>/<host>/*.crt, and a client certificate from <name>.cert/.key
// is presented; without them the pull fails.
func TestCertsDir(t *testing.T) {
	img := twoLayerImage(t, amd64)
	f := &fakeRegistry{blobs: img.Blobs, manifests: manifestsOf(img)}
	srv := httptest.NewUnstartedServer(f)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	// httptest's certificate is valid for example.com: dial that name to
	// the server.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		return d.DialContext(ctx, network, strings.TrimPrefix(srv.URL, "https://"))
	}
	certs := t.TempDir()
	client := func() *remote.Client {
		return remote.New(remote.Options{Transport: tr, CertsDir: certs, Backoff: time.Millisecond, Retries: 1})
	}
	pull := func() error {
		_, err := client().Pull(context.Background(), ref(t, "example.com/x/y:v1"), remote.PullOptions{Store: newStore(t)})
		return err
	}
	if err := pull(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("private CA without certs.d: %v", err)
	}
	hostDir := filepath.Join(certs, "example.com")
	os.MkdirAll(hostDir, 0o755)
	os.WriteFile(filepath.Join(hostDir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	if err := pull(); err == nil {
		t.Fatal("pull without the client certificate the server requires succeeded")
	}
	certPEM, keyPEM := selfSigned(t)
	os.WriteFile(filepath.Join(hostDir, "client.cert"), certPEM, 0o644)
	os.WriteFile(filepath.Join(hostDir, "client.key"), keyPEM, 0o600)
	if err := pull(); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	os.WriteFile(filepath.Join(hostDir, "ca.crt"), []byte("garbage"), 0o644)
	if err := pull(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("broken ca.crt: %v", err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hako-test-client"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
