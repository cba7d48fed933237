package remote_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/snapshot/overlay"
	"github.com/hako-runtime/hako/internal/testenv"
	"github.com/hako-runtime/hako/internal/unpack"
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

// BenchmarkPullUnpack pulls HAKO_BENCH_REF (an image in a plain-HTTP
// registry, e.g. 127.0.0.1:5000/bench:latest) into a content store and
// unpacks it into overlay snapshots, each layer as soon as it is
// downloaded while the next ones still download: what `hako pull` does.
// HAKO_BENCH_ROOT, if set, is the data root (it must not exist yet; one
// subdirectory per iteration). scripts/bench-pull.sh runs it with
// -test.benchtime 1x under hyperfine, next to skopeo copy + umoci unpack.
func BenchmarkPullUnpack(b *testing.B) {
	name := os.Getenv("HAKO_BENCH_REF")
	if name == "" {
		b.Skip("HAKO_BENCH_REF names the image to pull (scripts/bench-pull.sh sets it)")
	}
	ref := refB(b, name)
	root := os.Getenv("HAKO_BENCH_ROOT")
	if root == "" {
		root = b.TempDir()
	}
	i := 0
	for b.Loop() {
		i++
		if err := pullUnpack(context.Background(), ref, filepath.Join(root, strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
}

// pullUnpack is the pipeline of BenchmarkPullUnpack: remote.Pull runs in
// the background and reports each blob as committed; ApplyLayers opens a
// layer only once it is.
func pullUnpack(ctx context.Context, ref image.Reference, root string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	cs, err := content.NewLocal(filepath.Join(root, "content"))
	if err != nil {
		return err
	}
	sn, err := overlay.New(ctx, filepath.Join(root, "snapshots", "overlay"))
	if err != nil {
		return err
	}
	c := remote.New(remote.Options{})
	repo, err := c.Repository(ref)
	if err != nil {
		return err
	}
	top, err := repo.Resolve(ctx)
	if err != nil {
		return err
	}
	raw, err := image.ReadAll(ctx, repo, top, image.MaxManifestSize)
	if err != nil {
		return err
	}
	m, err := image.ParseManifest(raw, top.MediaType)
	if err != nil {
		return err
	}

	var mu sync.Mutex
	ready := map[digest.Digest]chan struct{}{}
	readyCh := func(d digest.Digest) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if ready[d] == nil {
			ready[d] = make(chan struct{})
		}
		return ready[d]
	}
	pulled := make(chan struct{})
	go func() {
		defer close(pulled)
		_, err := c.Pull(ctx, ref, remote.PullOptions{Store: cs, Progress: func(p remote.Progress) {
			if p.State != remote.ProgressDone && p.State != remote.ProgressExists {
				return
			}
			ch := readyCh(p.Descriptor.Digest)
			select {
			case <-ch:
			default:
				close(ch)
			}
		}})
		if err != nil {
			cancel(fmt.Errorf("pull: %w", err))
		}
	}()
	wait := func(d digest.Digest) error {
		select {
		case <-readyCh(d):
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := wait(m.Config.Digest); err != nil {
		return err
	}
	cb, err := content.ReadBlob(ctx, cs, m.Config)
	if err != nil {
		return err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return err
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return errors.New("config and manifest disagree on the layers")
	}
	layers := make([]unpack.Layer, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = unpack.Layer{DiffID: cfg.RootFS.DiffIDs[i], Open: func(ctx context.Context) (io.ReadCloser, error) {
			if err := wait(l.Digest); err != nil {
				return nil, err
			}
			ra, err := cs.ReaderAt(ctx, l)
			if err != nil {
				return nil, err
			}
			return struct {
				io.Reader
				io.Closer
			}{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
		}}
	}
	_, err = unpack.ApplyLayers(ctx, sn, layers, unpack.Options{})
	if err != nil {
		cancel(err)
	}
	<-pulled
	return context.Cause(ctx)
}
