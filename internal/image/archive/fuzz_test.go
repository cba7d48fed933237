package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/testenv"
)

// FuzzOpenLoad feeds arbitrary bytes to Open and Load: no panic, no hang,
// and nothing in the store that does not hash to its name (the store
// verifies) — the fuzzer looks for crashes and loops in the tar and JSON
// handling.
func FuzzOpenLoad(f *testing.F) {
	img := testenv.BuildImage(f, ocispec.Platform{OS: "linux", Architecture: "amd64"}, testenv.TestLayer{"a": "b"})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range layoutEntries(nil, img, "example.com/x:1") {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg})
		tw.Write(e.data)
	}
	tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := archive.Open(context.Background(), p)
		if err != nil {
			return
		}
		defer a.Close()
		s, err := content.NewLocal(filepath.Join(dir, "store"))
		if err != nil {
			t.Fatal(err)
		}
		a.Load(context.Background(), s)
	})
}
