package remote

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hako-runtime/hako/internal/registries"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		headers []string
		want    string
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`},
			`bearer map[realm:https://auth.docker.io/token scope:repository:library/busybox:pull service:registry.docker.io]`},
		{[]string{`Basic realm="Registry Realm"`}, `basic map[realm:Registry Realm]`},
		{[]string{`Basic realm="x"`, `Bearer realm="https://t/token"`}, `bearer map[realm:https://t/token]`},
		{[]string{`Basic realm="x", Bearer realm="https://t/token", service=reg`}, `bearer map[realm:https://t/token service:reg]`},
		{[]string{`bearer realm="a\"b", error="invalid_token"`}, `bearer map[error:invalid_token realm:a"b]`},
		{[]string{`Negotiate`}, ` map[]`},
		{nil, ` map[]`},
	}
	for _, tt := range tests {
		ch := parseChallenges(tt.headers)
		if ch.params == nil {
			ch.params = map[string]string{}
		}
		got := fmt.Sprintf("%s %v", ch.scheme, ch.params)
		if got != tt.want {
			t.Errorf("parseChallenges(%q) = %s, want %s", tt.headers, got, tt.want)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`)
	f.Add(`Basic realm="x\"`)
	f.Fuzz(func(t *testing.T, h string) {
		parseChallenges([]string{h})
	})
}

// TestIdentityToken: a credential holding an OAuth2 refresh token is
// exchanged with a POST (grant_type=refresh_token), not sent as basic auth.
func TestIdentityToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Method != http.MethodPost || r.PostForm.Get("grant_type") != "refresh_token" ||
			r.PostForm.Get("refresh_token") != "refresh-me" || r.PostForm.Get("scope") != "repository:a/b:pull" || r.PostForm.Get("service") != "svc" {
			http.Error(w, "bad token request", http.StatusBadRequest)
			return
		}
		if _, _, ok := r.BasicAuth(); ok {
			http.Error(w, "unexpected basic auth", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"access_token":"at","expires_in":60}`)
	}))
	defer srv.Close()
	auth, err := registries.ParseAuth([]byte(`{"auths":{"reg.example":{"identitytoken":"refresh-me"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{Auth: auth})
	ep := registries.Endpoint{Host: "reg.example", Repository: "a/b"}
	hs := &hostState{tokens: map[string]bearerToken{}, challenge: challenge{scheme: "bearer", params: map[string]string{"realm": srv.URL + "/token", "service": "svc"}}}
	got, err := c.authorization(context.Background(), ep, hs, "repository:a/b:pull")
	if err != nil || got != "Bearer at" {
		t.Fatalf("authorization = %q, %v", got, err)
	}
}

// TestTokenRealmMustNotDowngrade: credentials for a secure registry are not
// sent to a plain-HTTP token realm on another host.
func TestTokenRealmMustNotDowngrade(t *testing.T) {
	auth, _ := registries.ParseAuth([]byte(`{"auths":{"reg.example":{"auth":"dTpw"}}}`))
	c := New(Options{Auth: auth})
	ep := registries.Endpoint{Host: "reg.example", Repository: "a/b"}
	hs := &hostState{tokens: map[string]bearerToken{}, challenge: challenge{scheme: "bearer", params: map[string]string{"realm": "http://auth.example/token"}}}
	if _, err := c.authorization(context.Background(), ep, hs, "repository:a/b:pull"); err == nil || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("plain-HTTP realm for a secure registry: %v", err)
	}
}
