package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// UmociBusyboxImage builds, with Debian's umoci (the way
// ../shared/conformance/critest/images.sh builds its images), an OCI image
// layout at layout holding a busybox image under tag: one layer made from
// BusyboxRootfs, Cmd /bin/sh, PATH=/bin:/usr/bin. It returns the image's
// manifest descriptor from the layout's index.json. The layout is an
// independent implementation's output, for tests that hako reads what
// other tools write. It skips t when umoci is missing.
func UmociBusyboxImage(t testing.TB, layout, tag string) ocispec.Descriptor {
	t.Helper()
	umoci, err := exec.LookPath("umoci")
	if err != nil {
		t.Skip("needs umoci (apt-get install umoci)")
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(umoci, args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %v: %v\n%s", args, err, out)
		}
	}
	ref := layout + ":" + tag
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		run("init", "--layout", layout)
	}
	run("new", "--image", ref)
	bundle := filepath.Join(t.TempDir(), "bundle")
	run("unpack", "--image", ref, bundle)
	if err := BusyboxRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	run("repack", "--image", ref, "--history.created_by=testenv busybox rootfs", bundle)
	run("config", "--image", ref, "--config.cmd=/bin/sh", "--config.env=PATH=/bin:/usr/bin", "--no-history")

	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == tag {
			return m
		}
	}
	t.Fatalf("umoci layout %s: no manifest tagged %s", layout, tag)
	return ocispec.Descriptor{}
}
