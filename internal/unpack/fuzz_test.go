package unpack

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply feeds arbitrary bytes to Apply in both whiteout modes. Whatever
// the input, Apply must not panic and must not change anything outside the
// root: the canary beside it stays as it was and nothing new appears next
// to root. Run: go test -fuzz FuzzApply ./internal/unpack
func FuzzApply(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root (chown, mknod)")
	}
	f.Add([]byte{}, false)
	f.Add(layer(f, dir("a/"), file("a/b", "x"), symlink("l", "/etc"), hardlink("h", "a/b")), false)
	f.Add(layer(f, symlink("a", "../canary"), file("a/file", "pwned"), file("../canary/file", "x")), false)
	f.Add(layer(f, symlink("d", "../canary"), file("d/.wh.file", ""), file(".wh..", ""), file("d/.wh..wh..opq", "")), true)
	f.Add(layer(f, symlink("s", "../canary/file"), hardlink("h", "s"), file("h", "pwned"), hardlink("x", "../canary/file")), true)
	f.Add(gz(f, layer(f, file("a", "gzip"))), false)
	f.Add(zst(f, layer(f, file("a", "zstd"), dir("d/"), file("d/.wh..wh..opq", ""))), true)
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		s := newSandbox(t)
		mode := WhiteoutNative
		if overlay {
			mode = WhiteoutOverlay
		}
		// Seed the root with a symlink pointing at the canary, as a lower
		// layer of a hostile image could.
		if err := os.Symlink(s.canary, filepath.Join(s.root, "up")); err != nil {
			t.Fatal(err)
		}
		_, _, _ = Apply(context.Background(), s.root, bytes.NewReader(data), Options{Whiteouts: mode, MaxSize: 1 << 20, MaxEntries: 1000})
		s.check(t)
	})
}
