package test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/testenv"
)

// The image commands through the built binaries: bin/hako, which execs
// bin/hako-engine for them, against Debian's docker-registry started per
// test on 127.0.0.1. Each test has its own --data-root and --config.

// engine runs hako's image commands with a private data root.
type engine struct {
	t        *testing.T
	bin      string
	dataRoot string
	config   string
	env      []string
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	testenv.RequireRoot(t)
	bin := runtimeBinary(t)
	if filepath.Base(bin) != "hako" {
		t.Skipf("image commands are hako's; %s has none", bin)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "hako-engine")); err != nil {
		t.Fatalf("hako-engine beside %s: %v (run `make build`)", bin, err)
	}
	dir := testenv.ShortTempDir(t)
	e := &engine{t: t, bin: bin, dataRoot: filepath.Join(dir, "data"), config: filepath.Join(dir, "hako.toml"),
		env: append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(dir, "no-auth.json"))}
	t.Cleanup(func() { e.checkNoMounts() })
	return e
}

func (e *engine) run(args ...string) result {
	e.t.Helper()
	full := append([]string{"--data-root", e.dataRoot, "--config", e.config}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, full...)
	cmd.Env = e.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return runCmd(e.t, ctx, cmd, full)
}

func (e *engine) ok(args ...string) result {
	e.t.Helper()
	res := e.run(args...)
	if res.code != 0 || res.err != nil {
		e.t.Fatalf("%v", res)
	}
	return res
}

// fails runs a command that must fail with one line on stderr containing
// want.
func (e *engine) fails(want string, args ...string) result {
	e.t.Helper()
	res := e.run(args...)
	if res.code == 0 || res.err != nil {
		e.t.Fatalf("want a failure: %v", res)
	}
	msg := strings.TrimSpace(res.stderr)
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, want) {
		e.t.Fatalf("want one line containing %q: %v", want, res)
	}
	return res
}

// empty checks that the data root holds no image, blob, snapshot or mount.
func (e *engine) empty() {
	e.t.Helper()
	for _, dir := range []string{"metadata/images", "content/blobs/sha256", "mounts"} {
		ents, _ := os.ReadDir(filepath.Join(e.dataRoot, dir))
		for _, ent := range ents {
			e.t.Errorf("left in %s: %s", dir, ent.Name())
		}
	}
	for _, sn := range e.snapshots() {
		e.t.Errorf("snapshot left: %s", sn)
	}
}

