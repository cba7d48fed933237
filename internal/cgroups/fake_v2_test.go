package cgroups

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A fake cgroup v2 tree: directories and control files laid out as cgroupfs
// would, so every v2 translation can be checked on a host whose real cgroup2
// has (almost) no controllers. Files that take one command per write
// (io.max, rdma.max, io.weight) are FIFOs whose writes are recorded.

var fakeCgroupFiles = map[string]string{
	"cgroup.controllers":     "cpuset cpu io memory hugetlb pids rdma misc",
	"cgroup.subtree_control": "",
	"cgroup.procs":           "",
	"cgroup.freeze":          "0",
	"cgroup.events":          "populated 0\nfrozen 0\n",
	"memory.max":             "max",
	"memory.low":             "0",
	"memory.high":            "max",
	"memory.swap.max":        "max",
	"memory.current":         "1000",
	"memory.events":          "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
	"memory.stat":            "anon 10\nfile 20\n",
	"cpu.weight":             "100",
	"cpu.max":                "max 100000",
	"cpu.max.burst":          "0",
	"cpu.idle":               "0",
	"cpu.stat":               "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 7\nnr_throttled 1\nthrottled_usec 4\n",
	"cpuset.cpus":            "",
	"cpuset.mems":            "",
	"pids.max":               "max",
	"pids.current":           "3",
	"hugetlb.2MB.max":        "max",
	"hugetlb.2MB.rsvd.max":   "max",
	"hugetlb.2MB.current":    "0",
	"misc.max":               "",
	"io.stat":                "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
}

type fakeV2 struct {
	root string
	opts Options
}

func newFakeV2(t *testing.T) *fakeV2 {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"cgroup.controllers", "cgroup.subtree_control", "cgroup.procs"} {
		writeTestFile(t, filepath.Join(root, f), fakeCgroupFiles[f])
	}
	self := filepath.Join(t.TempDir(), "cgroup")
	writeTestFile(t, self, "0::/\n")
	return &fakeV2{root: root, opts: Options{Root: root, ProcSelfCgroup: self}}
}

// cgroup makes rel (and its parents) look like cgroupfs directories.
func (f *fakeV2) cgroup(t *testing.T, rel string) string {
	t.Helper()
	d := f.root
	for _, c := range splitPath(rel) {
		d = filepath.Join(d, c)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			t.Fatal(err)
		}
		for name, content := range fakeCgroupFiles {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				writeTestFile(t, filepath.Join(d, name), content)
			}
		}
	}
	return d
}

func splitPath(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}

// record replaces dir/name with a FIFO and returns a function giving
// everything written to it so far, the writes concatenated in order. The
// test holds the FIFO open read-write and non-blocking: a writer's open
// never waits and never meets a closed read end (a reader that closed and
// reopened between two writes made the second fail with EPIPE), and when a
// write returns its bytes are in the pipe, so the function reads them
// without waiting. (Kernel cgroup files take one record per write; the
// code under test writes each as its own open-write-close, and the
// concatenation keeps their order.)
func record(t *testing.T, dir, name string) func() []string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.Remove(p)
	if err := unix.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var got []byte
	return func() []string {
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if n > 0 {
				got = append(got, buf[:n]...)
			}
			if err != nil || n <= 0 {
				break // EAGAIN: nothing more in the pipe
			}
		}
		return []string{string(got)}
	}
}

func writeTestFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func ptr[T any](v T) *T { return &v }

func TestFakeV2DetectMode(t *testing.T) {
	f := newFakeV2(t)
	if m, err := DetectMode(f.root); err != nil || m != Unified {
		t.Fatalf("DetectMode(fake v2) = %v, %v; want unified", m, err)
	}
	h := t.TempDir()
	os.Mkdir(filepath.Join(h, "unified"), 0o755)
	writeTestFile(t, filepath.Join(h, "unified", "cgroup.controllers"), "")
	if m, err := DetectMode(h); err != nil || m != Hybrid {
		t.Fatalf("DetectMode(fake hybrid) = %v, %v; want hybrid", m, err)
	}
	if m, err := DetectMode(t.TempDir()); err != nil || m != Legacy {
		t.Fatalf("DetectMode(empty) = %v, %v; want legacy", m, err)
	}
}

