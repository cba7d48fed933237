package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/testenv"
)

// TestHostileLayers applies layers that try to reach outside the root.
// Each must leave the canary beside the root untouched; those that cannot
// be applied safely must fail with ErrInvalidEntry naming the entry.
func TestHostileLayers(t *testing.T) {
	testenv.RequireRoot(t)
	cases := []struct {
		name    string
		entries func(s *sandbox) []entry
		// wantErr is the entry name the error must mention; "" means the
		// layer applies (safely, inside the root).
		wantErr string
		// inside lists files that must exist inside the root afterwards.
		inside func(s *sandbox) []string
	}{
		{name: "dotdot", wantErr: "../canary/file",
			entries: func(*sandbox) []entry { return []entry{file("../canary/file", "pwned")} }},
		{name: "dotdot in middle", wantErr: "a/../../canary/file",
			entries: func(*sandbox) []entry { return []entry{dir("a/"), file("a/../../canary/file", "pwned")} }},
		{name: "absolute path", wantErr: "canary/file",
			entries: func(s *sandbox) []entry { return []entry{file(filepath.Join(s.canary, "file"), "pwned")} }},
		{name: "dotdot directory", wantErr: "../canary/dir/",
			entries: func(*sandbox) []entry { return []entry{dir("../canary/dir/")} }},
		{name: "dotdot symlink name", wantErr: "../canary/link",
			entries: func(*sandbox) []entry { return []entry{symlink("../canary/link", "/")} }},
		{name: "symlinked parent absolute", inside: func(s *sandbox) []string { return []string{filepath.Join(s.canary, "dir/passwd")} },
			entries: func(s *sandbox) []entry {
				// a -> <host canary>; a/passwd must land in root/<canary>/passwd.
				return []entry{symlink("a", filepath.Join(s.canary, "dir")), file("a/passwd", "pwned")}
			}},
		{name: "symlinked parent relative", inside: func(*sandbox) []string { return []string{"canary/dir/passwd"} },
			entries: func(*sandbox) []entry {
				return []entry{symlink("a", "../../../canary/dir"), file("a/passwd", "pwned")}
			}},
		{name: "symlinked parent chain", inside: func(s *sandbox) []string { return []string{"file", filepath.Join(filepath.Dir(s.base), "canary/file")} },
			entries: func(s *sandbox) []entry {
				return []entry{symlink("a", "b/.."), symlink("b", s.base), dir("x/"), symlink("x/y", "/"),
					file("a/canary/file", "pwned"), file("x/y/file", "ok")}
			}},
		{name: "directory through symlink", inside: func(s *sandbox) []string { return []string{filepath.Join(s.canary, "newdir")} },
			entries: func(s *sandbox) []entry {
				d := dir("a/newdir/")
				d.mode = 0o777
				return []entry{symlink("a", s.canary), d}
			}},
		{name: "overwrite symlink to host file",
			entries: func(s *sandbox) []entry {
				return []entry{symlink("f", filepath.Join(s.canary, "file")), file("f", "pwned")}
			}},
		{name: "chmod through symlink",
			entries: func(s *sandbox) []entry {
				d := dir("d/")
				d.mode = 0o777
				return []entry{symlink("d", s.canary), d}
			}},
		{name: "hardlink dotdot", wantErr: "h",
			entries: func(*sandbox) []entry { return []entry{hardlink("h", "../canary/file")} }},
		{name: "hardlink absolute", wantErr: "h",
			entries: func(s *sandbox) []entry { return []entry{hardlink("h", filepath.Join(s.canary, "file"))} }},
		{name: "hardlink through symlink", wantErr: "h",
			entries: func(s *sandbox) []entry {
				return []entry{symlink("d", filepath.Join(s.canary, "dir")), hardlink("h", "d/passwd")}
			}},
		{name: "hardlink then write",
			entries: func(s *sandbox) []entry {
				// Links the symlink itself, then writing h must replace it.
				return []entry{symlink("s", filepath.Join(s.canary, "file")), hardlink("h", "s"), file("h", "pwned")}
			}},
		{name: "whiteout dotdot", wantErr: ".wh..",
			entries: func(*sandbox) []entry { return []entry{file(".wh..", "")} }},
		{name: "whiteout dotdot nested", wantErr: "a/.wh..",
			entries: func(*sandbox) []entry { return []entry{dir("a/"), file("a/.wh..", "")} }},
		{name: "whiteout of whiteout", wantErr: ".wh..wh.x",
			entries: func(*sandbox) []entry { return []entry{file(".wh..wh.x", "")} }},
		{name: "whiteout parent dotdot", wantErr: "../canary/.wh.file",
			entries: func(*sandbox) []entry { return []entry{file("../canary/.wh.file", "")} }},
		{name: "whiteout through symlink",
			entries: func(s *sandbox) []entry {
				return []entry{symlink("d", s.canary), file("d/.wh.file", "")}
			}},
		{name: "opaque through symlink",
			entries: func(s *sandbox) []entry {
				return []entry{symlink("d", s.canary), file("d/.wh..wh..opq", "")}
			}},
		{name: "overlay xattr", wantErr: "x/",
			entries: func(*sandbox) []entry {
				e := dir("x/")
				e.xattrs = map[string]string{"trusted.overlay.redirect": "/etc"}
				return []entry{e}
			}},
		{name: "overlay xattr on root", wantErr: "./",
			entries: func(*sandbox) []entry {
				e := dir("./")
				e.xattrs = map[string]string{"trusted.overlay.opaque": "y"}
				return []entry{e}
			}},
		{name: "unknown type keeps what it names", wantErr: "keep",
			entries: func(*sandbox) []entry {
				return []entry{file("keep", "x"), {name: "keep", typ: 'Z', mode: 0o644}}
			}, inside: func(*sandbox) []string { return []string{"keep"} }},
		{name: "root as file", wantErr: ".",
			entries: func(*sandbox) []entry { return []entry{file(".", "")} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, mode := range []WhiteoutMode{WhiteoutNative, WhiteoutOverlay} {
				s := newSandbox(t)
				b := layer(t, c.entries(s)...)
				_, _, err := Apply(context.Background(), s.root, bytes.NewReader(b), Options{Whiteouts: mode})
				s.check(t)
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("mode %d: %v", mode, err)
					}
				} else {
					var ee *EntryError
					if !errors.As(err, &ee) || !strings.Contains(ee.Name, c.wantErr) {
						t.Fatalf("mode %d: err = %v, want an EntryError for %q", mode, err, c.wantErr)
					}
					if !errors.Is(err, ErrInvalidEntry) && !strings.Contains(err.Error(), "whiteout") {
						t.Errorf("mode %d: err = %v, want ErrInvalidEntry", mode, err)
					}
				}
				if c.inside == nil {
					continue
				}
				for _, p := range c.inside(s) {
					// Present whether or not the layer failed.
					if _, err := os.Lstat(filepath.Join(s.root, p)); err != nil {
						t.Errorf("mode %d: %s not inside the root: %v", mode, p, err)
					}
				}
			}
		})
	}
}

// TestHostilePAXName puts a NUL into a PAX path record, which ustar
// fields cannot carry and tar.Writer will not write: the record is built
// by hand.
func TestHostilePAXName(t *testing.T) {
	testenv.RequireRoot(t)
	s := newSandbox(t)
	rec := "a\x00/../../canary/file"
	line := fmt.Sprintf(" path=%s\n", rec)
	line = fmt.Sprintf("%d%s", len(line)+2, line)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "pax", Typeflag: tar.TypeReg, Size: int64(len(line)), Format: tar.FormatUSTAR})
	tw.Write([]byte(line))
	tw.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatUSTAR})
	tw.Close()
	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	_, _, err := Apply(context.Background(), s.root, bytes.NewReader(b), Options{})
	if err == nil {
		t.Fatal("NUL name accepted")
	}
	s.check(t)
}
