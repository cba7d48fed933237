package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/registries"
)

// Repository is one image name as served by its endpoints (mirrors first,
// then the registry itself). It is an image.Fetcher.
type Repository struct {
	c         *Client
	ref       image.Reference
	endpoints []registries.Endpoint

	mu        sync.Mutex
	preferred int                      // the endpoint that answered last
	docs      map[digest.Digest][]byte // manifests read while resolving
}

var _ image.Fetcher = (*Repository)(nil)

// Repository returns the repository ref names.
func (c *Client) Repository(ref image.Reference) (*Repository, error) {
	eps, err := c.cfg.EndpointsFor(ref.Name(), ref.Digest != "")
	if err != nil {
		return nil, err
	}
	return &Repository{c: c, ref: ref, endpoints: eps, docs: map[digest.Digest][]byte{}}, nil
}

// EndpointsError says what every endpoint answered, so that a failure
// behind a mirror is not hidden by the mirror's own error.
type EndpointsError struct {
	Op   string // "resolve docker.io/library/busybox:latest"
	Errs []EndpointError
}

// EndpointError is one endpoint's failure.
type EndpointError struct {
	Endpoint registries.Endpoint
	Err      error
}

func (e *EndpointsError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	if len(e.Errs) > 1 {
		fmt.Fprintf(&b, ": all %d endpoints failed", len(e.Errs))
	}
	for _, ee := range e.Errs {
		fmt.Fprintf(&b, "; %s: %v", ee.Endpoint, ee.Err)
	}
	return b.String()
}

// Unwrap makes errors.Is see every endpoint's error.
func (e *EndpointsError) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, ee := range e.Errs {
		errs[i] = ee.Err
	}
	return errs
}

// each calls fn on the endpoints, the one that last worked first, until one
// succeeds.
func (r *Repository) each(ctx context.Context, op string, fn func(registries.Endpoint) error) error {
	r.mu.Lock()
	first := r.preferred
	r.mu.Unlock()
	order := []int{first}
	for i := range r.endpoints {
		if i != first {
			order = append(order, i)
		}
	}
	e := &EndpointsError{Op: op}
	for _, i := range order {
		ep := r.endpoints[i]
		err := fn(ep)
		if err == nil {
			r.mu.Lock()
			r.preferred = i
			r.mu.Unlock()
			if len(e.Errs) > 0 {
				r.c.log.Info("endpoint failed, another served", "op", op, "error", e.Error())
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		e.Errs = append(e.Errs, EndpointError{Endpoint: ep, Err: err})
	}
	return e
}

var acceptManifests = strings.Join(image.ManifestMediaTypes, ", ")

// Resolve finds the manifest (or index) the reference names. A digest
// reference is fetched and verified; a tag is asked with HEAD (which
// distribution-spec requires to carry Docker-Content-Digest when the
// registry knows it), falling back to GET and hashing the body.
func (r *Repository) Resolve(ctx context.Context) (ocispec.Descriptor, error) {
	var desc ocispec.Descriptor
	err := r.each(ctx, "resolve "+r.ref.String(), func(ep registries.Endpoint) error {
		var err error
		if r.ref.Digest == "" {
			if desc, err = r.head(ctx, ep); err == nil {
				return nil
			}
			// GET helps only where the server answered HEAD unhelpfully
			// (no digest header, 405): not after a transport failure, a
			// 404 or a refusal.
			var se *StatusError
			if !errors.Is(err, errHeadUnusable) && !(errors.As(err, &se) && se.Unwrap() == nil) {
				return err
			}
			r.c.log.Debug("HEAD manifest failed, trying GET", "endpoint", ep.String(), "error", err)
		}
		desc, err = r.get(ctx, ep)
		return err
	})
	return desc, err
}

func manifestPath(ep registries.Endpoint, object string) string {
	return "/v2/" + ep.Repository + "/manifests/" + object
}

func manifestHeader() http.Header {
	return http.Header{"Accept": {acceptManifests}}
}

var errHeadUnusable = errors.New("HEAD answer lacks what resolving needs")

// head resolves a tag from headers alone.
func (r *Repository) head(ctx context.Context, ep registries.Endpoint) (ocispec.Descriptor, error) {
	resp, err := r.c.send(ctx, ep, http.MethodHead, manifestPath(ep, r.ref.Tag), manifestHeader())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	drain(resp)
	dg, err := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%w: no usable Docker-Content-Digest: %v", errHeadUnusable, err)
	}
	mt := mediaType(resp.Header.Get("Content-Type"))
	if !image.IsManifest(mt) && !image.IsIndex(mt) {
		return ocispec.Descriptor{}, fmt.Errorf("%w: content type %q", errHeadUnusable, mt)
	}
	if resp.ContentLength < 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%w: no Content-Length", errHeadUnusable)
	}
	if resp.ContentLength > image.MaxManifestSize {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w: %d bytes", dg, image.ErrTooLarge, resp.ContentLength)
	}
	return ocispec.Descriptor{MediaType: mt, Digest: dg, Size: resp.ContentLength}, nil
}