func TestFakeV2Translations(t *testing.T) {
	type check map[string]string // file -> content after Create
	cases := []struct {
		name    string
		r       specs.LinuxResources
		want    check
		wantErr error
	}{
		{
			name: "memory",
			r: specs.LinuxResources{Memory: &specs.LinuxMemory{
				Limit: ptr[int64](64 << 20), Reservation: ptr[int64](32 << 20), Swap: ptr[int64](96 << 20),
				Kernel: ptr[int64](1 << 20), KernelTCP: ptr[int64](1 << 20), Swappiness: ptr[uint64](10),
				DisableOOMKiller: ptr(true), UseHierarchy: ptr(true),
			}},
			want: check{"memory.max": "67108864", "memory.low": "33554432", "memory.swap.max": "33554432"},
		},
		{
			name: "memory unlimited",
			r:    specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](-1), Swap: ptr[int64](-1)}},
			want: check{"memory.max": "max", "memory.swap.max": "max"},
		},
		{
			name:    "memory swap below limit",
			r:       specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](32 << 20)}},
			wantErr: ErrInvalid,
		},
		{
			name: "cpu",
			r: specs.LinuxResources{CPU: &specs.LinuxCPU{
				Shares: ptr[uint64](1024), Quota: ptr[int64](50000), Period: ptr[uint64](100000),
				Burst: ptr[uint64](1000), Idle: ptr[int64](1), Cpus: "0-1", Mems: "0",
			}},
			want: check{"cpu.weight": "100", "cpu.max": "50000 100000", "cpu.max.burst": "1000", "cpu.idle": "1", "cpuset.cpus": "0-1", "cpuset.mems": "0"},
		},
		{
			name: "cpu quota unlimited",
			r:    specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](-1), Period: ptr[uint64](200000), Shares: ptr[uint64](2)}},
			want: check{"cpu.max": "max 200000", "cpu.weight": "1"},
		},
		{
			name: "cpu quota default period",
			r:    specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr[int64](20000), Shares: ptr[uint64](262144)}},
			want: check{"cpu.max": "20000 100000", "cpu.weight": "10000"},
		},
		{
			name:    "cpu realtime",
			r:       specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: ptr[int64](1000), RealtimePeriod: ptr[uint64](10000)}},
			wantErr: ErrNotSupported,
		},
		{
			name: "pids",
			r:    specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](100)}},
			want: check{"pids.max": "100"},
		},
		{
			name: "pids unlimited",
			r:    specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](-1)}},
			want: check{"pids.max": "max"},
		},
		{
			name: "hugetlb",
			r:    specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}},
			want: check{"hugetlb.2MB.max": "4194304", "hugetlb.2MB.rsvd.max": "4194304"},
		},
		{
			name:    "hugetlb bad size",
			r:       specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../2MB", Limit: 1}}},
			wantErr: ErrInvalid,
		},
		{
			name: "unified",
			r:    specs.LinuxResources{Unified: map[string]string{"memory.high": "1073741824", "misc.max": "res 1"}},
			want: check{"memory.high": "1073741824", "misc.max": "res 1"},
		},
		{name: "unified dotdot", r: specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}, wantErr: ErrInvalid},
		{name: "unified slash", r: specs.LinuxResources{Unified: map[string]string{"a/memory.max": "1"}}, wantErr: ErrInvalid},
		{name: "unified procs", r: specs.LinuxResources{Unified: map[string]string{"cgroup.procs": "1"}}, wantErr: ErrInvalid},
		{name: "unified missing file", r: specs.LinuxResources{Unified: map[string]string{"memory.nonexistent": "1"}}, wantErr: os.ErrNotExist},
		{name: "network on v2", r: specs.LinuxResources{Network: &specs.LinuxNetwork{ClassID: ptr[uint32](1)}}, wantErr: ErrNotSupported},
		{name: "bad device type", r: specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}, wantErr: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeV2(t)
			dir := f.cgroup(t, "/pod/ctr")
			m, err := New("/pod/ctr", "ctr", f.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Create(&tc.r)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Create = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for file, want := range tc.want {
				if got := readTestFile(t, filepath.Join(dir, file)); got != want {
					t.Errorf("%s = %q, want %q", file, got, want)
				}
			}
			// Nothing set => nothing written: a field we did not ask for
			// keeps the fake's initial content.
			for file, initial := range fakeCgroupFiles {
				if _, set := tc.want[file]; set || file == "cgroup.subtree_control" {
					continue
				}
				if got := readTestFile(t, filepath.Join(dir, file)); got != initial {
					t.Errorf("%s written (%q) though not requested", file, got)
				}
			}
		})
	}
}

