package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/registries"
)

// Push uploads the image or index desc, read from src (the content store,
// an archive), to ref's registry: never to a mirror, which is read-only by
// definition. Blobs the registry has are skipped (HEAD); the rest are
// uploaded monolithically (distribution-spec "Pushing a blob
// monolithically": POST, then PUT with the digest); then manifests,
// children before parents, the top one under ref's tag (or digest). Every
// entry of an index must be present in src: a registry refuses an index
// whose manifests it lacks.
func (c *Client) Push(ctx context.Context, ref image.Reference, src image.Fetcher, desc ocispec.Descriptor) error {
	eps, err := c.cfg.Endpoints(ref.Name())
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	ep := eps[len(eps)-1]
	if ep.Mirror {
		return fmt.Errorf("push %s: the configuration allows only mirrors for this name", ref)
	}
	if ref.Digest != "" && ref.Digest != desc.Digest {
		return fmt.Errorf("push %s: reference pins %s but the image is %s", ref, ref.Digest, desc.Digest)
	}
	p := &pusher{c: c, ep: ep, src: src, done: map[digest.Digest]bool{}}
	if err := p.push(ctx, desc, ref.Object(), 0); err != nil {
		return fmt.Errorf("push %s to %s: %w", ref, ep, err)
	}
	return nil
}

type pusher struct {
	c    *Client
	ep   registries.Endpoint
	src  image.Fetcher
	done map[digest.Digest]bool
}

// push uploads desc and what it refers to; tag is where a manifest goes
// ("" for a child: by digest).
func (p *pusher) push(ctx context.Context, desc ocispec.Descriptor, tag string, depth int) error {
	if depth > 8 {
		return fmt.Errorf("%w: indexes nested too deep", image.ErrInvalidManifest)
	}
	if p.done[desc.Digest] && tag == "" {
		return nil
	}
	if !image.IsManifest(desc.MediaType) && !image.IsIndex(desc.MediaType) {
		if err := p.pushBlob(ctx, desc); err != nil {
			return err
		}
		p.done[desc.Digest] = true
		return nil
	}
	data, err := image.ReadAll(ctx, p.src, desc, image.MaxManifestSize)
	if err != nil {
		return err
	}
	children, err := image.Children(ctx, image.BytesFetcher{desc.Digest: data}, desc)
	if err != nil {
		return err
	}
	for _, ch := range children {
		if err := p.push(ctx, ch, "", depth+1); err != nil {
			return err
		}
	}
	if tag == "" {
		tag = desc.Digest.String()
	}
	resp, err := p.c.do(ctx, p.ep, request{
		method: http.MethodPut,
		path:   manifestPath(p.ep, tag),
		hdr:    http.Header{"Content-Type": {desc.MediaType}},
		body:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		size:   int64(len(data)),
		push:   true,
	})
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", desc.Digest, err)
	}
	drain(resp)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return fmt.Errorf("put manifest %s: registry stored it as %s", desc.Digest, got)
	}
	p.done[desc.Digest] = true
	return nil
}

func (p *pusher) pushBlob(ctx context.Context, desc ocispec.Descriptor) error {
	blobPath := "/v2/" + p.ep.Repository + "/blobs/" + desc.Digest.String()
	resp, err := p.c.do(ctx, p.ep, request{method: http.MethodHead, path: blobPath, push: true})
	if err == nil {
		drain(resp)
		if resp.ContentLength < 0 || resp.ContentLength == desc.Size {
			return nil // already there
		}
	} else if !errors.Is(err, image.ErrNotFound) {
		return fmt.Errorf("check blob %s: %w", desc.Digest, err)
	}

	resp, err = p.c.do(ctx, p.ep, request{method: http.MethodPost, path: "/v2/" + p.ep.Repository + "/blobs/uploads/", push: true,
		body: func() (io.ReadCloser, error) { return http.NoBody, nil }})
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", desc.Digest, err)
	}
	drain(resp)
	loc, err := p.uploadURL(resp)
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", desc.Digest, err)
	}
	q := loc.Query()
	q.Set("digest", desc.Digest.String())
	loc.RawQuery = q.Encode()
	resp, err = p.c.do(ctx, p.ep, request{
		method: http.MethodPut,
		url:    loc.String(),
		hdr:    http.Header{"Content-Type": {"application/octet-stream"}},
		// The source is verified as it streams: a store whose blob rotted
		// must not publish it.
		body: func() (io.ReadCloser, error) {
			rc, err := p.src.Fetch(ctx, desc)
			if err != nil {
				return nil, err
			}
			return image.VerifyReader(rc, desc), nil
		},
		size: desc.Size,
		push: true,
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", desc.Digest, err)
	}
	drain(resp)
	return nil
}

// uploadURL resolves the Location of an upload session, which may be
// relative (distribution-spec allows both).
func (p *pusher) uploadURL(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("registry gave no upload location")
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("upload location %q: %w", loc, err)
	}
	// Credentials go only to the registry itself.
	if u.Host != resp.Request.URL.Host {
		return nil, fmt.Errorf("upload location %q is on another host", loc)
	}
	return u, nil
}
