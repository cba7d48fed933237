package imagecmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/image/store"
)

// pullView shows a pull, one row per layer. On a terminal the rows are
// redrawn in place (cursor up, erase line: ECMA-48 CUU and EL, which every
// terminal hako runs on understands; no terminal library needed for two
// escape sequences); elsewhere each state change is one plain line, so a
// log or CI output reads top to bottom.
//
// Its methods are called serialised (store.PullAndUnpack serialises its
// two progress callbacks).
type pullView struct {
	w      io.Writer
	tty    bool
	width  int
	height int // rows of the terminal; 0 if unknown
	now    func() time.Time
	// minRedraw spaces redraws caused by byte counts only; a state change
	// redraws at once.
	minRedraw time.Duration

	rows     []*layerRow
	byDigest map[digest.Digest]*layerRow
	drawn    int // rows on screen from the last redraw
	last     time.Time
}

// layerRow is one layer: its download and its unpack, which overlap in
// time (a layer can be found unpacked before its blob is checked).
type layerRow struct {
	digest      digest.Digest
	dl          dlState
	up          upState
	done, total int64
	shown       string // the state last printed (plain mode)
}

type dlState int

const (
	dlWaiting dlState = iota
	dlDownloading
	dlVerifying // every byte is in; the store checks digest and size at commit
	dlDownloaded
	dlExists // in the store before this pull
)

type upState int

const (
	upNone upState = iota
	upUnpacking
	upDone
	upExists // unpacked before this pull
)

// state is the word shown for the row.
func (r *layerRow) state() string {
	switch r.up {
	case upDone:
		return "done"
	case upUnpacking:
		return "unpacking"
	case upExists:
		if r.dl == dlExists {
			return "exists"
		}
		if r.dl == dlDownloaded {
			return "done"
		}
	}
	switch r.dl {
	case dlDownloading:
		return "downloading"
	case dlVerifying:
		return "verifying"
	case dlDownloaded:
		return "downloaded"
	case dlExists:
		return "exists"
	}
	return "waiting"
}

func newPullView(w io.Writer, tty bool, width int) *pullView {
	if width <= 0 {
		width = 80
	}
	return &pullView{w: w, tty: tty, width: width, now: time.Now, minRedraw: 100 * time.Millisecond, byDigest: map[digest.Digest]*layerRow{}}
}

// isConfig tells the config blob, which gets no row (docker shows none).
func isConfig(d ocispec.Descriptor) bool {
	return d.MediaType == ocispec.MediaTypeImageConfig || d.MediaType == image.MediaTypeDockerConfig
}

func (v *pullView) row(d ocispec.Descriptor) *layerRow {
	r, ok := v.byDigest[d.Digest]
	if !ok {
		r = &layerRow{digest: d.Digest, total: d.Size}
		v.byDigest[d.Digest] = r
		v.rows = append(v.rows, r)
	}
	return r
}

// download takes a remote.Progress.
func (v *pullView) download(p remote.Progress) {
	if isConfig(p.Descriptor) {
		return
	}
	r := v.row(p.Descriptor)
	before := r.state()
	if p.Total > 0 {
		r.total = p.Total
	}
	switch p.State {
	case remote.ProgressWaiting:
		r.dl = dlWaiting
	case remote.ProgressDownloading:
		r.done = p.Done
		r.dl = dlDownloading
		if r.total > 0 && r.done >= r.total {
			r.dl = dlVerifying
		}
	case remote.ProgressDone:
		r.done, r.dl = r.total, dlDownloaded
	case remote.ProgressExists:
		r.done, r.dl = r.total, dlExists
	}
	v.changed(r, before)
}

// unpack takes a store.UnpackProgress.
func (v *pullView) unpack(p store.UnpackProgress) {
	r := v.row(p.Layer)
	before := r.state()
	switch p.State {
	case store.LayerUnpacking:
		r.up = upUnpacking
	case store.LayerUnpacked:
		r.up = upDone
	case store.LayerExists:
		r.up = upExists
	}
	v.changed(r, before)
}

func (v *pullView) changed(r *layerRow, before string) {
	if !v.tty {
		if s := r.state(); s != r.shown {
			r.shown = s
			fmt.Fprintln(v.w, v.plainLine(r))
		}
		return
	}
	now := v.now()
	if r.state() != before || now.Sub(v.last) >= v.minRedraw {
		v.redraw()
		v.last = now
	}
}

// finish draws the final state.
func (v *pullView) finish() {
	if v.tty {
		v.redraw()
	}
}

func short(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}

func (v *pullView) plainLine(r *layerRow) string {
	s := short(r.digest) + ": " + r.state()
	switch r.state() {
	case "downloaded", "exists", "done":
		s += " " + humanSize(r.total)
	}
	return s
}

// ttyLine is "<digest>  <state>  [=====>    ]  1.2MB/4.5MB", fitted to the
// terminal width (a wrapped line would break the cursor arithmetic).
func (v *pullView) ttyLine(r *layerRow) string {
	st := r.state()
	var s string
	switch st {
	case "downloading", "verifying":
		// 26 columns before the bar, up to 17 after it ("999.9MB/999.9MB").
		w := min(max(v.width-1-26-17-2, 10), 30)
		s = fmt.Sprintf("%s  %-11s %s %s/%s", short(r.digest), st, bar(r.done, r.total, w), humanSize(r.done), humanSize(r.total))
	default:
		s = fmt.Sprintf("%s  %-11s %s", short(r.digest), st, humanSize(r.total))
	}
	if max := v.width - 1; len(s) > max && max > 0 {
		s = s[:max]
	}
	return s
}

func (v *pullView) redraw() {
	if v.height > 0 && len(v.rows) >= v.height {
		// The cursor cannot go up past the top of the screen: with more
		// layers than rows, carry on in plain lines.
		v.tty = false
		for _, r := range v.rows {
			r.shown = r.state()
			fmt.Fprintln(v.w, v.plainLine(r))
		}
		return
	}
	var b strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", v.drawn) // cursor up to the first row
	}
	for _, r := range v.rows {
		b.WriteString("\r\x1b[2K") // erase the line
		b.WriteString(v.ttyLine(r))
		b.WriteByte('\n')
	}
	v.drawn = len(v.rows)
	io.WriteString(v.w, b.String())
}

// bar draws done/total in width cells: [=====>      ].
func bar(done, total int64, width int) string {
	n := 0
	if total > 0 {
		n = int(done * int64(width) / total)
	}
	n = min(max(n, 0), width)
	s := strings.Repeat("=", n)
	if n < width {
		s += ">" + strings.Repeat(" ", width-n-1)
	}
	return "[" + s + "]"
}

// humanSize is docker's (go-units HumanSize): decimal units, three
// significant digits.
func humanSize(n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d%s", n, units[0])
	case f < 10:
		return fmt.Sprintf("%.2f%s", f, units[i])
	case f < 100:
		return fmt.Sprintf("%.1f%s", f, units[i])
	}
	return fmt.Sprintf("%.0f%s", f, units[i])
}

// terminal reports whether f is a terminal, and its width and height (0
// if unknown).
func terminal(f *os.File) (tty bool, width, height int) {
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return false, 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return true, 80, 0
	}
	return true, int(ws.Col), int(ws.Row)
}
