package spec

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

func TestFeaturesRoundTrip(t *testing.T) {
	on := true
	seccomp := &features.Seccomp{Enabled: &on, Actions: []string{"SCMP_ACT_ALLOW"}}
	f := Features(seccomp)
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var back features.Features
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, f) {
		t.Errorf("features changed in a JSON round trip:\n%s", b)
	}
	if back.OCIVersionMax != specs.Version || back.OCIVersionMin != "1.0.0" {
		t.Errorf("versions %s..%s", back.OCIVersionMin, back.OCIVersionMax)
	}
	if len(back.Hooks) != 6 || back.Hooks[0] != "prestart" || back.Hooks[5] != "poststop" {
		t.Errorf("hooks = %v", back.Hooks)
	}
	if len(back.Linux.Namespaces) != 8 {
		t.Errorf("namespaces = %v, want all 8", back.Linux.Namespaces)
	}
	if back.Linux.Seccomp == nil || !*back.Linux.Seccomp.Enabled {
		t.Error("seccomp section lost")
	}
	cg := back.Linux.Cgroup
	if !*cg.V1 || !*cg.V2 || *cg.Systemd || *cg.SystemdUser || !*cg.Rdma {
		t.Errorf("cgroup = %s", b)
	}
	if *back.Linux.Apparmor.Enabled || *back.Linux.Selinux.Enabled || *back.Linux.IntelRdt.Enabled {
		t.Errorf("apparmor/selinux/intelRdt should be disabled: %s", b)
	}
	// Id-mapped mounts: advertised exactly when the kernel has them
	// (this machine's 6.18 does), with both options.
	idmap := *back.Linux.MountExtensions.IDMap.Enabled
	if idmap != kernelIDMap() || slices.Contains(back.MountOptions, "idmap") != idmap || slices.Contains(back.MountOptions, "ridmap") != idmap {
		t.Errorf("idmap enabled %v (kernel: %v), options %v", idmap, kernelIDMap(), back.MountOptions)
	}
	if Features(nil).Linux.Seccomp != nil {
		t.Error("nil seccomp should be left out")
	}
	// Each call hands out its own slices.
	Features(nil).Linux.Capabilities[0] = "X"
	Features(nil).MountOptions[0] = "X"
	if f2 := Features(nil); f2.Linux.Capabilities[0] != "CAP_CHOWN" || f2.MountOptions[0] != "acl" {
		t.Error("Features shares slices between calls")
	}
}

func TestFeaturesCapabilitiesAreTheKernels(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Skip(err)
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	caps := Features(nil).Linux.Capabilities
	if want := min(last+1, len(capNames)); len(caps) != want {
		t.Errorf("%d capabilities, kernel has %d", len(caps), last+1)
	}
	for i, c := range caps {
		if n, ok := CapabilityNumber(c); !ok || n != i || CapabilityName(i) != c {
			t.Errorf("capability %d named %q maps back to %d", i, c, n)
		}
	}
	// Spot-check against the kernel ABI.
	for name, n := range map[string]int{"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29, "CAP_BPF": 39} {
		if got, _ := CapabilityNumber(name); got != n || caps[n] != name {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	if CapabilityName(-1) != "" || CapabilityName(len(capNames)) != "" {
		t.Error("CapabilityName out of range should be empty")
	}
}

// hako's features must cover what the installed runc reports for
// capabilities and mount options.
func TestFeaturesCoverRunc(t *testing.T) {
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("runc not installed")
	}
	out, err := exec.Command(runc, "features").Output()
	if err != nil {
		t.Skipf("runc features: %v", err)
	}
	var rf features.Features
	if err := json.Unmarshal(out, &rf); err != nil {
		t.Fatal(err)
	}
	ours := Features(nil)
	has := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, o := range rf.MountOptions {
		if !has(ours.MountOptions, o) {
			t.Errorf("runc mount option %q missing", o)
		}
	}
	for _, c := range rf.Linux.Capabilities {
		if !has(ours.Linux.Capabilities, c) {
			t.Errorf("runc capability %q missing", c)
		}
	}
	for _, n := range rf.Linux.Namespaces {
		if !has(ours.Linux.Namespaces, n) {
			t.Errorf("runc namespace %q missing", n)
		}
	}
}

func TestReleaseAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"6.18.0-1-amd64", true}, {"5.12.0", true}, {"5.12-rc1", true}, {"5.11.22", false},
		{"4.19.0-27-amd64", false}, {"10.0", true}, {"", false}, {"6", false}, {"x.y", false},
	} {
		if got := releaseAtLeast(c.release, 5, 12); got != c.want {
			t.Errorf("releaseAtLeast(%q, 5, 12) = %v, want %v", c.release, got, c.want)
		}
	}
}
