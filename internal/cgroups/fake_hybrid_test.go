package cgroups

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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
	// Nothing joined on v1 until a limit asks for it.
	st := m.State()
	if st.Mode != Hybrid || len(st.Paths) != 1 || st.Paths[UnifiedKey] != filepath.Join(root, "unified/ctr") ||
		st.Deferred["memory"] != filepath.Join(root, "memory/ctr") {
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
	st = m.State()
	if st.Paths["memory"] != filepath.Join(root, "memory/ctr") || len(st.Deferred) != 0 {
		t.Errorf("memory not joined: %+v", st)
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
	fd, ok, err := m.CgroupFD()
	if !ok || err != nil {
		t.Fatalf("CgroupFD on hybrid: ok=%v err=%v", ok, err)
	}
	unix.Close(fd)
}

// With no limits, Create touches only the unified hierarchy and Enter
// writes only its cgroup.procs; Update with a memory limit then joins the
// memory hierarchy and moves the container's processes there, and the new
// State (through JSON, as state.json keeps it) carries that.
func TestFakeHybridDeferred(t *testing.T) {
	opts, root := newFakeHybrid(t)
	os.RemoveAll(filepath.Join(root, "memory", "ctr"))
	m, err := New("ctr", "x", opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(&specs.LinuxResources{Devices: nil}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "memory", "ctr")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("memory/ctr made without a memory limit: %v", err)
	}
	if err := m.Enter(4242); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(root, "unified/ctr/cgroup.procs")); got != "4242" {
		t.Errorf("unified cgroup.procs = %q", got)
	}
	if got := readTestFile(t, filepath.Join(root, "memory/cgroup.procs")); got != "" {
		t.Errorf("memory root cgroup.procs written: %q", got)
	}

	b, err := json.Marshal(m.State())
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	m, err = Load(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel would create the control files with the directory; in
	// the fake tree they are made first (Update finds the directory there).
	// A regular file keeps only the last pid written, so one process: the
	// real migration of several is TestRealHybridUpdateJoins.
	mk := filepath.Join(root, "memory", "ctr")
	if err := os.Mkdir(mk, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(mk, "cgroup.procs"), "")
	writeTestFile(t, filepath.Join(mk, "memory.limit_in_bytes"), "max")
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](1 << 20)}}); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(mk, "cgroup.procs")); got != "4242" {
		t.Errorf("memory cgroup.procs after Update = %q", got)
	}
	if got := readTestFile(t, filepath.Join(mk, "memory.limit_in_bytes")); got != "1048576" {
		t.Errorf("memory limit %q", got)
	}
	if st := m.State(); st.Paths["memory"] != mk || len(st.Deferred) != 0 {
		t.Errorf("state after Update: %+v", st)
	}
}

func TestLoadHybridDeferred(t *testing.T) {
	opts, root := newFakeHybrid(t)
	good := State{Mode: Hybrid, Paths: map[string]string{UnifiedKey: root + "/unified/ctr"},
		Deferred: map[string]string{"memory": root + "/memory/ctr"}}
	if _, err := Load(good, opts); err != nil {
		t.Fatalf("Load: %v", err)
	}
	for name, st := range map[string]State{
		"deferred on unified": {Mode: Hybrid, Paths: good.Paths, Deferred: map[string]string{"memory": root + "/unified/x"}},
		"deferred outside":    {Mode: Hybrid, Paths: good.Paths, Deferred: map[string]string{"memory": "/etc/x"}},
		"deferred mount":      {Mode: Hybrid, Paths: good.Paths, Deferred: map[string]string{"memory": root + "/memory"}},
		"deferred and joined": {Mode: Hybrid, Paths: map[string]string{UnifiedKey: root + "/unified/ctr", "memory": root + "/memory/ctr"}, Deferred: good.Deferred},
		"deferred on legacy":  {Mode: Legacy, Paths: map[string]string{"memory": root + "/memory/ctr"}, Deferred: map[string]string{"pids": root + "/pids/ctr"}},
	} {
		if _, err := Load(st, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Load = %v, want ErrInvalid", name, err)
		}
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
