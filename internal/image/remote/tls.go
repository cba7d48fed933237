package remote

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hako-runtime/hako/internal/registries"
)

// DefaultCertsDir is where per-registry certificates live, laid out as
// docker's and CRI-O's certs.d: <dir>/<host[:port]>/*.crt are extra CA
// certificates for that registry, and <name>.cert with <name>.key a client
// certificate to present.
const DefaultCertsDir = "/etc/hako/certs.d"

// hostClient returns the HTTP client for ep: the shared ones, unless the
// certs directory holds certificates for the host. Built once per host.
func (c *Client) hostClient(ep registries.Endpoint, hs *hostState) *http.Client {
	hs.clientOnce.Do(func() {
		hs.client = c.secure
		if ep.Insecure {
			hs.client = c.insecure
		}
		if c.certsDir == "" {
			return
		}
		cfg, err := c.hostTLS(ep.Host)
		if err != nil {
			// A broken certificate must not silently fall back to the
			// defaults: every request to this host fails with the reason.
			hs.clientErr = err
			return
		}
		base, ok := c.base.(*http.Transport)
		if cfg == nil || !ok {
			return
		}
		t := base.Clone()
		cfg.InsecureSkipVerify = ep.Insecure
		t.TLSClientConfig = cfg
		hs.client = &http.Client{Transport: t}
	})
	return hs.client
}

// hostTLS loads <certsDir>/<host>; nil when there is nothing for host.
func (c *Client) hostTLS(host string) (*tls.Config, error) {
	if strings.ContainsAny(host, "/\\") || host == ".." || host == "." {
		return nil, fmt.Errorf("registry host %q", host)
	}
	dir := filepath.Join(c.certsDir, host)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certificates for %s: %w", host, err)
	}
	var cfg tls.Config
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".crt"):
			pem, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("certificates for %s: %w", host, err)
			}
			if cfg.RootCAs == nil {
				if cfg.RootCAs, err = x509.SystemCertPool(); err != nil || cfg.RootCAs == nil {
					cfg.RootCAs = x509.NewCertPool()
				}
			}
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("certificates for %s: %s holds no PEM certificate", host, name)
			}
		case strings.HasSuffix(name, ".cert"):
			key := strings.TrimSuffix(name, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name), filepath.Join(dir, key))
			if err != nil {
				return nil, fmt.Errorf("certificates for %s: client certificate %s: %w", host, name, err)
			}
			cfg.Certificates = append(cfg.Certificates, pair)
		case strings.HasSuffix(name, ".key"):
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(name, ".key")+".cert")); err != nil {
				return nil, fmt.Errorf("certificates for %s: key %s without a .cert", host, name)
			}
		}
	}
	if cfg.RootCAs == nil && cfg.Certificates == nil {
		return nil, nil
	}
	return &cfg, nil
}
