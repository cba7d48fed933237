package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A fake Hybrid host shaped like this machine: memory on v1, hugetlb only
// in cgroup2 at unified/.
func newFakeHybrid(t *testing.T) (Options, string) {
	t.Helper()
	root := t.TempDir()
	mk := func(dir string, files map[string]string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, c := range files {
			writeTestFile(t, filepath.Join(dir, f), c)
		}
	}
	mk(filepath.Join(root, "memory"), map[string]string{"cgroup.procs": ""})
	mk(filepath.Join(root, "memory", "ctr"), map[string]string{"cgroup.procs": "", "memory.limit_in_bytes": "9223372036854771712"})
	mk(filepath.Join(root, "unified"), map[string]string{"cgroup.controllers": "hugetlb", "cgroup.subtree_control": "", "cgroup.procs": ""})
	mk(filepath.Join(root, "unified", "ctr"), map[string]string{"cgroup.procs": "", "hugetlb.2MB.max": "max", "cgroup.subtree_control": ""})
	self := filepath.Join(t.TempDir(), "cgroup")
	writeTestFile(t, self, "4:memory:/\n0::/\n")
	return Options{Root: root, ProcSelfCgroup: self}, root
}

func TestFakeHybrid(t *testing.T) {
	opts, root := newFakeHybrid(t)
	m, err := New("ctr", "x", opts)
	if err != nil {
		t.Fatal(err)
	}
	st := m.State()
	if st.Mode != Hybrid || st.Paths["memory"] != filepath.Join(root, "memory/ctr") || st.Paths[UnifiedKey] != filepath.Join(root, "unified/ctr") {
		t.Fatalf("state %+v", st)
	}
	if err := m.Create(&specs.LinuxResources{Unified: map[string]string{"memory.max": "1"}}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("unified key for a v1 controller: %v", err)
	}
	err = m.Create(&specs.LinuxResources{
		Memory:         &specs.LinuxMemory{Limit: ptr[int64](1 << 20)},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 2 << 20}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"memory/ctr/memory.limit_in_bytes": "1048576",
		"unified/ctr/hugetlb.2MB.max":      "2097152",
		"unified/cgroup.subtree_control":   "+hugetlb",
	} {
		if got := readTestFile(t, filepath.Join(root, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if err := m.Enter(4242); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"memory/ctr/cgroup.procs", "unified/ctr/cgroup.procs"} {
		if got := readTestFile(t, filepath.Join(root, f)); got != "4242" {
			t.Errorf("%s = %q", f, got)
		}
	}
	if _, ok, err := m.CgroupFD(); ok || err != nil {
		t.Errorf("CgroupFD on hybrid: ok=%v err=%v", ok, err)
	}
}

func TestLegacyRejectsUnified(t *testing.T) {
	opts, root := newFakeHybrid(t)
	os.RemoveAll(filepath.Join(root, "unified"))
	m, err := New("ctr", "x", opts)
	if err != nil {
		t.Fatal(err)
	}
	if st := m.State(); st.Mode != Legacy {
		t.Fatalf("mode %v", st.Mode)
	}
	if err := m.Create(&specs.LinuxResources{Unified: map[string]string{"memory.max": "1"}}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("unified on legacy: %v", err)
	}
	if err := m.Create(&specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 1}}}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("hugetlb without a hugetlb hierarchy: %v", err)
	}
}
