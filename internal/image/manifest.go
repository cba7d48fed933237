package image

import (
	"encoding/json"
	"errors"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
)

// Docker's media types (distribution's "Image Manifest V2, Schema 2"), which
// registries still serve for most images; their JSON has the OCI shape.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Limits on what is read into memory. A manifest above 4 MiB is refused as
// containerd and the distribution registry do; configs carry history and
// may be larger but not unboundedly.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
)

var (
	ErrNotFound           = errors.New("not found")
	ErrInvalidManifest    = errors.New("invalid manifest")
	ErrUnsupportedMedia   = errors.New("unsupported media type")
	ErrNoMatchingPlatform = errors.New("no matching platform")
	ErrTooLarge           = errors.New("content too large")
)

// ManifestMediaTypes is the Accept list for manifest requests, best first.
var ManifestMediaTypes = []string{
	ocispec.MediaTypeImageIndex,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifestList,
	MediaTypeDockerManifest,
}

// IsIndex reports whether mt is an OCI index or a Docker manifest list.
func IsIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == MediaTypeDockerManifestList
}

// IsManifest reports whether mt is an OCI or Docker schema 2 image manifest.
func IsManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == MediaTypeDockerManifest
}

// probe is the union of the fields that tell manifest kinds apart.
type probe struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        json.RawMessage   `json:"config"`
	Layers        json.RawMessage   `json:"layers"`
	Manifests     json.RawMessage   `json:"manifests"`
	FSLayers      json.RawMessage   `json:"fsLayers"` // schema 1
	Annotations   map[string]string `json:"annotations"`
}

// DetectMediaType works out what a manifest document is when the transport
// did not say (or said application/json): the mediaType field if present,
// else its shape (image-spec manifest.md and image-index.md make the field
// optional for OCI).
func DetectMediaType(data []byte) (string, error) {
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	switch {
	case p.MediaType != "":
		return p.MediaType, nil
	case p.FSLayers != nil || p.SchemaVersion == 1:
		return "", fmt.Errorf("%w: Docker schema 1 manifests are not supported", ErrUnsupportedMedia)
	case p.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case p.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("%w: document is neither a manifest nor an index", ErrInvalidManifest)
}

func checkDescriptor(what string, d ocispec.Descriptor) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: %s digest %q: %v", ErrInvalidManifest, what, d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("%w: %s %s has negative size %d", ErrInvalidManifest, what, d.Digest, d.Size)
	}
	if d.MediaType == "" {
		return fmt.Errorf("%w: %s %s has no media type", ErrInvalidManifest, what, d.Digest)
	}
	return nil
}

// checkMediaTypeField enforces image-spec manifest.md: when the document
// carries a mediaType it must be the one it was served as.
func checkMediaTypeField(field, mediaType string) error {
	if field != "" && mediaType != "" && field != mediaType {
		return fmt.Errorf("%w: document says mediaType %q but was served as %q", ErrInvalidManifest, field, mediaType)
	}
	return nil
}

// ParseManifest decodes and checks an image manifest (OCI or Docker schema 2)
// served as mediaType (empty: not known).
func ParseManifest(data []byte, mediaType string) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if len(data) > MaxManifestSize {
		return m, fmt.Errorf("%w: manifest of %d bytes exceeds %d", ErrTooLarge, len(data), MaxManifestSize)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("%w: schemaVersion %d, want 2", ErrInvalidManifest, m.SchemaVersion)
	}
	if err := checkMediaTypeField(m.MediaType, mediaType); err != nil {
		return m, err
	}
	if IsIndex(m.MediaType) {
		return m, fmt.Errorf("%w: expected a manifest, got an index", ErrInvalidManifest)
	}
	if err := checkDescriptor("config", m.Config); err != nil {
		return m, err
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(fmt.Sprintf("layer %d", i), l); err != nil {
			return m, err
		}
	}
	return m, nil
}

// ParseIndex decodes and checks an OCI index or Docker manifest list.
func ParseIndex(data []byte, mediaType string) (ocispec.Index, error) {
	var x ocispec.Index
	if len(data) > MaxManifestSize {
		return x, fmt.Errorf("%w: index of %d bytes exceeds %d", ErrTooLarge, len(data), MaxManifestSize)
	}
	if err := json.Unmarshal(data, &x); err != nil {
		return x, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	if x.SchemaVersion != 2 {
		return x, fmt.Errorf("%w: schemaVersion %d, want 2", ErrInvalidManifest, x.SchemaVersion)
	}
	if err := checkMediaTypeField(x.MediaType, mediaType); err != nil {
		return x, err
	}
	for i, m := range x.Manifests {
		if err := checkDescriptor(fmt.Sprintf("manifest %d", i), m); err != nil {
			return x, err
		}
	}
	return x, nil
}

// Verify checks that data is the content desc names.
func Verify(desc ocispec.Descriptor, data []byte) error {
	if int64(len(data)) != desc.Size {
		return fmt.Errorf("%s: %w: got %d bytes, descriptor says %d", desc.Digest, content.ErrSizeMismatch, len(data), desc.Size)
	}
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("%s: %w", desc.Digest, err)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return fmt.Errorf("%s: %w: content hashes to %s", desc.Digest, content.ErrDigestMismatch, got)
	}
	return nil
}
