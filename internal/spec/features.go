package spec

import (
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/hooks"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// MinOCIVersion is the oldest runtime-spec version whose configs hako runs.
const MinOCIVersion = "1.0.0"

// mountOptions are the mount options hako accepts in config.json mounts:
// runc's list (runc features), which the mount step must implement.
var mountOptions = []string{
	"acl", "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync",
	"exec", "iversion", "lazytime", "loud", "mand", "noacl", "noatime", "nodev",
	"nodiratime", "noexec", "noiversion", "nolazytime", "nomand", "norelatime",
	"nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind",
	"rdev", "rdiratime", "relatime", "remount", "rexec", "rnoatime", "rnodev",
	"rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime", "rnosuid",
	"rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared",
	"rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw",
	"shared", "silent", "slave", "strictatime", "suid", "symfollow", "sync",
	"tmpcopyup", "unbindable",
}

// Features returns the document `hako features` prints
// (features.md, specs-go/features). seccomp describes the seccomp support
// and comes from the seccomp package; nil leaves it out ("unknown").
func Features(seccomp *features.Seccomp) *features.Features {
	yes, no := true, false
	opts := append([]string(nil), mountOptions...)
	idmap := kernelIDMap()
	if idmap {
		opts = append(opts, idmapOptions...)
		slices.Sort(opts)
	}
	ns := make([]string, len(allNamespaces))
	for i, n := range allNamespaces {
		ns[i] = string(n)
	}
	return &features.Features{
		OCIVersionMin: MinOCIVersion,
		OCIVersionMax: specs.Version,
		Hooks:         hooks.Kinds(),
		MountOptions:  opts,
		Linux: &features.Linux{
			Namespaces:   ns,
			Capabilities: kernelCapabilities(),
			Cgroup: &features.Cgroup{
				V1:          &yes,
				V2:          &yes,
				Systemd:     &no,
				SystemdUser: &no,
				Rdma:        &yes,
			},
			Seccomp:  seccomp,
			Apparmor: &features.Apparmor{Enabled: &no},
			Selinux:  &features.Selinux{Enabled: &no},
			IntelRdt: &features.IntelRdt{Enabled: &no},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: &idmap},
			},
		},
	}
}

// kernelCapabilities names the capabilities of the running kernel: 0 up to
// /proc/sys/kernel/cap_last_cap. If that file is unreadable (old kernel, no
// /proc) the whole table is reported; numbers the table does not know
// (a kernel newer than hako) are left out since they have no name.
func kernelCapabilities() []string {
	last := len(capNames) - 1
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 0 {
			last = min(n, last)
		}
	}
	return append([]string(nil), capNames[:last+1]...)
}
