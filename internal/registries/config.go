// Package registries reads hako's registry configuration: which registry
// serves a name prefix, which mirrors to try first, which may be reached over
// plain HTTP, and the credentials (a docker-style auth.json) to present.
//
// The registry table follows CRI-O's registries.conf v2 so that a CRI-O user
// can carry theirs over:
//
//	[[registry]]
//	prefix = "registry.k8s.io"        # names this entry applies to
//	location = "registry.k8s.io"      # where they really live (may rewrite)
//	insecure = false                  # allow plain HTTP / unverified TLS
//	blocked = false                   # refuse to pull from here at all
//	mirrors-only = false              # true: never contact location (air-gapped)
//	[[registry.mirror]]
//	location = "mirror.local:5000/k8s"
//	insecure = true
//	pull-from-mirror = "all"          # or "digest-only", "tag-only"
//
// A mirror is tried before the location, in the order written; the image
// keeps its original name whichever host served it. pull-from-mirror is
// CRI-O's: a digest-only mirror is used only for references pinned by
// digest (a stale mirror cannot serve an old image for a tag).
package registries

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrBlocked is returned for names whose registry the config blocks.
var ErrBlocked = errors.New("registry blocked by configuration")

// DefaultConfigPath is where hako looks unless told otherwise (--config).
const DefaultConfigPath = "/etc/hako/hako.toml"

// Config is hako.toml; only the registry table is read here, other tables
// belong to other packages and are ignored.
type Config struct {
	Registries []Registry `toml:"registry"`
}

// Registry is one [[registry]] entry.
type Registry struct {
	// Prefix selects the names this entry applies to: "docker.io",
	// "docker.io/library", "localhost:5000/team", or "*.example.com"
	// (every host under example.com). Empty means the same as Location.
	Prefix string `toml:"prefix"`
	// Location replaces Prefix in the name to find the repository; empty
	// keeps the name as it is. Not allowed with a wildcard prefix.
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
	Blocked  bool   `toml:"blocked"`
	// MirrorsOnly never falls back to Location: for hosts that must not
	// reach the internet.
	MirrorsOnly bool     `toml:"mirrors-only"`
	Mirrors     []Mirror `toml:"mirror"`
}

// Mirror is one [[registry.mirror]]: its Location replaces the prefix.
type Mirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
	// PullFromMirror is "all" (or empty), "digest-only" or "tag-only".
	PullFromMirror string `toml:"pull-from-mirror"`
}

// Values of Mirror.PullFromMirror.
const (
	PullFromMirrorAll        = "all"
	PullFromMirrorDigestOnly = "digest-only"
	PullFromMirrorTagOnly    = "tag-only"
)

// Endpoint is one place to fetch a name from.
type Endpoint struct {
	Host       string // host[:port] to connect to ("registry-1.docker.io" for docker.io)
	Repository string // repository path on that host
	Insecure   bool   // plain HTTP and unverified TLS allowed
	Mirror     bool
}

// EndpointsFor lists the endpoints for a reference: as Endpoints, without
// the mirrors whose pull-from-mirror excludes it (byDigest says whether the
// reference is pinned by digest).
func (c *Config) EndpointsFor(name string, byDigest bool) ([]Endpoint, error) {
	eps, err := c.endpoints(name, byDigest)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("%s: no mirror serves a reference pinned by %s and mirrors-only is set", name, map[bool]string{true: "digest", false: "tag"}[byDigest])
	}
	return eps, nil
}

// String is host/repository, for messages.
func (e Endpoint) String() string { return e.Host + "/" + e.Repository }

