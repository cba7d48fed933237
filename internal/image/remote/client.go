// Package remote is hako's client for the OCI distribution spec
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md):
// it resolves references to manifests, fetches manifests and blobs, and
// pulls whole images into a content store. Which hosts are asked, in which
// order, and which may be reached over plain HTTP come from the registries
// configuration; credentials from an auth.json.
//
// Every request goes through Client.send, which in order: finds the host's
// scheme and auth challenge (one GET /v2/ per host, cached), adds an
// Authorization header (basic, or a bearer token fetched for the
// repository's scope and cached), retries with exponential back-off on
// connection errors, 429 and 5xx, and re-authenticates once on a 401.
package remote

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/registries"
)

// ErrUnauthorized classifies 401 and 403 answers that survived
// authentication.
var ErrUnauthorized = errors.New("unauthorized")

// Options configures a Client. The zero value works: no mirrors, no
// credentials, loopback registries over plain HTTP.
type Options struct {
	Config *registries.Config
	Auth   *registries.Auth
	// Transport is the base transport; nil means a clone of
	// http.DefaultTransport. For insecure endpoints a copy with TLS
	// verification off is derived from it when it is an *http.Transport.
	Transport http.RoundTripper
	Logger    *slog.Logger
	UserAgent string
	// Retries is how many times a request is repeated after a transient
	// failure (connection error, 429, 5xx); 0 means 3, negative means none.
	Retries int
	// Backoff is the first wait between attempts, doubled each time and
	// capped at 10s; 0 means 250ms.
	Backoff time.Duration
	// CertsDir holds per-registry CA and client certificates (see
	// DefaultCertsDir); "" means none.
	CertsDir string
}

// Client talks to registries. It is safe for concurrent use; it caches, per
// host, the scheme, the auth challenge and bearer tokens.
type Client struct {
	cfg      *registries.Config
	auth     *registries.Auth
	base     http.RoundTripper
	secure   *http.Client
	insecure *http.Client
	certsDir string
	log      *slog.Logger
	ua       string
	retries  int
	backoff  time.Duration

	mu    sync.Mutex
	hosts map[string]*hostState
}

// New returns a Client.
func New(opts Options) *Client {
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	insecure := base
	if t, ok := base.(*http.Transport); ok {
		it := t.Clone()
		if it.TLSClientConfig == nil {
			it.TLSClientConfig = &tls.Config{}
		}
		// Only for registries the configuration marks insecure (or loopback).
		it.TLSClientConfig.InsecureSkipVerify = true
		insecure = it
	}
	c := &Client{
		cfg:      opts.Config,
		auth:     opts.Auth,
		base:     base,
		certsDir: opts.CertsDir,
		secure:   &http.Client{Transport: base},
		insecure: &http.Client{Transport: insecure},
		log:      opts.Logger,
		ua:       opts.UserAgent,
		retries:  opts.Retries,
		backoff:  opts.Backoff,
		hosts:    map[string]*hostState{},
	}
	if c.cfg == nil {
		c.cfg = &registries.Config{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.ua == "" {
		c.ua = "hako"
	}
	if c.retries == 0 {
		c.retries = 3
	} else if c.retries < 0 {
		c.retries = 0
	}
	if c.backoff == 0 {
		c.backoff = 250 * time.Millisecond
	}
	return c
}

// hostState is what one host taught us: the scheme that works, how it wants
// to be authenticated, and tokens per scope.
type hostState struct {
	clientOnce sync.Once
	client     *http.Client
	clientErr  error

	mu        sync.Mutex
	pinged    bool
	scheme    string
	challenge challenge
	tokens    map[string]bearerToken
}

type bearerToken struct {
	token   string
	expires time.Time
}

func (c *Client) host(ep registries.Endpoint) *hostState {
	key := ep.Host
	if ep.Insecure {
		key += "|insecure"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	hs, ok := c.hosts[key]
	if !ok {
		hs = &hostState{tokens: map[string]bearerToken{}}
		c.hosts[key] = hs
	}
	return hs
}

func (c *Client) httpClient(ep registries.Endpoint) (*http.Client, error) {
	hs := c.host(ep)
	cl := c.hostClient(ep, hs)
	return cl, hs.clientErr
}

// ping learns the host's scheme and challenge from GET /v2/
// (distribution-spec "Determining support"; the 401 carries the
// WWW-Authenticate challenge). An insecure endpoint is tried over HTTPS
// without verification first, then over plain HTTP, as docker does.
func (c *Client) ping(ctx context.Context, ep registries.Endpoint, hs *hostState) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.pinged {
		return nil
	}
	schemes := []string{"https"}
	if ep.Insecure {
		schemes = append(schemes, "http")
	}
	var errs []string
	for i, scheme := range schemes {
		retries := c.retries
		if i+1 < len(schemes) {
			retries = 0 // a TLS failure is not transient; fall back at once
		}
		resp, err := c.roundTrip(ctx, ep, http.MethodGet, scheme+"://"+ep.Host+"/v2/", nil, "", retries, nil, 0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, err.Error())
			continue
		}
		drain(resp)
		hs.scheme = scheme
		hs.pinged = true
		if resp.StatusCode == http.StatusUnauthorized {
			hs.challenge = parseChallenges(resp.Header.Values("WWW-Authenticate"))
		}
		return nil
	}
	return fmt.Errorf("ping %s: %s", ep.Host, strings.Join(errs, "; "))
}

// roundTrip sends one request, repeating it on transient failures; auth is
// the Authorization header value or "".
func (c *Client) roundTrip(ctx context.Context, ep registries.Endpoint, method, url string, hdr http.Header, auth string, retries int, body func() (io.ReadCloser, error), size int64) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, url, nil)
		if err != nil {
			return nil, err
		}
		if body != nil {
			if req.Body, err = body(); err != nil {
				return nil, err
			}
			req.GetBody = body // for redirects
			req.ContentLength = size
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.ua)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		cl, err := c.httpClient(ep)
		if err != nil {
			return nil, err
		}
		resp, err := cl.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if attempt < retries && transient(err) {
				c.log.Debug("retrying request", "method", method, "url", url, "attempt", attempt+1, "error", err)
				if err := c.sleep(ctx, attempt, 0); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented) && attempt < retries {
			after := retryAfter(resp.Header.Get("Retry-After"))
			drain(resp)
			c.log.Debug("retrying request", "method", method, "url", url, "attempt", attempt+1, "status", resp.StatusCode)
			if err := c.sleep(ctx, attempt, after); err != nil {
				return nil, err
			}
			continue
		}
		return resp, nil
	}
}

