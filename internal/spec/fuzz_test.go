package spec_test

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hako-runtime/hako/internal/rootfs"
	"github.com/hako-runtime/hako/internal/spec"
)

// FuzzValidateID: an ID ValidateID accepts is one harmless path component
// (it names the state directory and a cgroup) and never reads as an option.
func FuzzValidateID(f *testing.F) {
	for _, id := range []string{"a", "..", "../x", "-x", "a/b", "x\x00", ".hidden", strings.Repeat("a", 256)} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := spec.ValidateID(id)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if id == "." || id == ".." || filepath.Base(id) != id || strings.HasPrefix(id, "-") ||
			len(id) > spec.MaxIDLength || filepath.Dir(filepath.Join("/run/hako", id)) != "/run/hako" {
			t.Fatalf("accepted unsafe id %q", id)
		}
	})
}

// FuzzSysctl: a linux.sysctl entry that spec.Validate accepts at create time
// is also accepted by rootfs.CheckSysctl, which init applies before writing
// (otherwise create passes and the container fails later), its file is
// strictly below /proc/sys, and its value is a single line.
func FuzzSysctl(f *testing.F) {
	for _, k := range []string{"net.ipv4.ip_forward", "net/ipv4/conf/eth0.100/forwarding", "net/../kernel/x",
		"kernel.shmmax", "kernel.hostname", "net.a/b", "fs.mqueue.msg_max", "net..x", "kernel.domainname"} {
		f.Add(k, "1")
	}
	f.Add("net.ipv4.ip_forward", "1\nkernel.core_pattern=|/x")
	f.Fuzz(func(t *testing.T, key, value string) {
		s := spec.Default()
		s.Linux.Sysctl = map[string]string{key: value}
		err := spec.Validate(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if err := rootfs.CheckSysctl(s, key, value); err != nil {
			t.Fatalf("Validate accepts %q = %q, init would refuse it: %v", key, value, err)
		}
		rel := key
		if !strings.Contains(key, "/") {
			rel = strings.ReplaceAll(key, ".", "/")
		}
		if p := path.Join("/proc/sys", rel); !strings.HasPrefix(p, "/proc/sys/") || p != "/proc/sys/"+rel {
			t.Fatalf("accepted key %q maps to %q", key, p)
		}
		if strings.ContainsAny(value, "\n\r\x00") {
			t.Fatalf("accepted multi-line value %q", value)
		}
	})
}

// The default spec must have the namespaces the fuzz targets rely on.
func TestFuzzSpecHasNamespaces(t *testing.T) {
	have := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range spec.Default().Linux.Namespaces {
		have[ns.Type] = true
	}
	for _, want := range []specs.LinuxNamespaceType{specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace} {
		if !have[want] {
			t.Errorf("spec.Default has no %s namespace", want)
		}
	}
}