// get fetches the manifest for the reference and describes it; the body is
// kept so that Fetch does not download it again.
func (r *Repository) get(ctx context.Context, ep registries.Endpoint) (ocispec.Descriptor, error) {
	data, ct, hdrDigest, err := r.getManifest(ctx, ep, r.ref.Object())
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var dg digest.Digest
	switch {
	case r.ref.Digest != "":
		dg = r.ref.Digest
	case hdrDigest != "":
		dg = hdrDigest
	default:
		dg = digest.FromBytes(data)
	}
	if err := image.Verify(ocispec.Descriptor{Digest: dg, Size: int64(len(data))}, data); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", r.ref.Object(), err)
	}
	mt := mediaType(ct)
	if !image.IsManifest(mt) && !image.IsIndex(mt) {
		if mt, err = image.DetectMediaType(data); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	if !image.IsManifest(mt) && !image.IsIndex(mt) {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w %q", dg, image.ErrUnsupportedMedia, mt)
	}
	r.mu.Lock()
	r.docs[dg] = data
	r.mu.Unlock()
	return ocispec.Descriptor{MediaType: mt, Digest: dg, Size: int64(len(data))}, nil
}

// getManifest GETs a manifest with the size limit enforced while reading.
func (r *Repository) getManifest(ctx context.Context, ep registries.Endpoint, object string) (data []byte, contentType string, dg digest.Digest, err error) {
	resp, err := r.c.send(ctx, ep, http.MethodGet, manifestPath(ep, object), manifestHeader())
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	if resp.ContentLength > image.MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s: %w: %d bytes exceeds %d", object, image.ErrTooLarge, resp.ContentLength, image.MaxManifestSize)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, image.MaxManifestSize+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("read manifest %s: %w", object, err)
	}
	if len(data) > image.MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s: %w: more than %d bytes", object, image.ErrTooLarge, image.MaxManifestSize)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		if dg, err = digest.Parse(h); err != nil {
			return nil, "", "", fmt.Errorf("manifest %s: bad Docker-Content-Digest %q: %v", object, h, err)
		}
	}
	return data, resp.Header.Get("Content-Type"), dg, nil
}

func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// Fetch implements image.Fetcher: manifests and indexes by digest from the
// manifests endpoint, everything else from the blobs endpoint. Blob bodies
// are checked for length against the descriptor before anything is read;
// their content is verified by the reader of the stream (image.Layer.Open,
// the content store's Writer).
func (r *Repository) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if image.IsManifest(desc.MediaType) || image.IsIndex(desc.MediaType) {
		r.mu.Lock()
		data, ok := r.docs[desc.Digest]
		r.mu.Unlock()
		if ok {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		if desc.Size > image.MaxManifestSize {
			return nil, fmt.Errorf("manifest %s: %w: %d bytes exceeds %d", desc.Digest, image.ErrTooLarge, desc.Size, image.MaxManifestSize)
		}
		err := r.each(ctx, "fetch manifest "+desc.Digest.String()+" of "+r.ref.Name(), func(ep registries.Endpoint) error {
			var err error
			data, _, _, err = r.getManifest(ctx, ep, desc.Digest.String())
			if err == nil {
				err = image.Verify(desc, data)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	rc, _, err := r.FetchBlob(ctx, desc, 0)
	return rc, err
}

// FetchBlob streams a blob from offset on (distribution-spec "Pulling
// blobs": a Range request is answered with 206, or with 200 and the whole
// blob by a registry that ignores ranges). It returns the offset the body
// really starts at: offset or 0.
func (r *Repository) FetchBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, int64, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, 0, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	var body io.ReadCloser
	var start int64
	err := r.each(ctx, "fetch blob "+desc.Digest.String()+" of "+r.ref.Name(), func(ep registries.Endpoint) error {
		var hdr http.Header
		if offset > 0 {
			hdr = http.Header{"Range": {fmt.Sprintf("bytes=%d-", offset)}}
		}
		resp, err := r.c.send(ctx, ep, http.MethodGet, "/v2/"+ep.Repository+"/blobs/"+desc.Digest.String(), hdr)
		if err != nil {
			return err
		}
		start = 0
		if resp.StatusCode == http.StatusPartialContent {
			if got, ok := rangeStart(resp.Header.Get("Content-Range")); ok && got == offset {
				start = offset
			} else {
				resp.Body.Close()
				return fmt.Errorf("bad Content-Range %q for offset %d", resp.Header.Get("Content-Range"), offset)
			}
		}
		// A registry announcing another length than the manifest says is
		// caught here, before a byte is stored.
		if want := desc.Size - start; resp.ContentLength >= 0 && resp.ContentLength != want {
			resp.Body.Close()
			return fmt.Errorf("%w: registry sends %d bytes, descriptor says %d", content.ErrSizeMismatch, resp.ContentLength+start, desc.Size)
		}
		body = resp.Body
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return body, start, nil
}

func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}

// Image returns the image ref names for platform, lazily: only the
// resolution (and any index on the way) is fetched now.
func (c *Client) Image(ctx context.Context, ref image.Reference, platform ocispec.Platform) (image.Image, error) {
	repo, err := c.Repository(ref)
	if err != nil {
		return nil, err
	}
	top, err := repo.Resolve(ctx)
	if err != nil {
		return nil, err
	}
	img, err := image.ResolveImage(ctx, repo, top, platform)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return img, nil
}
