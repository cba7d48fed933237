package rootfs

import (
	"path"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Any key CheckSysctl accepts must map to a path strictly below /proc/sys.
func FuzzCheckSysctl(f *testing.F) {
	for _, k := range []string{"net.ipv4.ip_forward", "net/../../kernel.x", "net..x", "kernel.shmmax", "net.\u2028x", "fs.mqueue.msg_max", "net/ipv4/conf/eth0.100/forwarding", "net/./x", "net/../kernel/x"} {
		f.Add(k, "1")
	}
	s := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
	}}}
	f.Fuzz(func(t *testing.T, key, value string) {
		if CheckSysctl(s, key, value) != nil {
			return
		}
		rel := sysctlPath(key)
		if p := path.Join("/proc/sys", rel); p != "/proc/sys/"+rel || strings.Contains(value, "\n") {
			t.Fatalf("accepted key %q maps to %q", key, p)
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	f.Add("rbind,rro,nosuid,mode=755,size=1m,rshared")
	f.Add(`context="a,b",tmpcopyup,idmap`)
	f.Fuzz(func(t *testing.T, opts string) {
		o, err := parseOptions(strings.Split(opts, ","))
		if err != nil {
			return
		}
		if o.attr.set&o.attr.clr&^0x70 != 0 || o.rattr.set&o.rattr.clr&^0x70 != 0 {
			t.Fatalf("attribute both set and cleared: %+v %+v", o.attr, o.rattr)
		}
		for _, d := range o.data {
			splitData(d)
		}
	})
}
