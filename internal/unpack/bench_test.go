package unpack

import (
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"os"
	"testing"
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
