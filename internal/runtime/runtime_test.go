package runtime

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestProcessStartTime(t *testing.T) {
	start, zombie, err := processStartTime(os.Getpid())
	if err != nil || start == 0 || zombie {
		t.Fatalf("processStartTime(self) = %d, %v, %v", start, zombie, err)
	}
	if !processAlive(os.Getpid(), start) {
		t.Error("self not alive with its own start time")
	}
	if processAlive(os.Getpid(), start+1) {
		t.Error("a different start time must mean a different (reused) pid")
	}
	if processAlive(0, 0) || processAlive(-1, 0) {
		t.Error("pid <= 0 reported alive")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, content := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestWithDeviceRules(t *testing.T) {
	major, minor := int64(10), int64(200)
	s := &specs.Spec{Linux: &specs.Linux{
		Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		Devices:   []specs.LinuxDevice{{Path: "/dev/net/tun", Type: "c", Major: major, Minor: minor}},
	}}
	r := withDeviceRules(s)
	if len(s.Linux.Resources.Devices) != 1 {
		t.Fatal("the spec's own rules were modified")
	}
	if r.Devices[0].Allow {
		t.Fatalf("first rule must stay the spec's deny-all: %+v", r.Devices[0])
	}
	last := r.Devices[len(r.Devices)-1]
	if !last.Allow || last.Type != "c" || *last.Major != major || *last.Minor != minor || last.Access != "rwm" {
		t.Fatalf("linux.devices entry not allowed last: %+v", last)
	}
	var null bool
	for _, d := range r.Devices {
		if d.Allow && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3 {
			null = true
		}
	}
	if !null {
		t.Error("/dev/null (1:3) not allowed after a deny-all")
	}
	// No device rules: nothing is added (the cgroup allows everything).
	s.Linux.Resources.Devices = nil
	if r := withDeviceRules(s); len(r.Devices) != 0 {
		t.Errorf("rules added to a spec without device rules: %+v", r.Devices)
	}
}

func TestPlanNamespacesErrors(t *testing.T) {
	for name, nss := range map[string][]specs.LinuxNamespace{
		"unknown":   {{Type: "bogus"}},
		"duplicate": {{Type: specs.PIDNamespace}, {Type: specs.PIDNamespace}},
		"missing":   {{Type: specs.NetworkNamespace, Path: "/nonexistent/ns/net"}},
		"wrongtype": {{Type: specs.NetworkNamespace, Path: "/proc/self/ns/uts"}},
		"notns":     {{Type: specs.NetworkNamespace, Path: "/etc/hostname"}},
	} {
		if p, err := planNamespaces(nss); err == nil {
			p.close()
			t.Errorf("%s: accepted %+v", name, nss)
		}
	}
	p, err := planNamespaces([]specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.CgroupNamespace}, {Type: specs.UTSNamespace, Path: "/proc/self/ns/uts"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if !p.newCgroupNS || len(p.join) != 1 || p.join[0].typ != specs.UTSNamespace {
		t.Errorf("plan = %+v", p)
	}
}