func TestFakeV2MultiLineFiles(t *testing.T) {
	f := newFakeV2(t)
	dir := f.cgroup(t, "/ctr")
	ioMax := record(t, dir, "io.max")
	ioWeight := record(t, dir, "io.weight")
	rdma := record(t, dir, "rdma.max")
	m, err := New("/ctr", "ctr", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	dev := specs.LinuxBlockIODevice{Major: 8, Minor: 0}
	r := &specs.LinuxResources{
		BlockIO: &specs.LinuxBlockIO{
			Weight:                  ptr[uint16](500),
			LeafWeight:              ptr[uint16](300), // no v2 equivalent: ignored
			WeightDevice:            []specs.LinuxWeightDevice{{LinuxBlockIODevice: dev, Weight: ptr[uint16](10)}},
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}},
			ThrottleWriteBpsDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 2 << 20}},
			ThrottleReadIOPSDevice:  []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 100}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 200}},
		},
		Rdma: map[string]specs.LinuxRdma{"mlx5_0": {HcaHandles: ptr[uint32](3), HcaObjects: ptr[uint32](100)}},
	}
	if err := m.Create(r); err != nil {
		t.Fatal(err)
	}
	wantIO := []string{"8:0 rbps=1048576", "8:0 wbps=2097152", "8:0 riops=100", "8:0 wiops=200"}
	// The recorders give the writes concatenated, in order.
	same := func(got, want []string) bool { return strings.Join(got, "") == strings.Join(want, "") }
	if got := ioMax(); !same(got, wantIO) {
		t.Errorf("io.max writes = %q, want %q", got, wantIO)
	}
	if got, want := ioWeight(), []string{"default 4950", "8:0 1"}; !same(got, want) {
		t.Errorf("io.weight writes = %q, want %q", got, want)
	}
	if got, want := rdma(), []string{"mlx5_0 hca_handle=3 hca_object=100"}; !same(got, want) {
		t.Errorf("rdma.max writes = %q, want %q", got, want)
	}
	for _, d := range []string{f.root} {
		if got := readTestFile(t, filepath.Join(d, "cgroup.subtree_control")); got != "+rdma" {
			// Each "+ctrl" is its own write; the fake keeps the last.
			t.Errorf("%s/cgroup.subtree_control = %q, want last write +rdma", d, got)
		}
	}

	// With BFQ, the v1 weight range goes to io.bfq.weight unchanged.
	f2 := newFakeV2(t)
	dir2 := f2.cgroup(t, "/ctr")
	writeTestFile(t, filepath.Join(dir2, "io.bfq.weight"), "default 100")
	m2, _ := New("/ctr", "ctr", f2.opts)
	if err := m2.Create(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)}}); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(dir2, "io.bfq.weight")); got != "500" {
		t.Errorf("io.bfq.weight = %q, want 500", got)
	}
}

func TestFakeV2EnableControllers(t *testing.T) {
	f := newFakeV2(t)
	dir := f.cgroup(t, "/a/b/ctr")
	m, err := New("/a/b/ctr", "ctr", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](1 << 30)}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{f.root, filepath.Join(f.root, "a"), filepath.Join(f.root, "a/b")} {
		if got := readTestFile(t, filepath.Join(d, "cgroup.subtree_control")); got != "+memory" {
			t.Errorf("%s/cgroup.subtree_control = %q, want +memory", d, got)
		}
	}
	if got := readTestFile(t, filepath.Join(dir, "cgroup.subtree_control")); got != "" {
		t.Errorf("container's own subtree_control written: %q", got)
	}

	// Already delegated in the parent: a single read, no write anywhere.
	f2 := newFakeV2(t)
	f2.cgroup(t, "/a/b/ctr")
	writeTestFile(t, filepath.Join(f2.root, "a/b/cgroup.subtree_control"), "cpu memory")
	m2, _ := New("/a/b/ctr", "ctr", f2.opts)
	if err := m2.Create(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](1 << 30)}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{f2.root, filepath.Join(f2.root, "a")} {
		if got := readTestFile(t, filepath.Join(d, "cgroup.subtree_control")); got != "" {
			t.Errorf("%s/cgroup.subtree_control = %q, want untouched", d, got)
		}
	}

	// A controller the root does not offer fails loudly.
	f3 := newFakeV2(t)
	f3.cgroup(t, "/ctr")
	writeTestFile(t, filepath.Join(f3.root, "cgroup.controllers"), "memory")
	m3, _ := New("/ctr", "ctr", f3.opts)
	if err := m3.Create(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](5)}}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("pids limit without pids controller: %v, want ErrNotSupported", err)
	}
}

