package imagecmd

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/image/store"
)

func layer(s string, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString(s), Size: size}
}

// A pull as the store reports it: layer b is downloaded before a, a is
// unpacked once it is in; c was unpacked before (blob and snapshot exist).
func feed(v *pullView) (a, b, c ocispec.Descriptor) {
	a, b, c = layer("a", 2_000_000), layer("b", 500), layer("c", 42)
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("cfg"), Size: 10}
	v.download(remote.Progress{Descriptor: cfg, State: remote.ProgressDone, Done: 10, Total: 10})
	for _, l := range []ocispec.Descriptor{a, b, c} {
		v.download(remote.Progress{Descriptor: l, State: remote.ProgressWaiting, Total: l.Size})
	}
	v.unpack(store.UnpackProgress{Layer: c, Index: 2, State: store.LayerExists})
	v.download(remote.Progress{Descriptor: c, State: remote.ProgressExists, Done: 42, Total: 42})
	v.download(remote.Progress{Descriptor: b, State: remote.ProgressDownloading, Done: 500, Total: 500})
	v.download(remote.Progress{Descriptor: b, State: remote.ProgressDone, Done: 500, Total: 500})
	v.download(remote.Progress{Descriptor: a, State: remote.ProgressDownloading, Done: 1_000_000, Total: 2_000_000})
	v.download(remote.Progress{Descriptor: a, State: remote.ProgressDownloading, Done: 1_500_000, Total: 2_000_000})
	v.download(remote.Progress{Descriptor: a, State: remote.ProgressDone, Done: 2_000_000, Total: 2_000_000})
	v.unpack(store.UnpackProgress{Layer: a, Index: 0, State: store.LayerUnpacking})
	v.unpack(store.UnpackProgress{Layer: a, Index: 0, State: store.LayerUnpacked})
	v.unpack(store.UnpackProgress{Layer: b, Index: 1, State: store.LayerUnpacking})
	v.unpack(store.UnpackProgress{Layer: b, Index: 1, State: store.LayerUnpacked})
	v.finish()
	return a, b, c
}

func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	a, b, c := feed(newPullView(&out, false, 0))
	s := func(d ocispec.Descriptor) string { return d.Digest.Encoded()[:12] }
	want := strings.Join([]string{
		s(a) + ": waiting",
		s(b) + ": waiting",
		s(c) + ": waiting",
		s(c) + ": exists 42B",
		s(b) + ": verifying",
		s(b) + ": downloaded 500B",
		s(a) + ": downloading", // once, not per byte count
		s(a) + ": downloaded 2.00MB",
		s(a) + ": unpacking",
		s(a) + ": done 2.00MB",
		s(b) + ": unpacking",
		s(b) + ": done 500B",
	}, "\n") + "\n"
	if out.String() != want {
		t.Fatalf("plain progress:\n%s\nwant:\n%s", out.String(), want)
	}
}

// On a terminal the rows are redrawn in place: each redraw moves the
// cursor up over the rows drawn before and erases each line it rewrites;
// the final screen has one row per layer, config excluded.
func TestTerminalProgress(t *testing.T) {
	var out bytes.Buffer
	v := newPullView(&out, true, 60)
	clock := time.Unix(0, 0)
	v.now = func() time.Time { return clock }
	feed(v)
	got := out.String()
	redraws := strings.Split(got, "\r\x1b[2K")
	if len(redraws) < 4 {
		t.Fatalf("too few redraws: %q", got)
	}
	// Every redraw after the first starts by going up the rows drawn.
	if !strings.Contains(got, "\x1b[3A") {
		t.Fatalf("no cursor-up over the 3 rows: %q", got)
	}
	last := got[strings.LastIndex(got, "\x1b[3A")+len("\x1b[3A"):]
	rows := strings.Split(strings.TrimSuffix(strings.ReplaceAll(last, "\r\x1b[2K", ""), "\n"), "\n")
	if len(rows) != 3 {
		t.Fatalf("final screen %q", rows)
	}
	for i, want := range []string{"done", "done", "exists"} {
		if f := strings.Fields(rows[i]); len(f) < 2 || f[1] != want {
			t.Errorf("row %d = %q, want state %s", i, rows[i], want)
		}
		if len(rows[i]) > 59 {
			t.Errorf("row %d is %d wide on a 60-column terminal", i, len(rows[i]))
		}
	}
	// The half-way redraw of a shows a bar and the counts; the byte-only
	// update came within minRedraw of the state change and was skipped.
	if !strings.Contains(got, "downloading [=======>      ] 1.00MB/2.00MB") {
		t.Errorf("no half-way bar in %q", got)
	}
	if strings.Contains(got, "1.50MB/2.00MB") {
		t.Errorf("a byte-count update within minRedraw was drawn: %q", got)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1.00kB", 1234567: "1.23MB", 45_600_000: "45.6MB", 999_400_000: "999MB", 3e12: "3.00TB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestBar(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{{0, 100, "[>         ]"}, {50, 100, "[=====>    ]"}, {100, 100, "[==========]"}, {5, 0, "[>         ]"}, {200, 100, "[==========]"}} {
		if got := bar(c.done, c.total, 10); got != c.want {
			t.Errorf("bar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

// More layers than terminal rows: the view turns to plain lines rather
// than moving the cursor above the screen.
func TestTerminalTooShort(t *testing.T) {
	var out bytes.Buffer
	v := newPullView(&out, true, 80)
	v.height = 3
	a, b, c := feed(v)
	got := out.String()
	if strings.Contains(got, "\x1b[3A") {
		t.Fatalf("cursor moved up 3 rows on a 3-row terminal: %q", got)
	}
	for _, l := range []ocispec.Descriptor{a, b} {
		if !strings.Contains(got, l.Digest.Encoded()[:12]+": done ") {
			t.Errorf("no plain done line for %s in %q", l.Digest, got)
		}
	}
	if !strings.Contains(got, c.Digest.Encoded()[:12]+": exists 42B\n") || !strings.HasSuffix(got, b.Digest.Encoded()[:12]+": unpacking\n"+b.Digest.Encoded()[:12]+": done 500B\n") {
		t.Errorf("plain tail: %q", got)
	}
}
