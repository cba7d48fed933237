package registries

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Credential is what auth.json holds for one registry (or repository).
type Credential struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token (docker login with an
	// identity provider); it is exchanged at the token endpoint.
	IdentityToken string
}

// Auth is a loaded docker-style auth.json ({"auths": {"host": {"auth":
// base64("user:password")}}}), the format docker, podman, skopeo and
// crictl share.
type Auth struct {
	entries map[string]Credential // normalised key -> credential
}

type authFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
}

// DefaultAuthFiles lists the files docker and podman read, most specific
// first: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
// $HOME/.docker/config.json. It takes the environment as a parameter.
func DefaultAuthFiles(getenv func(string) string) []string {
	var p []string
	if f := getenv("REGISTRY_AUTH_FILE"); f != "" {
		p = append(p, f)
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		p = append(p, filepath.Join(d, "containers", "auth.json"))
	}
	if h := getenv("HOME"); h != "" {
		p = append(p, filepath.Join(h, ".docker", "config.json"))
	}
	return p
}

// LoadAuth reads the given files; missing files are skipped and an entry in
// an earlier file wins over the same key in a later one.
func LoadAuth(paths ...string) (*Auth, error) {
	a := &Auth{entries: map[string]Credential{}}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("read auth file: %w", err)
		}
		if err := a.add(data); err != nil {
			return nil, fmt.Errorf("auth file %s: %w", p, err)
		}
	}
	return a, nil
}

// ParseAuth decodes one auth.json document.
func ParseAuth(data []byte) (*Auth, error) {
	a := &Auth{entries: map[string]Credential{}}
	if err := a.add(data); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *Auth) add(data []byte) error {
	var f authFile
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	for key, e := range f.Auths {
		c := Credential{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return fmt.Errorf("entry %q: auth is not base64: %w", key, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return fmt.Errorf("entry %q: auth is not user:password", key)
			}
			c.Username, c.Password = user, pass
		}
		k := normaliseAuthKey(key)
		if _, dup := a.entries[k]; !dup {
			a.entries[k] = c
		}
	}
	return nil
}

// normaliseAuthKey maps the spellings tools write ("https://index.docker.io/v1/",
// "registry-1.docker.io", "host:5000/") onto host[/path].
func normaliseAuthKey(k string) string {
	if _, rest, ok := strings.Cut(k, "://"); ok {
		k = rest
	}
	k = strings.TrimSuffix(k, "/")
	k = strings.TrimSuffix(k, "/v1")
	k = strings.TrimSuffix(k, "/v2")
	host, path, _ := strings.Cut(k, "/")
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		host = "docker.io"
	}
	if path != "" {
		return host + "/" + path
	}
	return host
}

// Lookup finds the credential for a repository on a host: the most specific
// key wins ("host/ns/repo", then "host/ns", then "host"), as in podman.
func (a *Auth) Lookup(host, repository string) (Credential, bool) {
	if a == nil {
		return Credential{}, false
	}
	key := normaliseAuthKey(host + "/" + repository)
	for {
		if c, ok := a.entries[key]; ok {
			return c, true
		}
		i := strings.LastIndex(key, "/")
		if i < 0 {
			return Credential{}, false
		}
		key = key[:i]
	}
}