const maxBackoff = 10 * time.Second

func (c *Client) sleep(ctx context.Context, attempt int, hint time.Duration) error {
	d := c.backoff << attempt
	if hint > d {
		d = hint
	}
	d = min(d, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func retryAfter(v string) time.Duration {
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// transient reports whether a transport error may go away on retry: not a
// name that does not resolve, not a TLS verification failure.
func transient(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary || dns.IsTimeout
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return false
	}
	var rec tls.RecordHeaderError
	if errors.As(err, &rec) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return false
	}
	return true
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// request is one registry request. body, when set, is called for every
// attempt, since a retried or re-authenticated request needs a fresh body.
type request struct {
	method string
	path   string // "/v2/..."; or url, absolute (an upload Location)
	url    string
	hdr    http.Header
	body   func() (io.ReadCloser, error)
	size   int64
	push   bool // needs the push scope
}

// send issues a GET/HEAD to ep with auth and retries; see do.
func (c *Client) send(ctx context.Context, ep registries.Endpoint, method, path string, hdr http.Header) (*http.Response, error) {
	return c.do(ctx, ep, request{method: method, path: path, hdr: hdr})
}

// do issues r with auth and retries. The token scope is the repository's
// pull (and push) scope. The caller closes the body of a successful
// response; any status other than 2xx (3xx is followed by net/http) comes
// back as an error.
func (c *Client) do(ctx context.Context, ep registries.Endpoint, r request) (*http.Response, error) {
	hs := c.host(ep)
	if err := c.ping(ctx, ep, hs); err != nil {
		return nil, err
	}
	url := r.url
	if url == "" {
		url = hs.scheme + "://" + ep.Host + r.path
	}
	scope := "repository:" + ep.Repository + ":pull"
	if r.push {
		scope += ",push"
	}
	reauthed := false
	for {
		auth, err := c.authorization(ctx, ep, hs, scope)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, ep, r.method, url, r.hdr, auth, c.retries, r.body, r.size)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && !reauthed {
			// A first contact, an expired token, or a different scope: the
			// challenge in this answer says what the server wants now.
			if ch := parseChallenges(resp.Header.Values("WWW-Authenticate")); ch.scheme != "" {
				drain(resp)
				// The scope in a challenge is this request's; the host's
				// challenge is kept without it for other repositories.
				if s := ch.params["scope"]; s != "" {
					scope = s
					delete(ch.params, "scope")
				}
				hs.mu.Lock()
				hs.challenge = ch
				delete(hs.tokens, scope)
				hs.mu.Unlock()
				reauthed = true
				continue
			}
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		return nil, statusError(r.method, url, resp)
	}
}

// StatusError is a non-2xx answer, with the distribution-spec error codes
// from its body ("Error Codes").
type StatusError struct {
	Method, URL string
	StatusCode  int
	Status      string
	Errors      []APIError
}

// APIError is one entry of a distribution-spec error body.
type APIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Method, e.URL, e.Status)
	for _, a := range e.Errors {
		s += fmt.Sprintf(": %s: %s", a.Code, a.Message)
	}
	return s
}

// Unwrap classifies: 404 is image.ErrNotFound, 401/403 ErrUnauthorized.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return image.ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrUnauthorized
	}
	return nil
}

func statusError(method, url string, resp *http.Response) error {
	defer drain(resp)
	e := &StatusError{Method: method, URL: url, StatusCode: resp.StatusCode, Status: resp.Status}
	var body struct {
		Errors []APIError `json:"errors"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err == nil && json.Unmarshal(b, &body) == nil {
		e.Errors = body.Errors
	}
	return e
}
