package test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/hako-runtime/hako/internal/testenv"
)

// TestSpec checks that `spec --bundle` writes a config.json a runtime can
// run once the rootfs is in place and the terminal is turned off, and that
// it refuses to overwrite an existing one (as runc does).
func TestSpec(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	bundle := t.TempDir()
	r.ok("spec", "--bundle", bundle)
	spec, err := testenv.ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Process == nil || !spec.Process.Terminal || spec.Root == nil || spec.Root.Path != "rootfs" {
		t.Fatalf("spec: want runc's defaults (terminal, root.path rootfs), got %+v", spec)
	}
	if res := r.run("spec", "--bundle", bundle); res.code == 0 {
		t.Errorf("spec over an existing config.json succeeded: %v", res)
	}

	if err := testenv.BusyboxRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		t.Fatal(err)
	}
	spec.Process.Terminal = false
	spec.Process.Args = []string{"sh", "-c", "echo from-spec"}
	if err := testenv.WriteSpec(bundle, spec); err != nil {
		t.Fatal(err)
	}
	id := newID(t)
	r.cleanupContainer(id)
	res := r.ok("run", "--bundle", bundle, id)
	if res.stdout != "from-spec\n" {
		t.Errorf("run of the spec bundle printed %q", res.stdout)
	}
}

// TestFeatures checks that `features` prints the runtime-spec features
// document (features.md) and that it claims what the other tests use.
func TestFeatures(t *testing.T) {
	t.Parallel()
	r := newRuntime(t)
	res := r.ok("features")
	var f features.Features
	if err := json.Unmarshal([]byte(res.stdout), &f); err != nil {
		t.Fatalf("features: invalid JSON %q: %v", res.stdout, err)
	}
	if f.OCIVersionMin == "" || f.OCIVersionMax == "" {
		t.Errorf("features lacks ociVersionMin/Max: %+v", f)
	}
	for _, h := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		if !slices.Contains(f.Hooks, h) {
			t.Errorf("features.hooks %v lacks %s", f.Hooks, h)
		}
	}
	for _, o := range []string{"bind", "rbind", "ro", "nosuid", "nodev", "noexec"} {
		if !slices.Contains(f.MountOptions, o) {
			t.Errorf("features.mountOptions lacks %s", o)
		}
	}
	if f.Linux == nil {
		t.Fatal("features has no linux section")
	}
	for _, ns := range []string{"pid", "network", "ipc", "uts", "mount", "user", "cgroup"} {
		if !slices.Contains(f.Linux.Namespaces, ns) {
			t.Errorf("features.linux.namespaces %v lacks %s", f.Linux.Namespaces, ns)
		}
	}
}
