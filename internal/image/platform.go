package image

import (
	"fmt"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultPlatform is the platform of this host: what an index is resolved to
// when the user does not ask for another (--platform). The variant is left
// empty, which matches any variant of the architecture (the best one wins,
// see PlatformMatch).
func DefaultPlatform() ocispec.Platform {
	return NormalizePlatform(ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH})
}

// ParsePlatform parses "os[/arch[/variant]]" or "arch" as docker's
// --platform does ("linux/arm64/v8", "linux/amd64", "arm64").
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.ToLower(s), "/")
	var p ocispec.Platform
	switch len(parts) {
	case 1:
		if parts[0] == "linux" || parts[0] == "windows" || parts[0] == "darwin" || parts[0] == "freebsd" {
			p = ocispec.Platform{OS: parts[0], Architecture: runtime.GOARCH}
		} else {
			p = ocispec.Platform{OS: "linux", Architecture: parts[0]}
		}
	case 2:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	case 3:
		p = ocispec.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	default:
		return p, fmt.Errorf("platform %q: want os[/arch[/variant]]", s)
	}
	for _, part := range parts {
		if part == "" {
			return p, fmt.Errorf("platform %q: empty component", s)
		}
	}
	return NormalizePlatform(p), nil
}

// PlatformString formats p as os/arch[/variant].
func PlatformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// NormalizePlatform maps the spellings found in the wild onto the GOARCH
// names the image-spec uses (image-spec image-index.md, "platform"):
// x86_64 -> amd64, aarch64 -> arm64; arm64's only variant v8 is dropped,
// and a bare "arm" means v7, as containerd assumes.
func NormalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "amd64":
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "v8" || p.Variant == "8" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	case "i386", "i686":
		p.Architecture = "386"
	}
	return p
}

// PlatformMatch reports whether an image for have runs on want, and how
// well: a higher score is a better match, 0 is none. OS and architecture
// must be equal; an empty wanted variant accepts any variant; an arm host
// runs older arm variants (v7 runs v6 and v5) but prefers its own.
func PlatformMatch(want, have ocispec.Platform) int {
	want, have = NormalizePlatform(want), NormalizePlatform(have)
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return 0
	}
	switch {
	case want.Variant == have.Variant:
		return 100
	case want.Variant == "":
		return 50
	case want.Architecture == "arm" && have.Variant < want.Variant && strings.HasPrefix(have.Variant, "v"):
		// v5 < v6 < v7 < v8 compares correctly as strings.
		return 10 + int(have.Variant[1]-'0')
	case have.Variant == "" && want.Architecture != "arm":
		return 40
	}
	return 0
}

// SelectManifest picks from an index's manifests the best one for want
// (image-spec image-index.md: a client picks by platform; entries without a
// platform, such as attestations, are never picked). Ties go to the first
// entry, as the index orders by preference.
func SelectManifest(want ocispec.Platform, manifests []ocispec.Descriptor) (ocispec.Descriptor, error) {
	best, bestScore := -1, 0
	var seen []string
	for i, m := range manifests {
		if m.Platform == nil || !(IsManifest(m.MediaType) || IsIndex(m.MediaType)) {
			continue
		}
		seen = append(seen, PlatformString(*m.Platform))
		if s := PlatformMatch(want, *m.Platform); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%w: no manifest for %s (index has %s)", ErrNoMatchingPlatform, PlatformString(want), strings.Join(seen, ", "))
	}
	return manifests[best], nil
}
