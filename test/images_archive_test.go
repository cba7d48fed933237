package test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/testenv"
)

// archiveHako is bin/hako (which execs bin/hako-engine for the image
// commands) with a private --data-root.
type archiveHako struct {
	t        *testing.T
	bin      string
	dataRoot string
}

func newArchiveHako(t *testing.T, bin string) *archiveHako {
	return &archiveHako{t: t, bin: bin, dataRoot: filepath.Join(testenv.ShortTempDir(t), "data")}
}

// run runs hako with stdin read from the file at stdin ("" for none).
func (h *archiveHako) run(stdin string, args ...string) result {
	h.t.Helper()
	return h.runWith(stdin, nil, args...)
}

// runWith is run, or with pipe set, stdin is a pipe that it is written to.
func (h *archiveHako) runWith(stdin string, pipe []byte, args ...string) result {
	h.t.Helper()
	full := append([]string{"--data-root", h.dataRoot}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			h.t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdin = f
	}
	if pipe != nil {
		cmd.Stdin = bytes.NewReader(pipe) // exec copies it through a pipe
	}
	return runCmd(h.t, ctx, cmd, full)
}

func (h *archiveHako) ok(stdin string, args ...string) result {
	h.t.Helper()
	res := h.run(stdin, args...)
	if res.code != 0 || res.err != nil {
		h.t.Fatalf("%v", res)
	}
	return res
}

// fails runs a command that must fail with a one-line "hako: ..." error
// containing want, and leave the data root as it was.
func (h *archiveHako) fails(stdin, want string, args ...string) {
	h.t.Helper()
	before := testenv.ReadStoreState(h.t, h.dataRoot)
	res := h.run(stdin, args...)
	if res.code != 1 || res.err != nil {
		h.t.Fatalf("want exit 1: %v", res)
	}
	h.t.Logf("%v: %s", res.args[2:], res.stderr)
	msg := strings.TrimSuffix(res.stderr, "\n")
	if !strings.HasPrefix(msg, "hako: ") || strings.Contains(msg, "\n") || !strings.Contains(msg, want) {
		h.t.Fatalf("%v: stderr %q, want one line with %q", res.args, res.stderr, want)
	}
	testenv.RequireStoreUnchanged(h.t, h.dataRoot, before)
}

func (h *archiveHako) store() *store.Store {
	h.t.Helper()
	s, err := store.Open(store.Options{DataRoot: h.dataRoot})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func archiveSkopeo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func archiveSame(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s (%d bytes) and %s (%d bytes) differ", a, len(x), b, len(y))
	}
}

