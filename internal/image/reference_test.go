package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestParseReference(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in, want, name, familiar, object string
	}{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox", "busybox:latest", "latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox", "busybox:1.36", "1.36"},
		{"docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox", "busybox:1.36", "1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox", "busybox:latest", "latest"},
		{"someone/app:v1", "docker.io/someone/app:v1", "docker.io/someone/app", "someone/app:v1", "v1"},
		{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause", "registry.k8s.io/pause:3.9", "3.9"},
		{"host:5000/a/b@" + dg, "host:5000/a/b@" + dg, "host:5000/a/b", "host:5000/a/b@" + dg, dg},
		{"localhost/x", "localhost/x:latest", "localhost/x", "localhost/x:latest", "latest"},
		{"127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y:t", "127.0.0.1:5000/x/y", "127.0.0.1:5000/x/y:t", "t"},
		{"busybox:1.36@" + dg, "docker.io/library/busybox:1.36@" + dg, "docker.io/library/busybox", "busybox:1.36@" + dg, dg},
		{"busybox@" + dg, "docker.io/library/busybox@" + dg, "docker.io/library/busybox", "busybox@" + dg, dg},
	}
	for _, tt := range tests {
		r, err := ParseReference(tt.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tt.in, err)
			continue
		}
		if got := r.String(); got != tt.want {
			t.Errorf("ParseReference(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		if got := r.Name(); got != tt.name {
			t.Errorf("ParseReference(%q).Name() = %q, want %q", tt.in, got, tt.name)
		}
		if got := r.Familiar(); got != tt.familiar {
			t.Errorf("ParseReference(%q).Familiar() = %q, want %q", tt.in, got, tt.familiar)
		}
		if got := r.Object(); got != tt.object {
			t.Errorf("ParseReference(%q).Object() = %q, want %q", tt.in, got, tt.object)
		}
	}
}

func TestParseReferenceInvalid(t *testing.T) {
	for _, in := range []string{
		"", "library/UPPER", "busybox:", "busybox@sha256:short", "a//b", ":tag", "busybox:bad tag",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", // an image ID is not a name
	} {
		if r, err := ParseReference(in); err == nil {
			t.Errorf("ParseReference(%q) = %v, want error", in, r)
		} else if !errors.Is(err, ErrInvalidReference) {
			t.Errorf("ParseReference(%q) error %v is not ErrInvalidReference", in, err)
		}
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"busybox", "registry.k8s.io/pause:3.9", "host:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		// A normalised reference must parse back to itself.
		r2, err := ParseReference(r.String())
		if err != nil {
			t.Fatalf("reparse %q (from %q): %v", r.String(), s, err)
		}
		if r2 != r {
			t.Fatalf("reparse %q: got %+v, want %+v", s, r2, r)
		}
	})
}

// FuzzReferenceMatchesDistribution checks the hand-written parser against
// distribution/reference, the grammar docker and containerd use: both
// accept the same strings and normalise them the same way. (Where that
// library finds no registry at all, for names like "a_b.c/x" that fail
// docker's own registry detection, hako refuses the name.)
func FuzzReferenceMatchesDistribution(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "library/busybox", "Foo/bar", "a_b.c/x", "localhost:5000/a__b/c--d:t",
		"[::1]:5000/x", "[fe80::1]/x", "index.docker.io/busybox", "host:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"x:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "a..b", "a._b", "a-.b", "a/b:", "-a", "ex.com:/x",
		"docker.io/library/a/b", "UPPER.io/x", "x:" + strings.Repeat("t", 129),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mine, err := ParseReference(s)
		lib, libErr := reference.ParseNormalizedNamed(s)
		if libErr == nil && reference.Domain(lib) == "" {
			if err == nil {
				t.Fatalf("ParseReference(%q) = %+v; distribution finds no registry", s, mine)
			}
			return
		}
		if (err == nil) != (libErr == nil) {
			t.Fatalf("ParseReference(%q): hako err=%v, distribution err=%v", s, err, libErr)
		}
		if err != nil {
			return
		}
		want := Reference{Domain: reference.Domain(lib), Path: reference.Path(lib)}
		if tg, ok := lib.(reference.Tagged); ok {
			want.Tag = tg.Tag()
		}
		if dg, ok := lib.(reference.Digested); ok {
			want.Digest = dg.Digest()
		}
		if want.Tag == "" && want.Digest == "" {
			want.Tag = "latest"
		}
		if mine != want {
			t.Fatalf("ParseReference(%q) = %+v, distribution says %+v", s, mine, want)
		}
		if got, lf := mine.Familiar(), reference.FamiliarString(lib); got != lf && !(want.Tag == "latest" && lf+":latest" == got) {
			t.Fatalf("Familiar(%q) = %q, distribution says %q", s, got, lf)
		}
	})
}
