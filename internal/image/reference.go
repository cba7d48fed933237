// Package image holds hako's image model: references as users write them, the
// Image / Index / Layer interfaces that every transport (registry, content
// store, archive) implements, manifest parsing with size limits, and platform
// matching. Nothing here fetches eagerly: an Image reads its manifest, config
// and layers only when asked, always with a context.
package image

import (
	"errors"
	"fmt"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// ErrInvalidReference classifies every reference parse failure.
var ErrInvalidReference = errors.New("invalid image reference")

// Reference is a fully normalised image reference: Domain and Path are always
// set (docker.io/library/busybox), and at least one of Tag and Digest is.
//
// The normalisation is docker's (distribution/reference): a name without a
// registry belongs to docker.io, a single-component docker.io name is under
// library/, and a name with neither tag nor digest means :latest.
type Reference struct {
	Domain string        // registry host[:port], e.g. "docker.io", "127.0.0.1:5000"
	Path   string        // repository path, e.g. "library/busybox"
	Tag    string        // may be empty when Digest is set
	Digest digest.Digest // may be empty
}

// ParseReference parses and normalises a reference as docker and containerd
// do: "busybox" is docker.io/library/busybox:latest. A tag and a digest may
// both be given (name:tag@sha256:...); the digest then decides what is pulled
// and the tag is kept only for naming.
func ParseReference(s string) (Reference, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Reference{}, fmt.Errorf("%w %q: %v", ErrInvalidReference, s, err)
	}
	r := Reference{Domain: reference.Domain(named), Path: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// Name is the repository name without tag or digest: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the canonical full form: name[:tag][@digest].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar is the short form docker prints: "busybox:latest" for
// docker.io/library/busybox:latest, unchanged for other registries.
func (r Reference) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// Object is what the registry is asked for under /v2/<name>/manifests/<object>:
// the digest when there is one (it pins the content), the tag otherwise.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// WithDigest returns r pinned to d, keeping the tag for naming.
func (r Reference) WithDigest(d digest.Digest) Reference {
	r.Digest = d
	return r
}