// TestImagesArchive drives load, save and import through bin/hako with
// archives that skopeo writes from a busybox image umoci builds, and reads
// what hako writes back with skopeo.
func TestImagesArchive(t *testing.T) {
	testenv.RequireRoot(t)
	bin := runtimeBinary(t)
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "hako-engine")); err != nil {
		t.Skipf("the image commands need hako-engine beside %s", bin)
	}
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("needs skopeo")
	}
	ctx := context.Background()
	work := t.TempDir()
	layout := filepath.Join(work, "oci")
	want := testenv.UmociBusyboxImage(t, layout, "busybox")
	ociArchive := filepath.Join(work, "busybox-oci.tar")
	dockerArchive := filepath.Join(work, "busybox-docker.tar")
	archiveSkopeo(t, "copy", "--quiet", "oci:"+layout+":busybox", "oci-archive:"+ociArchive+":example.com/busybox:1")
	archiveSkopeo(t, "copy", "--quiet", "oci:"+layout+":busybox", "docker-archive:"+dockerArchive+":example.com/busybox-docker:2")
	var wantManifest ocispec.Manifest
	mb, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", want.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mb, &wantManifest); err != nil {
		t.Fatal(err)
	}

	t.Run("load skopeo archives", func(t *testing.T) {
		h := newArchiveHako(t, bin)
		if res := h.ok("", "load", "-i", ociArchive); res.stdout != "Loaded image: example.com/busybox:1\n" {
			t.Fatalf("load of the OCI archive printed %q", res.stdout)
		}
		if res := h.ok(dockerArchive, "load"); res.stdout != "Loaded image: example.com/busybox-docker:2\n" {
			t.Fatalf("load of the docker archive from stdin printed %q", res.stdout)
		}
		s := h.store()
		rec, err := s.Get(ctx, "example.com/busybox:1")
		if err != nil || rec.Target.Digest != want.Digest {
			t.Fatalf("OCI archive loaded as %+v, %v; want manifest %s", rec, err, want.Digest)
		}
		for _, name := range []string{"example.com/busybox:1", "example.com/busybox-docker:2"} {
			img, err := s.Image(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := img.Manifest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// skopeo keeps the config as it is (and writes the docker
			// archive's layers uncompressed, so their digests differ).
			if m.Config.Digest != wantManifest.Config.Digest || len(m.Layers) != 1 {
				t.Fatalf("%s: config %s, %d layers; want config %s", name, m.Config.Digest, len(m.Layers), wantManifest.Config.Digest)
			}
			if rec, _ := s.Get(ctx, name); rec.Name != name {
				t.Fatal(rec)
			}
		}
		// gzip-compressed, from a file: the same content, nothing new.
		gz := filepath.Join(t.TempDir(), "busybox.tar.gz")
		archiveGzip(t, ociArchive, gz)
		before := testenv.ReadStoreState(t, h.dataRoot)
		if res := h.ok("", "load", "-i", gz); res.stdout != "Loaded image: example.com/busybox:1\n" {
			t.Fatalf("load of the gzip archive printed %q", res.stdout)
		}
		testenv.RequireStoreUnchanged(t, h.dataRoot, before)
		// Through a pipe (copied under the data root, then indexed).
		gzBytes, _ := os.ReadFile(gz)
		h2 := newArchiveHako(t, bin)
		if res := h2.runWith("", gzBytes, "load"); res.code != 0 || res.stdout != "Loaded image: example.com/busybox:1\n" {
			t.Fatalf("load from a pipe: %v", res)
		}
		if st := testenv.ReadStoreState(t, h2.dataRoot); len(st.Scratch) != 0 || len(st.Blobs) != 3 {
			t.Fatalf("after a load from a pipe: %+v", st)
		}
	})

	t.Run("save load save is byte-identical", func(t *testing.T) {
		h1, h2 := newArchiveHako(t, bin), newArchiveHako(t, bin)
		h1.ok("", "load", "-i", ociArchive)
		h1.ok("", "load", "-i", dockerArchive)
		out := t.TempDir()
		names := []string{"example.com/busybox:1", "example.com/busybox-docker:2"}
		for _, format := range []string{"oci-archive", "docker-archive"} {
			first, second := filepath.Join(out, format+"-1.tar"), filepath.Join(out, format+"-2.tar")
			h1.ok("", append([]string{"save", "--format", format, "-o", first}, names...)...)
			res := h2.ok("", "load", "-i", first)
			if res.stdout != "Loaded image: example.com/busybox:1\nLoaded image: example.com/busybox-docker:2\n" {
				t.Fatalf("%s: load printed %q", format, res.stdout)
			}
			h2.ok("", append([]string{"save", "--format", format, "-o", second}, names...)...)
			archiveSame(t, first, second)
		}
		// To stdout: the same bytes as -o.
		stdout := h1.ok("", append([]string{"save"}, names...)...).stdout
		if b, _ := os.ReadFile(filepath.Join(out, "oci-archive-1.tar")); string(b) != stdout {
			t.Fatalf("save to stdout (%d bytes) differs from save -o (%d bytes)", len(stdout), len(b))
		}

		// skopeo reads both formats: each image by its name.
		var insp struct {
			Digest string
			Layers []string
		}
		if err := json.Unmarshal([]byte(archiveSkopeo(t, "inspect", "oci-archive:"+filepath.Join(out, "oci-archive-1.tar")+":1")), &insp); err != nil {
			t.Fatal(err)
		}
		if insp.Digest != want.Digest.String() || len(insp.Layers) != 1 {
			t.Fatalf("skopeo inspect oci-archive: %+v, want digest %s", insp, want.Digest)
		}
		for _, name := range []string{"example.com/busybox:1", "example.com/busybox-docker:2"} {
			if err := json.Unmarshal([]byte(archiveSkopeo(t, "inspect", "docker-archive:"+filepath.Join(out, "docker-archive-1.tar")+":"+name)), &insp); err != nil {
				t.Fatal(err)
			}
			if len(insp.Layers) != 1 {
				t.Fatalf("skopeo inspect docker-archive %s: %+v", name, insp)
			}
		}
		// And copies what hako saved back into a layout: same config.
		copied := filepath.Join(t.TempDir(), "copied")
		archiveSkopeo(t, "copy", "--quiet", "docker-archive:"+filepath.Join(out, "docker-archive-1.tar")+":example.com/busybox:1", "oci:"+copied+":x")
		cfg := archiveSkopeo(t, "inspect", "--config", "oci:"+copied+":x")
		if !strings.Contains(cfg, `"/bin/sh"`) || !strings.Contains(cfg, "PATH=/bin:/usr/bin") {
			t.Fatalf("the config skopeo reads back: %s", cfg)
		}
	})

	t.Run("import", func(t *testing.T) {
		h := newArchiveHako(t, bin)
		rootfs := filepath.Join(t.TempDir(), "rootfs")
		if err := testenv.BusyboxRootfs(rootfs); err != nil {
			t.Fatal(err)
		}
		tarball := filepath.Join(t.TempDir(), "rootfs.tar.gz")
		if out, err := exec.Command("tar", "--numeric-owner", "-C", rootfs, "-czf", tarball, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		res := h.ok("", "import", "--change", `CMD ["/bin/sh", "-c", "echo hi"]`, "--change", "ENV PATH=/bin", "--change", "WORKDIR /root",
			"--message", "busybox rootfs", tarball, "example.com/imported:v1")
		id := strings.TrimSpace(res.stdout)
		if digest.Digest(id).Validate() != nil {
			t.Fatalf("import printed %q, not an image ID", res.stdout)
		}
		s := h.store()
		img, err := s.Image(ctx, "example.com/imported:v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest(ctx)
		cfg, err := img.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.Digest.String() != id || strings.Join(cfg.Config.Cmd, " ") != "/bin/sh -c echo hi" || strings.Join(cfg.Config.Env, " ") != "PATH=/bin" ||
			cfg.Config.WorkingDir != "/root" || cfg.History[0].Comment != "busybox rootfs" || cfg.OS != "linux" {
			t.Fatalf("imported image: config %s (printed %s) %+v", m.Config.Digest, id, cfg)
		}
		// The layer holds the busybox binary as it was.
		archiveLayerHas(t, ctx, img, "bin/busybox", filepath.Join(rootfs, "bin", "busybox"))

		// `hako images --format json` lists it with that ID, when that
		// command is there (it is built by another change).
		if res := h.run("", "images", "--format", "json"); res.code == 0 {
			var rows []map[string]any
			if err := json.Unmarshal([]byte(res.stdout), &rows); err != nil {
				t.Fatalf("images --format json: %v\n%s", err, res.stdout)
			}
			found := false
			for _, r := range rows {
				found = found || r["Name"] == "example.com/imported:v1" && r["Id"] == id
			}
			if !found {
				t.Fatalf("images --format json does not list example.com/imported:v1 with ID %s:\n%s", id, res.stdout)
			}
		}

		// Unnamed, from stdin: a dangling image, saved by its ID and read
		// by skopeo.
		res = h.ok(tarball, "import", "-")
		id2 := strings.TrimSpace(res.stdout)
		if digest.Digest(id2).Validate() != nil {
			t.Fatalf("import - printed %q", res.stdout)
		}
		saved := filepath.Join(t.TempDir(), "unnamed.tar")
		h.ok("", "save", "-o", saved, id2)
		cfgJSON := archiveSkopeo(t, "inspect", "--config", "oci-archive:"+saved)
		if !strings.Contains(cfgJSON, `"hako import"`) {
			t.Fatalf("skopeo reads the saved import's config as %s", cfgJSON)
		}
		h2 := newArchiveHako(t, bin)
		if res := h2.ok("", "load", "-i", saved); res.stdout != "Loaded image ID: "+id2+"\n" {
			t.Fatalf("load of an unnamed image printed %q, want its ID %s", res.stdout, id2)
		}
	})

	t.Run("failures leave nothing", func(t *testing.T) {
		h := newArchiveHako(t, bin)
		// What a failure must keep: the docker archive's image shares the
		// config with the OCI archive's, not the (compressed) layer, which
		// the tampered archive below must then really write and verify.
		h.ok("", "load", "-i", dockerArchive)
		dir := t.TempDir()
		escapeTarget := filepath.Join(dir, "escaped")

		// Blob entries named to climb out, and an index whose manifest
		// digest is a path: names are keys, the digest is refused.
		pathEscape := archiveRewrite(t, ociArchive, filepath.Join(dir, "escape.tar"), func(name string, data []byte) (string, []byte) {
			if name == "index.json" {
				return name, bytes.Replace(data, []byte(want.Digest.String()), []byte("sha256:../../../../../../"+strings.TrimPrefix(escapeTarget, "/")), 1)
			}
			if strings.HasPrefix(name, "blobs/") {
				return "../../../../../../" + strings.TrimPrefix(escapeTarget, "/"), data
			}
			return name, data
		})
		h.fails(pathEscape, "invalid", "load")
		if _, err := os.Lstat(escapeTarget); !os.IsNotExist(err) {
			t.Fatalf("a load wrote outside the data root: %v", err)
		}
		// One bit flipped in the layer.
		mismatch := archiveRewrite(t, ociArchive, filepath.Join(dir, "mismatch.tar"), func(name string, data []byte) (string, []byte) {
			if name == "blobs/sha256/"+wantManifest.Layers[0].Digest.Encoded() {
				data = append([]byte(nil), data...)
				data[len(data)/2] ^= 1
			}
			return name, data
		})
		h.fails("", "digest mismatch", "load", "-i", mismatch)
		// Into an empty data root, where the config (stored before the
		// layer) is new: the load takes it back.
		newArchiveHako(t, bin).fails("", "digest mismatch", "load", "-i", mismatch)
		// A docker archive whose layer lost its last bytes.
		truncated := filepath.Join(dir, "truncated.tar")
		b, err := os.ReadFile(dockerArchive)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(truncated, b[:len(b)*2/3], 0o600); err != nil {
			t.Fatal(err)
		}
		h.fails("", "unexpected EOF", "load", "-i", truncated)
		h.fails(truncated, "unexpected EOF", "load")
		h.fails("", "no such file or directory", "load", "-i", filepath.Join(dir, "missing.tar"))
		h.fails("", "no such file or directory", "import", filepath.Join(dir, "missing.tar"), "example.com/x:1")
		h.fails(truncated, "not a tar archive", "import", "-", "example.com/x:1")
		h.fails("", "invalid change", "import", "--change", "RUN true", archiveTarball(t, dir), "example.com/x:1")
		h.fails("", "save: no such image: nope", "save", "-o", filepath.Join(dir, "nope.tar"), "example.com/busybox-docker:2", "nope")
		if _, err := os.Stat(filepath.Join(dir, "nope.tar")); !os.IsNotExist(err) {
			t.Fatalf("a failed save left its file: %v", err)
		}
	})
}

// TestImagesArchiveInterrupted: SIGINT during a load of a large archive
// either comes too late (the load succeeded) or leaves the data root as it
// was: no name, no blob, no partial ingest. Which one happens depends on
// the machine's speed; both are checked, neither is waited for.
func TestImagesArchiveInterrupted(t *testing.T) {
	testenv.RequireRoot(t)
	bin := runtimeBinary(t)
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "hako-engine")); err != nil {
		t.Skipf("the image commands need hako-engine beside %s", bin)
	}
	big := archiveBig(t, 3, 48<<20)
	interrupted := 0
	for i := 0; i < 3; i++ {
		h := newArchiveHako(t, bin)
		before := testenv.ReadStoreState(t, h.dataRoot)
		full := []string{"--data-root", h.dataRoot, "load", "-i", big}
		cmd := exec.Command(h.bin, full...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Interrupt once the load is writing its first (or, later
		// rounds, a later) blob; or not at all if it ends first.
		var err error
	wait:
		for {
			select {
			case err = <-done:
				break wait
			default:
			}
			st := testenv.ReadStoreState(t, h.dataRoot)
			if len(st.Ingests) > 0 && len(st.Blobs) >= i {
				cmd.Process.Signal(os.Interrupt)
				err = <-done
				break
			}
			time.Sleep(time.Millisecond)
		}
		if err == nil {
			t.Logf("round %d: the load ended before the signal", i)
			continue
		}
		interrupted++
		if msg := stderr.String(); msg != "hako: load: interrupted; nothing was loaded\n" {
			t.Fatalf("interrupted load: %v, stderr %q", err, msg)
		}
		testenv.RequireStoreUnchanged(t, h.dataRoot, before)
	}
	t.Logf("%d of 3 loads interrupted", interrupted)
}

// archiveBig writes an OCI archive of one image with n uncompressed layers
// of size random bytes each (a layer is not unpacked by load, so it need
// not be a tar).
func archiveBig(t *testing.T, n, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "big.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(mt string, data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		add("blobs/sha256/"+d.Encoded(), data)
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(data))}
	}
	rnd := mrand.New(mrand.NewPCG(1, 2))
	var layers []ocispec.Descriptor
	var diffIDs []digest.Digest
	for range n {
		data := make([]byte, size)
		for i := 0; i < len(data); i += 8 {
			binary.LittleEndian.PutUint64(data[i:], rnd.Uint64())
		}
		l := blob(ocispec.MediaTypeImageLayer, data)
		layers = append(layers, l)
		diffIDs = append(diffIDs, l.Digest)
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: blob(ocispec.MediaTypeImageConfig, cfg), Layers: layers})
	md := blob(ocispec.MediaTypeImageManifest, m)
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "example.com/big:1"}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}})
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", idx)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// archiveGzip writes src gzip-compressed to dst.
func archiveGzip(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// archiveRewrite copies the tar src to dst, passing each regular file
// through edit (which may rename it or change its bytes).
func archiveRewrite(t *testing.T, src, dst string, edit func(name string, data []byte) (string, []byte)) string {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var buf bytes.Buffer
	tr, tw := tar.NewReader(in), tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			h.Name, data = edit(h.Name, data)
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}

// archiveLayerHas checks that the image's only layer holds name with the
// bytes of the file want.
func archiveLayerHas(t *testing.T, ctx context.Context, img image.Image, name, want string) {
	t.Helper()
	layers, err := img.Layers(ctx)
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("layer has no %s: %v", name, err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			got, err := io.ReadAll(tr)
			if err != nil || !bytes.Equal(got, wantBytes) {
				t.Fatalf("%s in the layer differs from %s (%v)", name, want, err)
			}
			return
		}
	}
}

// tarballOf writes a small root file system tarball into dir.
func archiveTarball(t *testing.T, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi\n"))
	tw.Close()
	p := filepath.Join(dir, "small-rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