func TestFakeV2RelativePath(t *testing.T) {
	f := newFakeV2(t)
	writeTestFile(t, f.opts.ProcSelfCgroup, "0::/system.slice/hako.service\n")
	m, err := New("", "ctr1", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.State().Paths[UnifiedKey], filepath.Join(f.root, "system.slice/hako.service/ctr1"); got != want {
		t.Errorf("default path = %s, want %s", got, want)
	}
	m, err = New("../other/c", "x", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.State().Paths[UnifiedKey], filepath.Join(f.root, "system.slice/other/c"); got != want {
		t.Errorf("relative path = %s, want %s", got, want)
	}
	for _, bad := range []string{"../../../etc", "/../x", "/a/../../x", "/"} {
		if _, err := New(bad, "x", f.opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestFakeV2CreateDestroy(t *testing.T) {
	f := newFakeV2(t)
	// "/shared" exists; "/shared/pod/ctr" does not: Create makes pod and
	// ctr and Destroy removes exactly those.
	f.cgroup(t, "/shared")
	m, err := New("/shared/pod/ctr", "ctr", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	st := m.State()
	want := []string{filepath.Join(f.root, "shared/pod"), filepath.Join(f.root, "shared/pod/ctr")}
	if !slices.Equal(st.Created, want) {
		t.Fatalf("Created = %q, want %q", st.Created, want)
	}
	// State survives a JSON round trip and Load rebuilds an equal manager.
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var st2 State
	if err := json.Unmarshal(b, &st2); err != nil {
		t.Fatal(err)
	}
	if st2.Mode != Unified {
		t.Fatalf("mode after round trip = %v (json %s)", st2.Mode, b)
	}
	m2, err := Load(st2, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, d := range want {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Destroy (%v)", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(f.root, "shared")); err != nil {
		t.Errorf("pre-existing parent removed: %v", err)
	}
	if err := m2.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}

	// A failed Create leaves nothing behind.
	m3, _ := New("/shared/pod2/ctr", "ctr", f.opts)
	if err := m3.Create(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](1)}}); err == nil {
		t.Fatal("Create on a dir without pids.max succeeded")
	}
	if _, err := os.Stat(filepath.Join(f.root, "shared/pod2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Create left shared/pod2 behind (%v)", err)
	}
}

func TestLoadRejectsOutsideRoot(t *testing.T) {
	for _, st := range []State{
		{Mode: Unified, Paths: map[string]string{UnifiedKey: "/etc"}},
		{Mode: Hybrid, Paths: map[string]string{"memory": "/sys/fs/cgroup/memory/../../../etc"}},
		{Mode: Legacy, Paths: map[string]string{"memory": "/sys/fs/cgroup/memory/x"}, Created: []string{"/tmp/x"}},
		{Mode: Legacy, Paths: map[string]string{"memory": "/sys/fs/cgroup"}},
		// Mount points are not container cgroups: Destroy would empty a
		// whole hierarchy.
		{Mode: Hybrid, Paths: map[string]string{"memory": "/sys/fs/cgroup/memory"}},
		{Mode: Legacy, Paths: map[string]string{"memory": "/sys/fs/cgroup/memory/x"}, Created: []string{"/sys/fs/cgroup/cpu"}},
		{Mode: Hybrid, Paths: map[string]string{UnifiedKey: "/sys/fs/cgroup/memory/x"}},
		{Mode: Hybrid, Paths: map[string]string{"memory": "/sys/fs/cgroup/unified/x"}},
		{Mode: Legacy, Paths: map[string]string{UnifiedKey: "/sys/fs/cgroup/unified/x"}},
		{Mode: 0},
	} {
		if _, err := Load(st, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%+v) = %v, want ErrInvalid", st, err)
		}
	}
}

func TestFakeV2FreezeStatsOOM(t *testing.T) {
	f := newFakeV2(t)
	dir := f.cgroup(t, "/ctr")
	m, err := New("/ctr", "ctr", f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	// The fake kernel answers "frozen 1" at once.
	writeTestFile(t, filepath.Join(dir, "cgroup.events"), "populated 1\nfrozen 1\n")
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got := readTestFile(t, filepath.Join(dir, "cgroup.freeze")); got != "1" {
		t.Errorf("cgroup.freeze = %q", got)
	}
	if s, err := m.FreezerState(); err != nil || s != Frozen {
		t.Errorf("FreezerState = %q, %v", s, err)
	}
	writeTestFile(t, filepath.Join(dir, "cgroup.events"), "populated 1\nfrozen 0\n")
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if s, err := m.FreezerState(); err != nil || s != Thawed {
		t.Errorf("FreezerState = %q, %v", s, err)
	}

	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU.Usage.Total != 5000 || st.CPU.Throttling.ThrottledTime != 4000 || st.Memory.Usage.Usage != 1000 ||
		st.Memory.Cache != 20 || st.Pids.Current != 3 || len(st.Blkio.IoServiceBytesRecursive) != 2 {
		t.Errorf("Stats = %+v", st)
	}
	b, _ := json.Marshal(st)
	var keys map[string]json.RawMessage
	json.Unmarshal(b, &keys)
	for _, k := range []string{"cpu", "memory", "pids", "blkio"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, b)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := m.OOMEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no OOM event after oom_kill went to 1")
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("unexpected second event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after cancel")
	}

	if fd, ok, err := m.CgroupFD(); err != nil || !ok {
		t.Errorf("CgroupFD = %d, %v, %v", fd, ok, err)
	} else {
		unix.Close(fd)
	}
}
