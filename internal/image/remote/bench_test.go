package remote_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/testenv"
)

// benchLayer is a gzip layer of about n bytes of text-like data (it
// compresses about 3:1, like a distribution's files).
func benchLayer(b *testing.B, seed int64, n int) (blob []byte, diffID digest.Digest) {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"lib", "usr", "share", "doc", "copyright", "the", "GNU", "General", "Public", "License", "\n", "0x7f", "ELF", "\x00\x00"}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	for file := 0; tarBuf.Len() < n; file++ {
		var body bytes.Buffer
		for body.Len() < 1<<20 {
			body.WriteString(words[rng.Intn(len(words))])
			body.WriteByte(byte(rng.Intn(256)))
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%d", file), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(body.Len())})
		tw.Write(body.Bytes())
	}
	tw.Close()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(tarBuf.Bytes())
	zw.Close()
	return gz.Bytes(), digest.FromBytes(tarBuf.Bytes())
}

// BenchmarkPullVsSkopeo pulls one multi-layer image from the local registry
// with hako and with `skopeo copy docker://... oci:...` (the Debian tool),
// so one run gives the ratio. HAKO_BENCH_MB sets the uncompressed size
// (default 160), spread over 5 layers.
//
//	go test ./internal/image/remote -run '^$' -bench PullVsSkopeo -benchtime 3x
func BenchmarkPullVsSkopeo(b *testing.B) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		b.Skip("needs skopeo")
	}
	total := 160
	if v, err := strconv.Atoi(os.Getenv("HAKO_BENCH_MB")); err == nil && v > 0 {
		total = v
	}
	reg := testenv.StartRegistry(b, testenv.RegistryOptions{})
	const layers = 5
	var descs []ocispec.Descriptor
	var diffIDs []digest.Digest
	var size int64
	for i := range layers {
		blob, diffID := benchLayer(b, int64(i), total<<20/layers)
		d := reg.PushBlob(b, "bench/big", blob)
		d.MediaType = ocispec.MediaTypeImageLayerGzip
		descs = append(descs, d)
		diffIDs = append(diffIDs, diffID)
		size += d.Size
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: amd64, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	cd := reg.PushBlob(b, "bench/big", cfg)
	cd.MediaType = ocispec.MediaTypeImageConfig
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: descs})
	reg.PushManifest(b, "bench/big", "v1", ocispec.MediaTypeImageManifest, m)
	b.Logf("image: %d layers, %.1f MB compressed", layers, float64(size)/1e6)

	b.Run("hako", func(b *testing.B) {
		b.SetBytes(size)
		c := remote.New(remote.Options{})
		for range b.N {
			s, err := newBenchStore(b)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			if _, err := c.Pull(context.Background(), refB(b, reg.Host+"/bench/big:v1"), remote.PullOptions{Store: s}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/pull")
		}
	})
	b.Run("skopeo", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			dir := filepath.Join(b.TempDir(), "oci")
			start := time.Now()
			if out, err := exec.Command(skopeo, "copy", "--quiet", "--src-tls-verify=false", "docker://"+reg.Host+"/bench/big:v1", "oci:"+dir+":v1").CombinedOutput(); err != nil {
				b.Fatalf("skopeo: %v\n%s", err, out)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/pull")
		}
	})
}

func newBenchStore(b *testing.B) (*content.Local, error) { return content.NewLocal(b.TempDir()) }

func refB(b *testing.B, s string) image.Reference {
	r, err := image.ParseReference(s)
	if err != nil {
		b.Fatal(err)
	}
	return r
}
