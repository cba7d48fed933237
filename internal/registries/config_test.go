package registries

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `
[runtime]            # another package's table: not ours to warn about
root = "/run/hako"

[[registry]]
prefix = "docker.io"
[[registry.mirror]]
location = "mirror.local:5000/hub"
insecure = true
[[registry.mirror]]
location = "second.mirror"

[[registry]]
prefix = "unreachable.invalid"
location = "127.0.0.1:5000/moved"
insecure = true
insecurr = true

[[registry]]
location = "plain.example:80"
insecure = true

[[registry]]
prefix = "*.corp.example"
insecure = true

[[registry]]
prefix = "evil.example"
blocked = true
`

func TestParseAndEndpoints(t *testing.T) {
	var logBuf bytes.Buffer
	c, err := Parse([]byte(sample), slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logBuf.String(), "registry.insecurr") {
		t.Errorf("no warning for the misspelt key; log: %q", logBuf.String())
	}
	if strings.Contains(logBuf.String(), "runtime") {
		t.Errorf("warned about another package's table: %q", logBuf.String())
	}
	tests := []struct {
		name string
		want string
	}{
		{"docker.io/library/busybox", "mirror.local:5000/hub/library/busybox(insecure,mirror) second.mirror/library/busybox(mirror) registry-1.docker.io/library/busybox"},
		{"unreachable.invalid/a/b", "127.0.0.1:5000/moved/a/b(insecure)"},
		{"unreachable.invalidx/a", "unreachable.invalidx/a"}, // prefix ends at a path boundary
		{"plain.example:80/x", "plain.example:80/x(insecure)"},
		{"build.corp.example/x/y", "build.corp.example/x/y(insecure)"},
		{"corp.example/x", "corp.example/x"},
		{"registry.k8s.io/pause", "registry.k8s.io/pause"},
		{"localhost:5000/x", "localhost:5000/x(insecure)"},
		{"127.0.0.1:5000/x", "127.0.0.1:5000/x(insecure)"},
		{"[::1]:5000/x", "[::1]:5000/x(insecure)"},
	}
	for _, tt := range tests {
		eps, err := c.Endpoints(tt.name)
		if err != nil {
			t.Errorf("Endpoints(%q): %v", tt.name, err)
			continue
		}
		var got []string
		for _, e := range eps {
			s := e.String()
			var flags []string
			if e.Insecure {
				flags = append(flags, "insecure")
			}
			if e.Mirror {
				flags = append(flags, "mirror")
			}
			if flags != nil {
				s += "(" + strings.Join(flags, ",") + ")"
			}
			got = append(got, s)
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("Endpoints(%q) = %s\nwant %s", tt.name, g, tt.want)
		}
	}
	if _, err := c.Endpoints("evil.example/x"); !errors.Is(err, ErrBlocked) {
		t.Errorf("blocked registry: %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	for _, doc := range []string{
		"[[registry]]\ninsecure = true\n",
		"[[registry]]\nprefix = \"https://x\"\n",
		"[[registry]]\nprefix = \"*.x/y\"\n",
		"[[registry]]\nprefix = \"*.x\"\nlocation = \"y\"\n",
		"[[registry]]\nprefix = \"a*b\"\n",
		"[[registry]]\nprefix = \"x\"\n[[registry]]\nprefix = \"x\"\n",
		"[[registry]]\nprefix = \"x\"\n[[registry.mirror]]\ninsecure = true\n",
		"[[registry]\n",
	} {
		if _, err := Parse([]byte(doc), nil); err == nil {
			t.Errorf("Parse(%q) succeeded", doc)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "absent.toml"), nil)
	if err != nil || len(c.Registries) != 0 {
		t.Fatalf("Load(absent) = %+v, %v", c, err)
	}
	p := filepath.Join(t.TempDir(), "hako.toml")
	os.WriteFile(p, []byte("[[registry]]\nprefix=\"a\"\nlocation=\"b\"\n"), 0o600)
	c, err = Load(p, nil)
	if err != nil || len(c.Registries) != 1 {
		t.Fatalf("Load = %+v, %v", c, err)
	}
}

func TestAuth(t *testing.T) {
	b64 := func(s string) string {
		return fmt.Sprintf("%q", strings.TrimSpace(base64Std(s)))
	}
	doc := `{"auths": {
		"https://index.docker.io/v1/": {"auth": ` + b64("hubuser:hubpass") + `},
		"quay.io": {"auth": ` + b64("q:p:with:colons") + `},
		"quay.io/team": {"auth": ` + b64("team:secret") + `},
		"idp.example": {"identitytoken": "refresh"}
	}}`
	a, err := ParseAuth([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, repo, user, pass string }{
		{"registry-1.docker.io", "library/busybox", "hubuser", "hubpass"},
		{"docker.io", "x/y", "hubuser", "hubpass"},
		{"quay.io", "other/repo", "q", "p:with:colons"},
		{"quay.io", "team/repo", "team", "secret"},
		{"quay.io", "teamx/repo", "q", "p:with:colons"},
	}
	for _, tt := range tests {
		c, ok := a.Lookup(tt.host, tt.repo)
		if !ok || c.Username != tt.user || c.Password != tt.pass {
			t.Errorf("Lookup(%s, %s) = %+v, %v", tt.host, tt.repo, c, ok)
		}
	}
	if c, ok := a.Lookup("idp.example", "r"); !ok || c.IdentityToken != "refresh" {
		t.Errorf("identity token: %+v %v", c, ok)
	}
	if _, ok := a.Lookup("other.example", "r"); ok {
		t.Error("credential for an unknown host")
	}
	if _, err := ParseAuth([]byte(`{"auths":{"x":{"auth":"!!"}}}`)); err == nil {
		t.Error("bad base64 accepted")
	}

	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	os.WriteFile(first, []byte(`{"auths":{"h":{"auth":`+b64("one:1")+`}}}`), 0o600)
	os.WriteFile(second, []byte(`{"auths":{"h":{"auth":`+b64("two:2")+`},"g":{"auth":`+b64("g:g")+`}}}`), 0o600)
	a, err = LoadAuth(filepath.Join(dir, "missing.json"), first, second)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Lookup("h", "r"); c.Username != "one" {
		t.Errorf("earlier file should win: %+v", c)
	}
	if c, _ := a.Lookup("g", "r"); c.Username != "g" {
		t.Errorf("later file's other keys are used: %+v", c)
	}
	env := map[string]string{"REGISTRY_AUTH_FILE": "/x.json", "HOME": "/root"}
	if got := DefaultAuthFiles(func(k string) string { return env[k] }); fmt.Sprint(got) != "[/x.json /root/.docker/config.json]" {
		t.Errorf("DefaultAuthFiles = %v", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, nil)
		if err != nil {
			return
		}
		for _, r := range c.Registries {
			if _, err := c.Endpoints(strings.TrimPrefix(r.Prefix, "*.") + "/x"); err != nil && !errors.Is(err, ErrBlocked) {
				_ = err // an endpoint without repository is an error, not a panic
			}
		}
	})
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestPullFromMirrorAndMirrorsOnly(t *testing.T) {
	c, err := Parse([]byte(`
[[registry]]
prefix = "quay.io"
mirrors-only = true
[[registry.mirror]]
location = "pinned.mirror"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "tags.mirror"
pull-from-mirror = "tag-only"
[[registry.mirror]]
location = "any.mirror"
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	hosts := func(byDigest bool) string {
		eps, err := c.EndpointsFor("quay.io/a/b", byDigest)
		if err != nil {
			t.Fatal(err)
		}
		var h []string
		for _, e := range eps {
			h = append(h, e.Host)
		}
		return strings.Join(h, " ")
	}
	if got := hosts(true); got != "pinned.mirror any.mirror" {
		t.Errorf("by digest: %s", got)
	}
	if got := hosts(false); got != "tags.mirror any.mirror" {
		t.Errorf("by tag: %s", got)
	}
	only, _ := Parse([]byte("[[registry]]\nprefix = \"x.io\"\nmirrors-only = true\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"digest-only\"\n"), nil)
	if _, err := only.EndpointsFor("x.io/a", false); err == nil {
		t.Error("a tag pull with only a digest-only mirror and mirrors-only should fail")
	}
	for _, doc := range []string{
		"[[registry]]\nprefix = \"x\"\nmirrors-only = true\n",
		"[[registry]]\nprefix = \"x\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"sometimes\"\n",
	} {
		if _, err := Parse([]byte(doc), nil); err == nil {
			t.Errorf("Parse(%q) succeeded", doc)
		}
	}
}

func FuzzParseAuth(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"quay.io/team":{"identitytoken":"x"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAuth(data)
		if err != nil {
			return
		}
		a.Lookup("docker.io", "library/busybox")
		a.Lookup("quay.io", "team/x")
	})
}
