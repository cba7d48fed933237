package imagecmd

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/testenv"
)

// archiveCLI runs the archive commands in-process against dataRoot, with
// the global flags hako-engine has, and returns stdout.
func archiveCLI(t *testing.T, dataRoot string, stdin io.Reader, stdout io.Writer, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	if stdout == nil {
		stdout = &buf
	}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root := &cli.Command{
		Name: "hako",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data-root"},
			&cli.StringFlag{Name: "config", Value: filepath.Join(dataRoot, "no-such.toml")},
		},
		Commands:       archiveCommands(),
		Reader:         stdin,
		Writer:         stdout,
		ErrWriter:      io.Discard,
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
	err := root.Run(context.Background(), append([]string{"hako", "--data-root", dataRoot}, args...))
	return buf.String(), err
}

var archiveAmd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// archiveLayout is an OCI archive of imgs, each named by the name beside
// it ("" for none).
func archiveLayout(t *testing.T, imgs []*testenv.TestImage, names []string) []byte {
	t.Helper()
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	blobs := map[digest.Digest][]byte{}
	for i, img := range imgs {
		m := img.Manifest
		m.Platform = nil
		if names[i] != "" {
			m.Annotations = map[string]string{archive.AnnotationImageName: names[i]}
		}
		idx.Manifests = append(idx.Manifests, m)
		for d, b := range img.Blobs {
			blobs[d] = b
		}
	}
	ib, _ := json.Marshal(idx)
	entries := []archiveEntry{{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", ib}}
	for d, b := range blobs {
		entries = append(entries, archiveEntry{"blobs/sha256/" + d.Encoded(), b})
	}
	return archiveTar(t, entries)
}

type archiveEntry struct {
	name string
	data []byte
}

func archiveTar(t *testing.T, entries []archiveEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func archiveWrite(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "archive.tar")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadOutput: file, stdin and gzip input; docker's output lines, and
// IDs only with --quiet.
func TestLoadOutput(t *testing.T) {
	a := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"})
	b := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"b": "2"})
	tarball := archiveLayout(t, []*testenv.TestImage{a, b}, []string{"docker.io/library/busybox:1.36", ""})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball)
	zw.Close()
	want := "Loaded image: busybox:1.36\nLoaded image ID: " + b.Config.Digest.String() + "\n"

	for name, args := range map[string][]string{
		"file":       {"load", "-i", archiveWrite(t, tarball)},
		"gzip file":  {"load", "--input", archiveWrite(t, gz.Bytes())},
		"stdin":      {"load"},
		"stdin dash": {"load", "-i", "-"},
	} {
		root := t.TempDir()
		out, err := archiveCLI(t, root, bytes.NewReader(tarball), nil, args...)
		if err != nil || out != want {
			t.Fatalf("%s: %q, %v; want %q", name, out, err, want)
		}
		// The same again: nothing new, the same lines.
		before := testenv.ReadStoreState(t, root)
		out, err = archiveCLI(t, root, bytes.NewReader(tarball), nil, args...)
		if err != nil || out != want {
			t.Fatalf("%s again: %q, %v", name, out, err)
		}
		testenv.RequireStoreUnchanged(t, root, before)
		if got := before.Images; len(got) != 2 || got[0] != "docker.io/library/busybox:1.36" || !store.IsDangling(got[1]) {
			t.Fatalf("%s: names %v", name, got)
		}
	}
	out, err := archiveCLI(t, t.TempDir(), bytes.NewReader(tarball), nil, "load", "-q")
	if want := a.Config.Digest.String() + "\n" + b.Config.Digest.String() + "\n"; err != nil || out != want {
		t.Fatalf("load -q: %q, %v; want %q", out, err, want)
	}
}

// TestSaveByNameAndID: several images in one archive, an unnamed one by
// the ID load printed; the archive loads elsewhere to the same names and
// saves to the same bytes.
func TestSaveByNameAndID(t *testing.T) {
	a := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"})
	b := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"b": "2"})
	root := t.TempDir()
	if _, err := archiveCLI(t, root, bytes.NewReader(archiveLayout(t, []*testenv.TestImage{a, b}, []string{"example.com/a:1", ""})), nil, "load"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	idPrefix := b.Config.Digest.Encoded()[:12]
	if _, err := archiveCLI(t, root, nil, nil, "save", "-o", out, "example.com/a:1", idPrefix); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(out)
	var stdout bytes.Buffer
	if _, err := archiveCLI(t, root, nil, &stdout, "save", "example.com/a:1", "sha256:"+b.Config.Digest.Encoded()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, stdout.Bytes()) {
		t.Fatal("save to -o and to stdout differ")
	}
	root2 := t.TempDir()
	got, err := archiveCLI(t, root2, nil, nil, "load", "-i", out)
	if want := "Loaded image: example.com/a:1\nLoaded image ID: " + b.Config.Digest.String() + "\n"; err != nil || got != want {
		t.Fatalf("load of the saved archive: %q, %v; want %q", got, err, want)
	}
	out2 := filepath.Join(t.TempDir(), "out2.tar")
	if _, err := archiveCLI(t, root2, nil, nil, "save", "-o", out2, "example.com/a:1", idPrefix); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(out2)
	if !bytes.Equal(first, second) {
		t.Fatal("save, load, save: the archives differ")
	}
	if fi, err := os.Stat(out2); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("saved archive mode: %v %v", fi.Mode(), err)
	}

	// Failures leave no file, and an existing file as it was.
	dir := t.TempDir()
	for _, args := range [][]string{
		{"save", "-o", filepath.Join(dir, "x.tar"), "example.com/a:1", "nope"},
		{"save", "-o", filepath.Join(dir, "x.tar"), "--format", "zip", "example.com/a:1"},
		{"save", "-o", filepath.Join(dir, "x.tar")},
		{"save", "-o", out, "nope"},
		{"save", "-o", filepath.Join(dir, "x.tar"), "0000000000000000"},
	} {
		_, err := archiveCLI(t, root, nil, nil, args...)
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want a one-line error", args, err)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("failed saves left %v", ents)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, first) {
		t.Fatal("a failed save changed the existing file")
	}
	if _, err := archiveCLI(t, root, nil, nil, "save", "nope"); err == nil || err.Error() != "save: no such image: nope" {
		t.Fatalf("save of an unknown image: %v", err)
	}
}

