package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/snapshot/overlay"
)

// benchLayer is a layer shaped like a distribution base: many small files
// in a few hundred directories, and some large ones.
func benchLayer(b *testing.B) []byte {
	rng := rand.New(rand.NewSource(1))
	var es []entry
	big := make([]byte, 4<<20)
	rng.Read(big)
	for d := range 200 {
		dn := fmt.Sprintf("usr/lib/pkg%03d/", d)
		es = append(es, dir(dn))
		for f := range 50 {
			es = append(es, file(fmt.Sprintf("%sf%02d", dn, f), string(big[f*1000:f*1000+rng.Intn(8000)])))
		}
		if d%20 == 0 {
			es = append(es, file(dn+"big", string(big)))
		}
	}
	return layer(b, es...)
}

func BenchmarkApply(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	raw := benchLayer(b)
	for name, data := range map[string][]byte{"tar": raw, "gzip": gz(b, raw), "zstd": zst(b, raw)} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				b.StopTimer()
				root := b.TempDir()
				b.StartTimer()
				if _, _, err := Apply(context.Background(), root, bytes.NewReader(data), Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkApplyImage unpacks the layers of the OCI layout in
// HAKO_BENCH_LAYOUT (scripts/bench-pull.sh builds one from a debootstrap
// rootfs, under /var/tmp/hako-bench-pull/layout) into fresh overlay
// snapshots, the way a pull does, and for comparison only reads them
// (decompress, hash, tar headers): the difference is the file system work.
//
//	HAKO_BENCH_LAYOUT=/var/tmp/hako-bench-pull/layout go test ./internal/unpack \
//	    -run '^$' -bench ApplyImage -benchtime 5x -cpuprofile cpu.out
func BenchmarkApplyImage(b *testing.B) {
	layout := os.Getenv("HAKO_BENCH_LAYOUT")
	if layout == "" {
		b.Skip("HAKO_BENCH_LAYOUT names an OCI layout (scripts/bench-pull.sh builds one)")
	}
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	blobs, diffIDs := layoutLayers(b, layout)
	var size int64
	for _, p := range blobs {
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		size += st.Size()
	}
	ctx := context.Background()
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for _, p := range blobs {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				dec, closeDec, err := decompress(f)
				if err != nil {
					b.Fatal(err)
				}
				m := &meter{r: dec, h: sha256.New(), max: DefaultMaxSize}
				tr := tar.NewReader(m)
				for {
					if _, err := tr.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
				io.Copy(io.Discard, m)
				closeDec()
				f.Close()
			}
		}
	})
	b.Run("overlay", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			b.StopTimer()
			// Start from clean pages: the previous iterations' writeback
			// would otherwise land in this one.
			unix.Sync()
			sn, err := overlay.New(ctx, b.TempDir())
			if err != nil {
				b.Skip(err)
			}
			var layers []Layer
			for i, p := range blobs {
				layers = append(layers, Layer{DiffID: diffIDs[i], Open: func(context.Context) (io.ReadCloser, error) { return os.Open(p) }})
			}
			b.StartTimer()
			if _, err := ApplyLayers(ctx, sn, layers, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// layoutLayers returns the layer blob paths and diffIDs of the only image
// in an OCI layout.
func layoutLayers(b *testing.B, layout string) ([]string, []digest.Digest) {
	blob := func(d digest.Digest) string {
		return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
	}
	read := func(p string, v any) {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			b.Fatal(err)
		}
	}
	var idx ocispec.Index
	read(filepath.Join(layout, "index.json"), &idx)
	var m ocispec.Manifest
	read(blob(idx.Manifests[0].Digest), &m)
	var cfg ocispec.Image
	read(blob(m.Config.Digest), &cfg)
	var paths []string
	for _, l := range m.Layers {
		paths = append(paths, blob(l.Digest))
	}
	return paths, cfg.RootFS.DiffIDs
}
