package remote

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hako-runtime/hako/internal/registries"
)

// challenge is a parsed WWW-Authenticate header (RFC 7235 section 4.1).
type challenge struct {
	scheme string // "bearer" or "basic"; "" when none understood
	params map[string]string
}

// parseChallenges picks the challenge to answer: Bearer over Basic, since a
// registry offering both prefers tokens.
func parseChallenges(headers []string) challenge {
	var best challenge
	for _, h := range headers {
		for _, ch := range parseChallengeHeader(h) {
			if ch.scheme == "bearer" || (ch.scheme == "basic" && best.scheme == "") {
				best = ch
			}
		}
	}
	return best
}

// parseChallengeHeader parses `Scheme k="v", k2=v2, Scheme2 ...`.
func parseChallengeHeader(h string) []challenge {
	var out []challenge
	s := strings.TrimSpace(h)
	for s != "" {
		i := strings.IndexAny(s, " \t,")
		if i < 0 {
			i = len(s)
		}
		ch := challenge{scheme: strings.ToLower(s[:i]), params: map[string]string{}}
		s = strings.TrimLeft(s[i:], " \t,")
		// Parameters follow until a token not followed by '='.
		for s != "" {
			j := strings.IndexAny(s, "= \t,")
			if j < 0 || s[j] != '=' {
				break
			}
			key := strings.ToLower(strings.TrimSpace(s[:j]))
			s = s[j+1:]
			var val string
			if strings.HasPrefix(s, `"`) {
				var b strings.Builder
				k := 1
				for ; k < len(s) && s[k] != '"'; k++ {
					if s[k] == '\\' && k+1 < len(s) {
						k++
					}
					b.WriteByte(s[k])
				}
				val = b.String()
				s = s[min(k+1, len(s)):]
			} else {
				k := strings.IndexAny(s, " \t,")
				if k < 0 {
					k = len(s)
				}
				val, s = s[:k], s[k:]
			}
			ch.params[key] = val
			s = strings.TrimLeft(s, " \t,")
		}
		if ch.scheme != "" {
			out = append(out, ch)
		}
	}
	return out
}

// authorization returns the Authorization header for a request to ep in
// scope, fetching a bearer token when the host asked for one.
func (c *Client) authorization(ctx context.Context, ep registries.Endpoint, hs *hostState, scope string) (string, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	cred, haveCred := c.auth.Lookup(ep.Host, ep.Repository)
	switch hs.challenge.scheme {
	case "basic":
		if !haveCred || cred.Username == "" {
			return "", nil // let the 401 come back and say so
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred.Username+":"+cred.Password)), nil
	case "bearer":
		if t, ok := hs.tokens[scope]; ok && time.Now().Before(t.expires) {
			return "Bearer " + t.token, nil
		}
		t, err := c.fetchToken(ctx, ep, hs.challenge, scope, cred, haveCred)
		if err != nil {
			return "", fmt.Errorf("authenticate to %s: %w", ep.Host, err)
		}
		hs.tokens[scope] = t
		return "Bearer " + t.token, nil
	}
	return "", nil
}

// fetchToken implements the distribution token protocol (docker's "Token
// Authentication Specification"): GET realm?service=&scope= with basic
// credentials when we have them, or the OAuth2 refresh-token grant (POST)
// when the credential is an identity token.
func (c *Client) fetchToken(ctx context.Context, ep registries.Endpoint, ch challenge, scope string, cred registries.Credential, haveCred bool) (bearerToken, error) {
	realm, err := url.Parse(ch.params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return bearerToken{}, fmt.Errorf("bearer challenge with bad realm %q", ch.params["realm"])
	}
	// Credentials travel to the realm: over plain HTTP only where the
	// registry itself is allowed plain HTTP.
	if realm.Scheme == "http" && !ep.Insecure && !registries.IsLoopback(realm.Host) {
		return bearerToken{}, fmt.Errorf("token realm %s is plain HTTP for a secure registry", realm)
	}
	var req *http.Request
	if haveCred && cred.IdentityToken != "" {
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {cred.IdentityToken},
			"service":       {ch.params["service"]},
			"scope":         {scope},
			"client_id":     {c.ua},
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return bearerToken{}, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := realm.Query()
		if s := ch.params["service"]; s != "" {
			q.Set("service", s)
		}
		q.Set("scope", scope)
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err != nil {
			return bearerToken{}, err
		}
		if haveCred && cred.Username != "" {
			req.SetBasicAuth(cred.Username, cred.Password)
		}
	}
	req.Header.Set("User-Agent", c.ua)
	cl, err := c.httpClient(ep)
	if err != nil {
		return bearerToken{}, err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return bearerToken{}, fmt.Errorf("token request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return bearerToken{}, fmt.Errorf("token request: %w", statusError(req.Method, realm.Redacted(), resp))
	}
	defer resp.Body.Close()
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return bearerToken{}, fmt.Errorf("token response: %w", err)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return bearerToken{}, fmt.Errorf("token response: %w", err)
	}
	t := body.Token
	if t == "" {
		t = body.AccessToken
	}
	if t == "" {
		return bearerToken{}, fmt.Errorf("token response carries no token")
	}
	// The spec's default lifetime is 60 s; renew a little early.
	life := 60 * time.Second
	if body.ExpiresIn > 0 {
		life = time.Duration(body.ExpiresIn) * time.Second
	}
	return bearerToken{token: t, expires: time.Now().Add(life - min(life/10, 10*time.Second))}, nil
}
