package unpack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hako-runtime/hako/internal/mount"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/snapshot/overlay"
	"github.com/hako-runtime/hako/internal/testenv"
	"github.com/opencontainers/go-digest"
)

func TestChainID(t *testing.T) {
	a, b := digest.FromString("a"), digest.FromString("b")
	if ChainID("", a) != a {
		t.Error("bottom chain ID is not the diffID")
	}
	if want := digest.FromString(a.String() + " " + b.String()); ChainID(a, b) != want {
		t.Errorf("ChainID = %s, want %s", ChainID(a, b), want)
	}
}

func TestApplyLayers(t *testing.T) {
	testenv.RequireRoot(t)
	if err := overlay.Supported(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	sn, err := overlay.New(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	raw := [][]byte{
		layer(t, dir("etc/"), file("etc/os", "one"), file("etc/gone", "x")),
		layer(t, file("etc/os", "two"), file("etc/.wh.gone", "")),
		layer(t, file("bin/app", "app")),
	}
	var mu sync.Mutex
	opened := 0
	layers := make([]Layer, len(raw))
	for i, b := range raw {
		data := gz(t, b)
		layers[i] = Layer{DiffID: sha(b), Open: func(context.Context) (io.ReadCloser, error) {
			mu.Lock()
			opened++
			mu.Unlock()
			return io.NopCloser(bytes.NewReader(data)), nil
		}}
	}

	// Two pulls of the same image at once both succeed.
	var wg sync.WaitGroup
	tops := make([]digest.Digest, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tops[i], errs[i] = ApplyLayers(ctx, sn, layers, Options{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := ChainID(ChainID(sha(raw[0]), sha(raw[1])), sha(raw[2]))
	if tops[0] != want || tops[1] != want {
		t.Fatalf("top chain IDs %v, want %s", tops, want)
	}

	// A third time opens nothing: every layer is there.
	opened = 0
	if _, err := ApplyLayers(ctx, sn, layers, Options{}); err != nil || opened != 0 {
		t.Fatalf("re-apply: %v, opened %d blobs", err, opened)
	}
	ms, err := sn.View(ctx, "v", want.String())
	if err != nil {
		t.Fatal(err)
	}
	err = mount.WithTempMount(ms, func(r string) error {
		if b, _ := os.ReadFile(filepath.Join(r, "etc/os")); string(b) != "two" {
			t.Errorf("etc/os = %q", b)
		}
		if _, err := os.Lstat(filepath.Join(r, "etc/gone")); err == nil {
			t.Error("etc/gone visible")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A layer that does not match its diffID is not committed, and its
	// active snapshot is gone.
	bad := []Layer{layers[0], {DiffID: digest.FromString("other"), Open: layers[2].Open}}
	if _, err := ApplyLayers(ctx, sn, bad, Options{}); !errors.Is(err, ErrDiffIDMismatch) {
		t.Fatalf("mismatching layer: %v", err)
	}
	n := 0
	sn.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		if i.Kind == snapshot.KindActive {
			t.Errorf("active snapshot %s left behind", i.Name)
		}
		if i.Kind == snapshot.KindCommitted && i.Labels[LabelUncompressedSize] == "" {
			t.Errorf("%s has no size label", i.Name)
		}
		n++
		return nil
	})
	if n != 4 { // three layers and the view
		t.Errorf("%d snapshots, want 4", n)
	}
}

// TestApplyLayersReadAhead covers the next layer being opened while the
// current one is applied: every opened blob is closed, whatever fails;
// an Open still waiting when the current layer fails is cancelled; a
// layer present already is neither opened nor applied again.
func TestApplyLayersReadAhead(t *testing.T) {
	testenv.RequireRoot(t)
	if err := overlay.Supported(); err != nil {
		t.Skip(err)
	}
	ctx := context.Background()
	raw := [][]byte{
		layer(t, file("a", "0")),
		layer(t, file("b", "1")),
		layer(t, file("c", "2")),
		layer(t, file("d", "3")),
	}
	var mu sync.Mutex
	open := map[int]int{} // layer -> blobs open now
	opens := map[int]int{}
	blob := func(i int, data []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			mu.Lock()
			defer mu.Unlock()
			open[i]++
			opens[i]++
			return closer{Reader: bytes.NewReader(data), close: func() { mu.Lock(); open[i]--; mu.Unlock() }}, nil
		}
	}
	mk := func() []Layer {
		ls := make([]Layer, len(raw))
		for i, b := range raw {
			ls[i] = Layer{DiffID: sha(b), Open: blob(i, gz(t, b))}
		}
		return ls
	}
	checkClosed := func(t *testing.T) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for i, n := range open {
			if n != 0 {
				t.Errorf("layer %d: %d blobs left open", i, n)
			}
		}
		clear(opens)
	}

	t.Run("next layer fails to open", func(t *testing.T) {
		sn, err := overlay.New(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ls := mk()
		boom := errors.New("boom")
		ls[2].Open = func(context.Context) (io.ReadCloser, error) { return nil, boom }
		if _, err := ApplyLayers(ctx, sn, ls, Options{}); !errors.Is(err, boom) {
			t.Fatalf("ApplyLayers = %v, want boom", err)
		}
		if opens[3] != 0 {
			t.Error("layer 3 opened after layer 2 failed")
		}
		checkClosed(t)
	})
	t.Run("current layer fails while the next waits", func(t *testing.T) {
		sn, err := overlay.New(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ls := mk()
		ls[1].DiffID = digest.FromString("not this layer")
		waited := make(chan struct{})
		ls[2].Open = func(ctx context.Context) (io.ReadCloser, error) {
			<-ctx.Done() // as a pull waiting for a download does
			close(waited)
			return nil, ctx.Err()
		}
		if _, err := ApplyLayers(ctx, sn, ls, Options{}); !errors.Is(err, ErrDiffIDMismatch) {
			t.Fatalf("ApplyLayers = %v, want a diffID mismatch", err)
		}
		<-waited
		checkClosed(t)
	})
	t.Run("layers present are skipped", func(t *testing.T) {
		sn, err := overlay.New(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		ls := mk()
		if _, err := ApplyLayers(ctx, sn, ls[:3], Options{}); err != nil {
			t.Fatal(err)
		}
		checkClosed(t)
		top, err := ApplyLayers(ctx, sn, ls, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if opens[0]+opens[1]+opens[2] != 0 || opens[3] != 1 {
			t.Errorf("opens %v, want only layer 3, once", opens)
		}
		checkClosed(t)
		ms, err := sn.View(ctx, "v", top.String())
		if err != nil {
			t.Fatal(err)
		}
		err = mount.WithTempMount(ms, func(r string) error {
			for i, n := range []string{"a", "b", "c", "d"} {
				if b, _ := os.ReadFile(filepath.Join(r, n)); string(b) != string(rune('0'+i)) {
					t.Errorf("%s = %q", n, b)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

type closer struct {
	io.Reader
	close func()
}

func (c closer) Close() error { c.close(); return nil }
