package testenv

import (
	"net/http"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRegistryStartsAndServesPushedImage(t *testing.T) {
	r := StartRegistry(t, RegistryOptions{Username: "u", Password: "p"})
	img := BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, TestLayer{"hello": "world"})
	d := r.PushImage(t, "test/img", "v1", img)
	if d.Digest != img.Manifest.Digest {
		t.Fatalf("pushed %s, built %s", d.Digest, img.Manifest.Digest)
	}
	resp, err := http.Get("http://" + r.Host + "/v2/test/img/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unauthenticated GET: %s, want 401", resp.Status)
	}
}