// snapshots lists the snapshot keys of the data root's snapshotter.
func (e *engine) snapshots() []string {
	e.t.Helper()
	drv, err := os.ReadFile(filepath.Join(e.dataRoot, "snapshots", "driver"))
	if err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(e.dataRoot, "snapshots", strings.TrimSpace(string(drv)), "metadata.json"))
	if err != nil {
		return nil
	}
	var table struct {
		Snapshots map[string]json.RawMessage `json:"snapshots"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		e.t.Fatalf("snapshot metadata: %v", err)
	}
	var keys []string
	for k := range table.Snapshots {
		keys = append(keys, k)
	}
	return keys
}

func (e *engine) checkNoMounts() {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, e.dataRoot) {
			e.t.Errorf("mount left: %s", line)
			f := strings.Fields(line)
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}

// busyboxImage is a runnable two-layer image: busybox, then /etc/motd.
func busyboxImage(t *testing.T, platform ocispec.Platform) *testenv.TestImage {
	t.Helper()
	base := t.TempDir()
	root, top := filepath.Join(base, "root"), filepath.Join(base, "top")
	if err := testenv.BusyboxRootfs(root); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(top, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "etc", "motd"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.BuildImageFromDirs(t, platform, ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Env: []string{"PATH=/bin"}}, root, top)
}

var hostPlatform = ocispec.Platform{OS: "linux", Architecture: "amd64"}

func TestImagePull(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := busyboxImage(t, hostPlatform)
	reg.PushImage(t, "lib/busybox", "1.0", img)
	name := reg.Host + "/lib/busybox:1.0"

	// Not a terminal: one plain line per layer state change, then the
	// digest and the name.
	res := e.ok("pull", name)
	for _, l := range img.Layers {
		for _, st := range []string{"waiting", "downloaded", "unpacking", "done"} {
			if !strings.Contains(res.stdout, l.Digest.Encoded()[:12]+": "+st) {
				t.Errorf("no %q line for layer %s:\n%s", st, l.Digest, res.stdout)
			}
		}
	}
	if !strings.HasSuffix(res.stdout, "Digest: "+img.Manifest.Digest.String()+"\n"+name+"\n") {
		t.Errorf("pull output does not end with the digest and name:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "\x1b[") {
		t.Errorf("escape sequences without a terminal:\n%q", res.stdout)
	}
	// Unpacked into overlay snapshots: one per layer.
	if drv, _ := os.ReadFile(filepath.Join(e.dataRoot, "snapshots", "driver")); string(drv) != "overlay\n" {
		t.Errorf("snapshotter %q, want overlay", drv)
	}
	if sn := e.snapshots(); len(sn) != 2 {
		t.Errorf("snapshots after pull: %v", sn)
	}

	// Again, by digest, quietly: the image ID only; the layers exist.
	byDigest := reg.Host + "/lib/busybox@" + img.Manifest.Digest.String()
	res = e.ok("pull", "-q", byDigest)
	if res.stdout != img.Config.Digest.Encoded()+"\n" {
		t.Errorf("pull -q printed %q, want the image ID %s", res.stdout, img.Config.Digest.Encoded())
	}
	res = e.ok("pull", byDigest)
	if !strings.Contains(res.stdout, img.Layers[0].Digest.Encoded()[:12]+": exists") {
		t.Errorf("second pull does not say exists:\n%s", res.stdout)
	}

	// images: table, -q, --digests, json, filter.
	res = e.ok("images")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REPOSITORY") || !strings.Contains(lines[0], "IMAGE ID") {
		t.Fatalf("images:\n%s", res.stdout)
	}
	id := img.Config.Digest.Encoded()[:12]
	if f := strings.Fields(lines[1]); len(f) < 4 || f[0] != reg.Host+"/lib/busybox" || f[1] != "1.0" || f[2] != id {
		t.Errorf("images row for the tag: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 4 || f[1] != "<none>" || f[2] != id {
		t.Errorf("images row for the digest name: %q", lines[2])
	}
	if res := e.ok("images", "-q"); res.stdout != id+"\n" {
		t.Errorf("images -q = %q", res.stdout)
	}
	if res := e.ok("images", "--digests", name); !strings.Contains(res.stdout, img.Manifest.Digest.String()) || strings.Count(res.stdout, "\n") != 2 {
		t.Errorf("images --digests %s:\n%s", name, res.stdout)
	}
	if res := e.ok("images", reg.Host+"/other"); strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("images filtered by an absent name:\n%s", res.stdout)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.ok("images", "--format", "json").stdout), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("images --format json: %v %v", rows, err)
	}
	var size int64
	for _, l := range img.Layers {
		size += l.Size
	}
	if r := rows[0]; r["Id"] != img.Config.Digest.String() || r["Name"] != name || r["Tag"] != "1.0" || r["Digest"] != img.Manifest.Digest.String() || r["Size"] != float64(size) || r["Platform"] != "linux/amd64" {
		t.Errorf("images json row: %v", r)
	}

	// image inspect: by name and by ID prefix.
	var docs []struct {
		Id, Digest, Architecture, Os string
		RepoTags, RepoDigests        []string
		Size                         int64
		Manifest                     ocispec.Manifest
		Config                       ocispec.Image
		UnpackedSize                 int64
		Snapshotter                  string
		Layers                       []struct {
			Digest, DiffID, ChainID string
			Unpacked                bool
		}
	}
	res = e.ok("image", "inspect", name, id)
	if err := json.Unmarshal([]byte(res.stdout), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("image inspect: %v\n%s", err, res.stdout)
	}
	d := docs[0]
	if d.Id != img.Config.Digest.String() || d.Digest != img.Manifest.Digest.String() || d.Architecture != "amd64" || d.Size != size ||
		len(d.Layers) != 2 || d.Layers[1].DiffID != d.Config.RootFS.DiffIDs[1].String() || d.Layers[0].ChainID != d.Layers[0].DiffID ||
		len(d.Manifest.Layers) != 2 || len(d.RepoTags) != 1 || d.RepoTags[0] != name || len(d.RepoDigests) != 1 {
		t.Errorf("image inspect: %+v", d)
	}
	if d.Snapshotter != "overlay" || !d.Layers[0].Unpacked || !d.Layers[1].Unpacked || d.UnpackedSize <= size {
		t.Errorf("image inspect: unpacked %+v, %d bytes, snapshotter %q", d.Layers, d.UnpackedSize, d.Snapshotter)
	}
	if docs[1].Id != d.Id {
		t.Errorf("inspect by ID prefix found %s", docs[1].Id)
	}
}

// TestImageMultiArch pulls one platform of an index, and refuses a platform
// the index lacks.
func TestImageMultiArch(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	amd := testenv.BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, testenv.TestLayer{"arch": "amd64"})
	arm := testenv.BuildImage(t, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, testenv.TestLayer{"arch": "arm64"})
	idx := reg.PushIndex(t, "lib/multi", "1", amd, arm)
	name := reg.Host + "/lib/multi:1"

	res := e.ok("pull", "-q", "--platform", "linux/arm64", name)
	if res.stdout != arm.Config.Digest.Encoded()+"\n" {
		t.Errorf("pull --platform linux/arm64 = %q, want %s", res.stdout, arm.Config.Digest.Encoded())
	}
	var docs []struct{ Architecture, Digest, ManifestDigest string }
	json.Unmarshal([]byte(e.ok("image", "inspect", name).stdout), &docs)
	if len(docs) != 1 || docs[0].Architecture != "arm64" || docs[0].Digest != idx.Digest.String() || docs[0].ManifestDigest != arm.Manifest.Digest.String() {
		t.Errorf("inspect of the arm64 pull: %+v", docs)
	}

	e2 := newEngine(t)
	e2.fails("wrong platform", "pull", "--platform", "linux/s390x", name)
	e2.empty()
	e2.fails("--platform", "pull", "--platform", "linux/", name)
}

// TestImageAuth: htpasswd on the registry; without credentials the pull
// fails saying so, with them in $REGISTRY_AUTH_FILE it works.
func TestImageAuth(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Username: "hako", Password: "s3cret"})
	reg.PushImage(t, "lib/private", "1", testenv.BuildImage(t, hostPlatform, testenv.TestLayer{"a": "a"}))
	name := reg.Host + "/lib/private:1"

	e.fails("authentication", "pull", name)
	e.empty()

	authFile := filepath.Join(t.TempDir(), "auth.json")
	writeAuth := func(pass string) {
		cred := base64.StdEncoding.EncodeToString([]byte("hako:" + pass))
		b := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host, cred)
		if err := os.WriteFile(authFile, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.env = append(e.env, "REGISTRY_AUTH_FILE="+authFile)
	writeAuth("wrong")
	e.fails("authentication", "pull", name)
	e.empty()
	writeAuth("s3cret")
	e.ok("pull", name)
	e.ok("image", "inspect", name)
}

// TestImageMirror: a name whose registry cannot be reached is pulled from a
// mirror configured in hako.toml, and keeps its name; a blocked registry is
// refused.
func TestImageMirror(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := testenv.BuildImage(t, hostPlatform, testenv.TestLayer{"m": "mirrored"})
	reg.PushImage(t, "team/app", "2", img)
	cfg := fmt.Sprintf(`
[[registry]]
prefix = "registry.invalid"
[[registry.mirror]]
location = %q
insecure = true

[[registry]]
prefix = "blocked.example.com"
blocked = true
`, reg.Host)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	res := e.ok("pull", "registry.invalid/team/app:2")
	if !strings.HasSuffix(res.stdout, "\nregistry.invalid/team/app:2\n") {
		t.Errorf("mirrored pull output:\n%s", res.stdout)
	}
	if res := e.ok("images", "-q", "registry.invalid/team/app"); res.stdout != img.Config.Digest.Encoded()[:12]+"\n" {
		t.Errorf("images of the mirrored name: %q", res.stdout)
	}
	e2 := newEngine(t)
	e2.config = e.config
	e2.fails("blocked", "pull", "blocked.example.com/team/app:2")
	e2.empty()
}

// TestImageMountRunRemove: tag and rmi of a second name; an image mount is
// a root file system `hako run` runs; rmi refuses the mounted image until
// --force; prune after the unmount frees its blobs and snapshots.
func TestImageMountRunRemove(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	r := newRuntime(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := busyboxImage(t, hostPlatform)
	reg.PushImage(t, "lib/busybox", "1.0", img)
	name := reg.Host + "/lib/busybox:1.0"
	e.ok("pull", "-q", name)

	e.ok("tag", name, "busybox:mine")
	if res := e.ok("images", "-q", "busybox:mine"); res.stdout != img.Config.Digest.Encoded()[:12]+"\n" {
		t.Errorf("tagged image: %q", res.stdout)
	}
	if res := e.ok("rmi", "busybox:mine"); res.stdout != "Untagged: docker.io/library/busybox:mine\n" {
		t.Errorf("rmi of one of two names: %q", res.stdout)
	}

	path := strings.TrimSpace(e.ok("image", "mount", name).stdout)
	key := filepath.Base(path)
	if filepath.Dir(path) != filepath.Join(e.dataRoot, "mounts") || !strings.HasPrefix(key, "mount-") {
		t.Fatalf("image mount printed %q", path)
	}
	mounted := true
	defer func() {
		if mounted {
			e.run("image", "umount", key)
		}
	}()
	if res := e.ok("image", "mount"); !strings.Contains(res.stdout, key) || !strings.Contains(res.stdout, name) {
		t.Errorf("image mount (list):\n%s", res.stdout)
	}

	// A bundle whose root is the mount.
	bundle := t.TempDir()
	spec := testenv.DefaultSpec()
	spec.Root = &specs.Root{Path: path}
	spec.Process.Args = []string{"sh", "-c", "cat /etc/motd; echo written > /written"}
	spec.Process.Terminal = false
	if err := testenv.WriteSpec(bundle, spec); err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	r.cleanupContainer(id)
	res := r.run("run", "--bundle", bundle, id)
	if res.code != 0 || res.stdout != "from the image\n" {
		t.Fatalf("run on the image mount: %v", res)
	}
	if b, err := os.ReadFile(filepath.Join(path, "written")); err != nil || string(b) != "written\n" {
		t.Errorf("the container's write is not in the mount: %q, %v", b, err)
	}

	e.fails("in use", "rmi", name)
	e.ok("image", "inspect", name)
	e.ok("rmi", "--force", name)
	e.fails("no such image", "image", "inspect", name)
	if _, err := os.Stat(filepath.Join(path, "bin", "busybox")); err != nil {
		t.Errorf("forced rmi broke the mount: %v", err)
	}
	if sn := e.snapshots(); len(sn) != 3 {
		t.Errorf("snapshots after forced rmi: %v, want the 2 layers and the mount", sn)
	}

	e.fails("invalid mount key", "image", "umount", "../../etc")
	e.fails("invalid mount key", "image", "umount", "/etc")
	e.ok("image", "umount", path)
	mounted = false
	res = e.ok("image", "prune")
	if strings.Count(res.stdout, "Deleted blob: ") != 4 || strings.Count(res.stdout, "Deleted snapshot: ") != 2 || !strings.Contains(res.stdout, "Total reclaimed space: ") {
		t.Errorf("prune:\n%s", res.stdout)
	}
	e.empty()
}

// TestImageRmiAndPruneAll: rmi frees the layers with the name; prune --all
// removes images nothing uses.
func TestImageRmiAndPruneAll(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	reg.PushImage(t, "lib/a", "1", testenv.BuildImage(t, hostPlatform, testenv.TestLayer{"a": "1"}, testenv.TestLayer{"b": "2"}))
	reg.PushImage(t, "lib/b", "1", testenv.BuildImage(t, hostPlatform, testenv.TestLayer{"a": "1"}))
	e.ok("pull", reg.Host+"/lib/a:1")
	e.ok("pull", reg.Host+"/lib/b:1")
	// b shares a's bottom layer: rmi of a frees only a's top.
	res := e.ok("rmi", reg.Host+"/lib/a:1")
	if strings.Count(res.stdout, "Deleted: ") != 1 {
		t.Errorf("rmi of an image sharing its bottom layer:\n%s", res.stdout)
	}
	e.fails("no such image", "rmi", reg.Host+"/lib/a:1")

	// An image imported without a name is dangling: listed as <none>, and
	// removed by a plain prune, which keeps named images.
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	if out, err := exec.Command("tar", "-C", t.TempDir(), "-cf", rootfs, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	e.ok("import", rootfs)
	if res := e.ok("images"); !strings.Contains(res.stdout, "\n<none> ") || strings.Count(res.stdout, "<none>") != 2 {
		t.Errorf("images with a dangling image:\n%s", res.stdout)
	}
	res = e.ok("image", "prune")
	if !strings.Contains(res.stdout, "Deleted image: localhost/dangling@sha256:") || strings.Contains(res.stdout, "lib/b") {
		t.Errorf("prune:\n%s", res.stdout)
	}
	e.ok("image", "inspect", reg.Host+"/lib/b:1")
	res = e.ok("image", "prune", "--all")
	if !strings.Contains(res.stdout, "Deleted image: "+reg.Host+"/lib/b:1") {
		t.Errorf("prune --all:\n%s", res.stdout)
	}
	e.empty()
}

// TestImageErrors: each failure is one clear line and leaves the data root
// empty.
func TestImageErrors(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	for _, c := range []struct {
		want string
		args []string
	}{
		{"not found", []string{"pull", reg.Host + "/lib/nothing:1"}},
		{"unreachable", []string{"pull", "127.0.0.1:1/lib/app:1"}},
		{"invalid image reference", []string{"pull", "lib//app"}},
		{"no such image", []string{"image", "inspect", "nothing:here"}},
		{"no such image", []string{"rmi", "nothing:here"}},
		{"no such image", []string{"tag", "nothing:here", "other:tag"}},
		{"no such image", []string{"image", "mount", "nothing:here"}},
		{"no image mount", []string{"image", "umount", "mount-0123456789ab"}},
		{"unknown format", []string{"images", "--format", "yaml"}},
	} {
		e.fails(c.want, c.args...)
		e.empty()
	}

	// A config whose diffID is not the layer's: the unpack fails the pull,
	// no name is recorded, and what was fetched goes at the next prune.
	good := testenv.BuildImage(t, hostPlatform, testenv.TestLayer{"a": "a"}, testenv.TestLayer{"b": "b"})
	bad := testenv.Rebuild(t, good, func(m *ocispec.Manifest, c *ocispec.Image) {
		c.RootFS.DiffIDs[1] = c.RootFS.DiffIDs[0]
	})
	reg.PushImage(t, "lib/bad", "1", bad)
	e.fails("diffID mismatch", "pull", reg.Host+"/lib/bad:1")
	if res := e.ok("images", "-q"); res.stdout != "" {
		t.Errorf("images after a failed pull: %q", res.stdout)
	}
	e.ok("image", "prune")
	e.empty()
}

// gatedRegistry is a proxy in front of a registry that holds back the
// blob request for one digest until released.
type gatedRegistry struct {
	Host    string
	release chan struct{}
}

func newGatedRegistry(t *testing.T, backend string, hold digest.Digest) *gatedRegistry {
	t.Helper()
	g := &gatedRegistry{release: make(chan struct{})}
	target, _ := url.Parse("http://" + backend)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+hold.String()) {
			select {
			case <-g.release:
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.Host = strings.TrimPrefix(srv.URL, "http://")
	return g
}

// TestImagePullKilled: a pull killed (SIGKILL) after its first layer is
// unpacked, while the second is still downloading, leaves a data root the
// next pull completes (the first layer is not fetched or unpacked again)
// and prune cleans.
func TestImagePullKilled(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	img := busyboxImage(t, hostPlatform)
	reg.PushImage(t, "lib/busybox", "1.0", img)
	g := newGatedRegistry(t, reg.Host, img.Layers[1].Digest)
	name := g.Host + "/lib/busybox:1.0"

	cmd := exec.Command(e.bin, "--data-root", e.dataRoot, "--config", e.config, "pull", name)
	cmd.Env = e.env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Bounded: if layer 0 never gets done, the kill ends the loop below.
	watchdog := time.AfterFunc(cmdTimeout, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	done := img.Layers[0].Digest.Encoded()[:12] + ": done"
	sc := bufio.NewScanner(out)
	var seen []string
	for sc.Scan() && !strings.HasPrefix(sc.Text(), done) {
		seen = append(seen, sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !strings.HasPrefix(sc.Text(), done) {
		t.Fatalf("pull ended before layer 0 was done: %q", seen)
	}
	if res := e.ok("images", "-q"); res.stdout != "" {
		t.Errorf("killed pull recorded an image: %q", res.stdout)
	}

	close(g.release)
	res := e.ok("pull", name)
	if !strings.Contains(res.stdout, img.Layers[0].Digest.Encoded()[:12]+": exists") {
		t.Errorf("the pull after the kill did layer 0 again:\n%s", res.stdout)
	}
	e.ok("rmi", name)
	e.ok("image", "prune")
	e.empty()
}
