package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// RegistryBinary is Debian's distribution registry (package docker-registry).
const RegistryBinary = "/usr/bin/docker-registry"

// Registry is a real distribution registry serving plain HTTP on a loopback
// port, with its storage in a temporary directory, for one test.
type Registry struct {
	Host     string // 127.0.0.1:port
	Dir      string // storage root
	Username string // set when the registry requires basic auth
	Password string
	cmd      *exec.Cmd
}

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Username and Password, when set, turn on htpasswd (basic) auth; this
	// needs htpasswd from apache2-utils to make the bcrypt entry.
	Username, Password string
}

// StartRegistry starts a registry for t and stops it (by PID) when t ends.
// It skips t when the registry (or, for auth, htpasswd) is not installed.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Skipf("needs %s (Debian package docker-registry)", RegistryBinary)
	}
	dir := t.TempDir()
	r := &Registry{Dir: filepath.Join(dir, "storage"), Username: opts.Username, Password: opts.Password}
	authCfg := ""
	if opts.Username != "" {
		htpasswd, err := exec.LookPath("htpasswd")
		if err != nil {
			t.Skip("needs htpasswd (Debian package apache2-utils) for registry auth")
		}
		// docker-registry accepts only bcrypt entries.
		out, err := exec.Command(htpasswd, "-Bbn", opts.Username, opts.Password).Output()
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
			t.Fatal(err)
		}
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: hako-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and use
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: hako-test-secret
%s`, r.Dir, r.Host, authCfg)
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "registry.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(RegistryBinary, "serve", cfgPath)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start registry: %v", err)
		}
		logf.Close()
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if lastErr = waitRegistry(r.Host, exited); lastErr == nil {
			r.cmd = cmd
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return r
		}
		cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
		lastErr = fmt.Errorf("%w; log:\n%s", lastErr, log)
	}
	t.Fatalf("registry did not start: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitRegistry(host string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("registry exited")
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry on %s not answering", host)
}

func (r *Registry) do(ctx context.Context, method, url, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.Username != "" {
		req.SetBasicAuth(r.Username, r.Password)
	}
	return http.DefaultClient.Do(req)
}

// PushBlob uploads data to repo (distribution-spec "Pushing a blob
// monolithically": POST then PUT with the digest).
func (r *Registry) PushBlob(t testing.TB, repo string, data []byte) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	d := digest.FromBytes(data)
	resp, err := r.do(ctx, http.MethodPost, "http://"+r.Host+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatalf("push blob: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push blob: start upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = "http://" + r.Host + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp, err = r.do(ctx, http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", data)
	if err != nil {
		t.Fatalf("push blob: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: %s: %s", resp.Status, msg)
	}
	return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
}

// PushManifest uploads a manifest or index under ref (a tag or digest).
func (r *Registry) PushManifest(t testing.TB, repo, ref, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	resp, err := r.do(context.Background(), http.MethodPut, "http://"+r.Host+"/v2/"+repo+"/manifests/"+ref, mediaType, data)
	if err != nil {
		t.Fatalf("push manifest: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %s: %s", repo, ref, resp.Status, msg)
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}
