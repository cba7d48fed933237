package image

import (
	"errors"
	"testing"
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
