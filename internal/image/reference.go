// Package image holds hako's image model: references as users write them, the
// Image / Index / Layer interfaces that every transport (registry, content
// store, archive) implements, manifest parsing with size limits, and platform
// matching. Nothing here fetches eagerly: an Image reads its manifest, config
// and layers only when asked, always with a context.
package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// ErrInvalidReference classifies every reference parse failure.
var ErrInvalidReference = errors.New("invalid image reference")

// Reference is a fully normalised image reference: Domain and Path are always
// set (docker.io/library/busybox), and at least one of Tag and Digest is.
//
// The grammar and the normalisation are docker's (distribution/reference,
// which the tests use as an oracle): a name without a registry belongs to
// docker.io, a single-component docker.io name is under library/, and a
// name with neither tag nor digest means :latest. The parser is written out
// by hand rather than taken from that module because the module compiles a
// dozen regular expressions at package init (~0.5 ms measured here), a cost
// every hako process would pay, container starts included.
type Reference struct {
	Domain string        // registry host[:port], e.g. "docker.io", "127.0.0.1:5000"
	Path   string        // repository path, e.g. "library/busybox"
	Tag    string        // may be empty when Digest is set
	Digest digest.Digest // may be empty
}

const (
	defaultDomain = "docker.io"
	officialRepo  = "library/"
	maxNameLength = 255 // distribution's NameTotalLengthMax
	maxTagLength  = 128
)

func invalid(s, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidReference, s, why)
}

// ParseReference parses and normalises a reference as docker and containerd
// do: "busybox" is docker.io/library/busybox:latest. A tag and a digest may
// both be given (name:tag@sha256:...); the digest then decides what is pulled
// and the tag is kept only for naming.
func ParseReference(s string) (Reference, error) {
	if len(s) == 64 && isLowerHex(s) {
		return Reference{}, invalid(s, "a 64-character hex string is an image ID, not a name")
	}
	// Where the registry ends (docker's splitDockerDomain): the first
	// component is a registry if it looks like a host (has '.' or ':', is
	// localhost, or has upper case, which repository paths never do).
	domain, rest := defaultDomain, s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, rest = first, s[i+1:]
		}
	}
	if domain == "index.docker.io" {
		domain = defaultDomain
	}
	if domain == defaultDomain && !strings.Contains(rest, "/") {
		rest = officialRepo + rest
	}

	var r Reference
	r.Domain = domain
	path := rest
	if i := strings.IndexByte(path, '@'); i >= 0 {
		dg, err := digest.Parse(path[i+1:])
		if err != nil {
			return Reference{}, invalid(s, fmt.Sprintf("digest: %v", err))
		}
		r.Digest, path = dg, path[:i]
	}
	if i := strings.LastIndexByte(path, ':'); i >= 0 && i > strings.LastIndexByte(path, '/') {
		r.Tag, path = path[i+1:], path[:i]
		if !validTag(r.Tag) {
			return Reference{}, invalid(s, fmt.Sprintf("tag %q: want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", r.Tag))
		}
	}
	r.Path = path
	if !validDomain(domain) {
		return Reference{}, invalid(s, fmt.Sprintf("registry %q is not host[:port]", domain))
	}
	if !validPath(path) {
		return Reference{}, invalid(s, fmt.Sprintf("repository %q: want lower-case components of [a-z0-9] joined by '.', '_', '__' or dashes, separated by '/'", path))
	}
	// distribution v0.6 limits the repository path, not domain+path.
	if len(path) > maxNameLength {
		return Reference{}, invalid(s, fmt.Sprintf("name longer than %d characters", maxNameLength))
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// validTag: [\w][\w.-]{0,127}.
func validTag(t string) bool {
	if t == "" || len(t) > maxTagLength {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(isAlnum(c) || c == '_' || (i > 0 && (c == '.' || c == '-'))) {
			return false
		}
	}
	return true
}

// validDomain: (domain-name | '[' ipv6 ']') [':' port], where domain-name
// is components of [a-zA-Z0-9] (dashes inside) joined by dots.
func validDomain(d string) bool {
	host, ipv6 := d, false
	if strings.HasPrefix(d, "[") {
		ipv6 = true
		end := strings.IndexByte(d, ']')
		if end < 2 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := d[i]; !(c == ':' || '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
		host, d = "", d[end+1:]
	} else if i := strings.IndexByte(d, ':'); i >= 0 {
		host, d = d[:i], d[i:]
	} else {
		d = ""
	}
	if d != "" { // the port
		if len(d) < 2 || d[0] != ':' {
			return false
		}
		for i := 1; i < len(d); i++ {
			if d[i] < '0' || d[i] > '9' {
				return false
			}
		}
	}
	if ipv6 {
		return true
	}
	for _, c := range strings.Split(host, ".") {
		if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
			return false
		}
		for i := 0; i < len(c); i++ {
			if !isAlnum(c[i]) && c[i] != '-' {
				return false
			}
		}
	}
	return true
}

// validPath: components separated by '/', each [a-z0-9]+ joined by
// separators '.', '_', '__' or one or more '-'.
func validPath(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == "" || !isLowerAlnum(c[0]) || !isLowerAlnum(c[len(c)-1]) {
			return false
		}
		for i := 0; i < len(c); {
			if isLowerAlnum(c[i]) {
				i++
				continue
			}
			j := i
			for j < len(c) && !isLowerAlnum(c[j]) {
				j++
			}
			switch sep := c[i:j]; {
			case sep == "." || sep == "_" || sep == "__":
			case strings.Trim(sep, "-") == "":
			default:
				return false
			}
			i = j
		}
	}
	return true
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
	name := r.Name()
	if r.Domain == defaultDomain {
		name = r.Path
		if rest, ok := strings.CutPrefix(r.Path, officialRepo); ok && !strings.Contains(rest, "/") {
			name = rest
		}
	}
	if r.Tag != "" {
		name += ":" + r.Tag
	}
	if r.Digest != "" {
		name += "@" + r.Digest.String()
	}
	return name
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