// TestArchiveTerminal: no archive is written to, or read from, a terminal.
func TestArchiveTerminal(t *testing.T) {
	pty := archiveOpenPty(t)
	root := t.TempDir()
	img := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"})
	if _, err := archiveCLI(t, root, bytes.NewReader(archiveLayout(t, []*testenv.TestImage{img}, []string{"example.com/a:1"})), nil, "load"); err != nil {
		t.Fatal(err)
	}
	if _, err := archiveCLI(t, root, nil, pty, "save", "example.com/a:1"); err == nil || !strings.Contains(err.Error(), "terminal") {
		t.Fatalf("save to a terminal: %v", err)
	}
	before := testenv.ReadStoreState(t, root)
	for _, args := range [][]string{{"load"}, {"import", "-"}} {
		if _, err := archiveCLI(t, root, pty, nil, args...); err == nil || !strings.Contains(err.Error(), "terminal") && !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("%v from a terminal: %v", args, err)
		}
	}
	testenv.RequireStoreUnchanged(t, root, before)
}

// archiveOpenPty returns the terminal side of a new pseudo-terminal.
func archiveOpenPty(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return pts
}

func archiveRootfs(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5})
	tw.Write([]byte("#!sh\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImportChanges: --change, --message and --platform reach the config;
// the printed ID is the config's digest.
func TestImportChanges(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	file := archiveWrite(t, archiveRootfs(t))
	out, err := archiveCLI(t, root, nil, nil, "import",
		"--change", `CMD ["/bin/sh", "-c", "echo hi"]`, "-c", "ENTRYPOINT /bin/true", "--change", "ENV A=1 B=2",
		"--change", "WORKDIR /srv", "--change", "USER 1000:1000", "--change", "EXPOSE 80 53/udp",
		"--change", `LABEL org.example="x y"`, "--change", "VOLUME /data", "--change", "STOPSIGNAL SIGQUIT",
		"--message", "from a test", "--platform", "linux/arm64",
		file, "example.com/imported:v1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(store.Options{DataRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Get(ctx, "example.com/imported:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.ResolveImage(ctx, image.StoreFetcher{Provider: s.Content}, rec.Target, ocispec.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest(ctx)
	if out != m.Config.Digest.String()+"\n" {
		t.Fatalf("import printed %q, want the config digest %s", out, m.Config.Digest)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.ImageConfig{
		Cmd: []string{"/bin/sh", "-c", "echo hi"}, Entrypoint: []string{"/bin/sh", "-c", "/bin/true"},
		Env: []string{"A=1", "B=2"}, WorkingDir: "/srv", User: "1000:1000",
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}}, Labels: map[string]string{"org.example": "x y"},
		Volumes: map[string]struct{}{"/data": {}}, StopSignal: "SIGQUIT",
	}
	if !reflect.DeepEqual(cfg.Config, want) || cfg.Architecture != "arm64" || len(cfg.History) != 1 || cfg.History[0].Comment != "from a test" {
		t.Fatalf("config %+v", cfg)
	}

	// Unnamed, from stdin: a dangling image with that ID.
	out, err = archiveCLI(t, root, bytes.NewReader(archiveRootfs(t)), nil, "import", "-")
	if err != nil || !strings.HasPrefix(out, "sha256:") {
		t.Fatalf("import -: %q, %v", out, err)
	}
	recs, _ := s.List(ctx)
	if len(recs) != 2 || !store.IsDangling(recs[1].Name) {
		t.Fatalf("records %+v", recs)
	}
	if id, _ := s.ImageID(ctx, recs[1]); id.String()+"\n" != out {
		t.Fatalf("import printed %q, the record's ID is %s", out, id)
	}
}

// TestArchiveFailuresLeaveNothing: every failure is one line and leaves
// the data root as it was.
func TestArchiveFailuresLeaveNothing(t *testing.T) {
	img := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"}, testenv.TestLayer{"b": "2"})
	good := archiveLayout(t, []*testenv.TestImage{img}, []string{"example.com/good:1"})
	layer := img.Layers[1].Digest

	tampered := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"}, testenv.TestLayer{"c": "3"})
	bad := append([]byte(nil), tampered.Blobs[tampered.Layers[1].Digest]...)
	bad[len(bad)/2] ^= 0xff
	tampered.Blobs[tampered.Layers[1].Digest] = bad

	// A manifest whose layer "digest" climbs out of blobs/.
	escaping := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"a": "1"})
	var m ocispec.Manifest
	json.Unmarshal(escaping.Blobs[escaping.Manifest.Digest], &m)
	m.Layers[0].Digest = "sha256:../../../../etc/passwd"
	mb, _ := json.Marshal(m)
	delete(escaping.Blobs, escaping.Manifest.Digest)
	escaping.Manifest.Digest, escaping.Manifest.Size = digest.FromBytes(mb), int64(len(mb))
	escaping.Blobs[escaping.Manifest.Digest] = mb

	// A manifest that lies about a layer's size.
	lying := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"x": "1"})
	json.Unmarshal(lying.Blobs[lying.Manifest.Digest], &m)
	m.Layers[0].Size = 3
	mb, _ = json.Marshal(m)
	delete(lying.Blobs, lying.Manifest.Digest)
	lying.Manifest.Digest, lying.Manifest.Size = digest.FromBytes(mb), int64(len(mb))
	lying.Blobs[lying.Manifest.Digest] = mb

	missing := testenv.BuildImage(t, archiveAmd64, testenv.TestLayer{"y": "1"})
	delete(missing.Blobs, missing.Layers[0].Digest)

	dockerEscape, _ := json.Marshal([]map[string]any{{"Config": "../../etc/passwd", "RepoTags": []string{"x:1"}, "Layers": []string{}}})

	for _, tc := range []struct {
		name  string
		args  []string
		stdin []byte
		want  string
	}{
		{"missing file", []string{"load", "-i", "/nonexistent/x.tar"}, nil, "no such file or directory"},
		{"not a tar", []string{"load"}, []byte(strings.Repeat("hello ", 200)), "archive"},
		{"empty stdin", []string{"load"}, nil, "archive"},
		{"truncated", []string{"load"}, good[:len(good)-1500], ""},
		{"tampered layer", []string{"load"}, archiveLayout(t, []*testenv.TestImage{img, tampered}, []string{"example.com/a:1", "example.com/b:1"}), "digest mismatch"},
		{"escaping digest", []string{"load"}, archiveLayout(t, []*testenv.TestImage{escaping}, []string{"example.com/e:1"}), "sha256:../../../../etc/passwd"},
		{"lying size", []string{"load"}, archiveLayout(t, []*testenv.TestImage{lying}, []string{"example.com/l:1"}), "size mismatch"},
		{"missing blob", []string{"load"}, archiveLayout(t, []*testenv.TestImage{missing}, []string{"example.com/m:1"}), "lacks an entry"},
		{"docker save pointing outside", []string{"load"}, archiveTar(t, []archiveEntry{{"manifest.json", dockerEscape}}), "lacks an entry"},
		{"unknown format", []string{"load"}, archiveTar(t, []archiveEntry{{"hello", []byte("x")}}), "not an OCI archive or docker save tarball"},
		{"argument", []string{"load", "x.tar"}, nil, "-i FILE"},
		{"import missing file", []string{"import", "/nonexistent/rootfs.tar", "x:1"}, nil, "no such file or directory"},
		{"import not a tar", []string{"import", "-", "x:1"}, []byte(strings.Repeat("hello ", 200)), "not a tar archive"},
		{"import truncated", []string{"import", "-"}, archiveRootfs(t)[:600], "not a tar archive"},
		{"import bad change", []string{"import", "--change", "RUN rm -rf /", "-"}, archiveRootfs(t), "unsupported instruction RUN"},
		{"import bad name", []string{"import", "-", "Not A Name!"}, archiveRootfs(t), "invalid image reference"},
		{"import URL", []string{"import", "https://example.com/rootfs.tar"}, nil, "URL"},
		{"import bad platform", []string{"import", "--platform", "a/b/c/d", "-"}, archiveRootfs(t), "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			// Something in the store already: what a failure must keep.
			if _, err := archiveCLI(t, root, bytes.NewReader(good), nil, "load"); err != nil {
				t.Fatal(err)
			}
			before := testenv.ReadStoreState(t, root)
			if !strings.Contains(strings.Join(before.Blobs, " "), layer.Encoded()) {
				t.Fatal("the good image is not stored")
			}
			out, err := archiveCLI(t, root, bytes.NewReader(tc.stdin), nil, tc.args...)
			if err == nil {
				t.Fatalf("succeeded: %q", out)
			}
			t.Logf("hako: %v", err)
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q: want one line with %q", msg, tc.want)
			}
			testenv.RequireStoreUnchanged(t, root, before)
		})
	}
}
