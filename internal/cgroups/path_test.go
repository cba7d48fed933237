package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	for _, c := range []struct{ path, own, want string }{
		{"/cgrouptest", "/process_api/x", "/cgrouptest"},
		{"testdir/cgrouptest/container", "/", "/testdir/cgrouptest/container"},
		{"testdir/cgrouptest/container", "/process_api/x", "/process_api/x/testdir/cgrouptest/container"},
		{"ctr", "", "/ctr"},
		{"../sib", "/a/b", "/a/sib"},
		{"/a//b/./c/", "/x", "/a/b/c"},
		{"/a/../b", "/", "/b"},
		// systemd-style paths, laid out as systemd would
		{"system.slice:hako:abc", "/own", "/system.slice/hako-abc.scope"},
		{":hako:abc", "/own", "/system.slice/hako-abc.scope"},
		{"kubepods-besteffort-pod12.slice:cri-hako:c1", "/own", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-hako-c1.scope"},
		{"-.slice::ctr", "/own", "/ctr.scope"},
		{"user.slice::app.slice", "/", "/user.slice/app.slice"},
		{"a:b", "/own", "/own/a:b"}, // one colon: a plain relative path
	} {
		got, err := resolve(c.path, c.own)
		if err != nil || got != c.want {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", c.path, c.own, got, err, c.want)
		}
	}
	for _, c := range []struct{ path, own string }{
		{"notaslice:p:n", "/"}, {"a--b.slice:p:n", "/"}, {"-a.slice:p:n", "/"}, {"a.slice:p:", "/"},
		{"a.slice:p:..", "/"}, {"a.slice:../x:n", "/"}, {"a.slice::b--c.slice", "/"},
		{"/..", "/"}, {"../x", "/"}, {"../../x", "/a"}, {"/", "/a"}, {".", "/"}, {"/a/../..", "/"},
	} {
		if got, err := resolve(c.path, c.own); !errors.Is(err, ErrInvalid) {
			t.Errorf("resolve(%q, %q) = %q, %v; want ErrInvalid", c.path, c.own, got, err)
		}
	}
}

// cgroupsPath comes from config.json: whatever it holds, the result is a
// clean absolute path with no way up.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/a", "a/../..", "../../../etc", "a/./b//c", "..", "/x/../../y"} {
		f.Add(s, "/own/cg")
	}
	f.Fuzz(func(t *testing.T, path, own string) {
		if !strings.HasPrefix(own, "/") || strings.Contains(own, "..") {
			own = "/own"
		}
		got, err := resolve(path, own)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") || got != filepath.Clean(got) || got == "/" {
			t.Fatalf("resolve(%q) = %q: not a clean subpath", path, got)
		}
		for _, c := range strings.Split(got, "/") {
			if c == ".." || c == "." {
				t.Fatalf("resolve(%q) = %q", path, got)
			}
		}
		if !within("/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory"+got) {
			t.Fatalf("resolve(%q) = %q escapes", path, got)
		}
	})
}

func TestReadSelfCgroup(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cgroup")
	os.WriteFile(p, []byte("12:cpu,cpuacct:/a\n11:name=systemd:/user.slice\n5:memory:/m/x\n1:rdma:/\n0::/user.slice/u\n"), 0o644)
	s, err := readSelfCgroup(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.unified != "/user.slice/u" || len(s.v1) != 4 || s.v1[0].controllers[1] != "cpuacct" || s.v1[2].path != "/m/x" {
		t.Errorf("parsed %+v", s)
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 0, 1: 1, 2: 1, 1024: 100, 262144: 10000, 1 << 30: 10000, 512: 59, 2048: 174} {
		if got := SharesToWeight(shares); got != want {
			t.Errorf("SharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	prev := uint64(0)
	for s := uint64(2); s <= 262144; s += 97 {
		w := SharesToWeight(s)
		if w < prev || w < 1 || w > 10000 {
			t.Fatalf("SharesToWeight not monotone in range at %d: %d after %d", s, w, prev)
		}
		prev = w
	}
}

func TestSwapV2(t *testing.T) {
	for _, c := range []struct {
		swap, limit int64
		want        string
		set         bool
		err         error
	}{
		{-1, 100, "max", true, nil},
		{0, 100, "", false, nil},
		{300, 100, "200", true, nil},
		{100, 100, "0", true, nil},
		{50, 100, "", false, ErrInvalid},
		{50, 0, "", false, ErrInvalid},
		{50, -1, "", false, ErrInvalid},
	} {
		got, set, err := swapV2(c.swap, c.limit)
		if got != c.want || set != c.set || !errors.Is(err, c.err) {
			t.Errorf("swapV2(%d, %d) = %q, %v, %v", c.swap, c.limit, got, set, err)
		}
	}
}

func TestValidNames(t *testing.T) {
	for _, k := range []string{"memory.max", "cpu.weight.nice", "io.bfq.weight", "cgroup.freeze"} {
		if err := validUnifiedKey(k); err != nil {
			t.Errorf("%q rejected: %v", k, err)
		}
	}
	for _, k := range []string{"", ".", "..", "memory", "../x.y", "a/b.c", "x..y", "cgroup.procs", "cgroup.threads", "a\x00.b"} {
		if validUnifiedKey(k) == nil {
			t.Errorf("%q accepted", k)
		}
	}
	for s, ok := range map[string]bool{"2MB": true, "1GB": true, "64KB": true, "512B": true, "MB": false, "2mb": false, "2M": false, "../2MB": false, "": false} {
		if validPageSize(s) != ok {
			t.Errorf("validPageSize(%q) = %v", s, !ok)
		}
	}
}