// Load reads path. A missing file is an empty configuration (no mirrors, only
// loopback registries insecure). Unknown keys under [[registry]] are logged
// as warnings, since a misspelt "insecure" would otherwise pass silently.
func Load(path string, log *slog.Logger) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &Config{}, nil
		}
		return nil, fmt.Errorf("read registry config: %w", err)
	}
	c, err := Parse(data, log)
	if err != nil {
		return nil, fmt.Errorf("registry config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a hako.toml document.
func Parse(data []byte, log *slog.Logger) (*Config, error) {
	var c Config
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return nil, err
	}
	if log != nil {
		for _, k := range md.Undecoded() {
			// Other top-level tables are other packages' business.
			if len(k) > 1 && k[0] == "registry" {
				log.Warn("unknown key in registry configuration", "key", k.String())
			}
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) validate() error {
	seen := map[string]bool{}
	for i := range c.Registries {
		r := &c.Registries[i]
		r.Prefix = strings.TrimSuffix(r.Prefix, "/")
		r.Location = strings.TrimSuffix(r.Location, "/")
		if r.Prefix == "" {
			r.Prefix = r.Location
		}
		if r.Prefix == "" {
			return fmt.Errorf("registry #%d: neither prefix nor location set", i+1)
		}
		if strings.Contains(r.Prefix, "://") || strings.Contains(r.Location, "://") {
			return fmt.Errorf("registry %q: prefix and location take no scheme (use insecure = true for plain HTTP)", r.Prefix)
		}
		if strings.HasPrefix(r.Prefix, "*.") {
			if strings.Contains(r.Prefix, "/") || r.Location != "" {
				return fmt.Errorf("registry %q: a wildcard prefix names hosts only and cannot have a location", r.Prefix)
			}
		} else if strings.Contains(r.Prefix, "*") {
			return fmt.Errorf("registry %q: a wildcard must be a leading \"*.\"", r.Prefix)
		}
		if r.MirrorsOnly && len(r.Mirrors) == 0 {
			return fmt.Errorf("registry %q: mirrors-only without mirrors", r.Prefix)
		}
		if seen[r.Prefix] {
			return fmt.Errorf("registry %q: prefix listed twice", r.Prefix)
		}
		seen[r.Prefix] = true
		for j, m := range r.Mirrors {
			if m.Location == "" || strings.Contains(m.Location, "://") {
				return fmt.Errorf("registry %q: mirror #%d: location %q must be host[:port][/path]", r.Prefix, j+1, m.Location)
			}
			r.Mirrors[j].Location = strings.TrimSuffix(m.Location, "/")
			switch m.PullFromMirror {
			case "", PullFromMirrorAll, PullFromMirrorDigestOnly, PullFromMirrorTagOnly:
			default:
				return fmt.Errorf("registry %q: mirror %q: pull-from-mirror %q: want all, digest-only or tag-only", r.Prefix, m.Location, m.PullFromMirror)
			}
		}
	}
	return nil
}

// match reports how much of name the prefix covers (0 for no match): the
// longest match wins, as in registries.conf.
func match(prefix, name string) int {
	if host, ok := strings.CutPrefix(prefix, "*."); ok {
		domain, _, _ := strings.Cut(name, "/")
		if strings.HasSuffix(domain, "."+host) {
			return len(domain)
		}
		return 0
	}
	if name == prefix || strings.HasPrefix(name, prefix+"/") {
		return len(prefix)
	}
	return 0
}

// Lookup returns the entry that applies to name (domain/path, no tag),
// and the length of name it matched.
func (c *Config) Lookup(name string) (Registry, int, bool) {
	best, bestLen := -1, 0
	for i, r := range c.Registries {
		// Among equally long matches a literal prefix beats a wildcard.
		if n := match(r.Prefix, name); n > bestLen || (n == bestLen && n > 0 && !strings.HasPrefix(r.Prefix, "*.")) {
			best, bestLen = i, n
		}
	}
	if best < 0 {
		return Registry{}, 0, false
	}
	return c.Registries[best], bestLen, true
}

// Endpoints lists where to fetch name from, in order: mirrors as configured,
// then the registry itself. Insecure is set from the config, and by default
// for loopback hosts (as docker treats 127.0.0.0/8 and localhost).
func (c *Config) Endpoints(name string) ([]Endpoint, error) {
	return c.endpoints(name, true)
}

func (c *Config) endpoints(name string, byDigest bool) ([]Endpoint, error) {
	if c == nil {
		c = &Config{}
	}
	reg, n, ok := c.Lookup(name)
	rest := name[n:] // "" or "/path..."
	var eps []Endpoint
	if ok {
		if reg.Blocked {
			return nil, fmt.Errorf("%s: %w (prefix %q)", name, ErrBlocked, reg.Prefix)
		}
		for _, m := range reg.Mirrors {
			switch m.PullFromMirror {
			case PullFromMirrorDigestOnly:
				if !byDigest {
					continue
				}
			case PullFromMirrorTagOnly:
				if byDigest {
					continue
				}
			}
			eps = append(eps, endpoint(m.Location+rest, m.Insecure, true))
		}
		if !reg.MirrorsOnly {
			loc := name
			if reg.Location != "" {
				loc = reg.Location + rest
			}
			eps = append(eps, endpoint(loc, reg.Insecure, false))
		}
	} else {
		eps = append(eps, endpoint(name, false, false))
	}
	for _, e := range eps {
		if e.Repository == "" {
			return nil, fmt.Errorf("%s: endpoint %q has no repository path", name, e.Host)
		}
	}
	return eps, nil
}

func endpoint(location string, insecure, mirror bool) Endpoint {
	host, repo, _ := strings.Cut(location, "/")
	if host == "docker.io" {
		// docker.io is a name, not a host: the API lives at registry-1.
		host = "registry-1.docker.io"
	}
	return Endpoint{Host: host, Repository: repo, Insecure: insecure || IsLoopback(host), Mirror: mirror}
}

// IsLoopback reports whether host[:port] is localhost or a loopback address.
func IsLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
