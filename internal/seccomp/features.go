package seccomp

import (
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
)

// Features describes seccomp support for the `features` command
// (runtime-spec features-linux.md "Seccomp"). SupportedFlags probes the
// running kernel: seccomp(SECCOMP_SET_MODE_FILTER, flag, NULL) fails with
// EFAULT when the flag is known (it got as far as reading the program) and
// with EINVAL when it is not.
func Features() *features.Seccomp {
	enabled := true
	f := &features.Seccomp{Enabled: &enabled}
	for _, a := range knownActions {
		f.Actions = append(f.Actions, string(a))
	}
	for _, o := range knownOps {
		f.Operators = append(f.Operators, string(o))
	}
	for _, a := range knownArches {
		f.Archs = append(f.Archs, string(a))
	}
	f.KnownFlags = []string{}
	f.SupportedFlags = []string{}
	for _, k := range knownFlags {
		f.KnownFlags = append(f.KnownFlags, string(k.name))
		if flagSupported(k.bit) {
			f.SupportedFlags = append(f.SupportedFlags, string(k.name))
		}
	}
	return f
}

func flagSupported(bit uint32) bool {
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(bit), 0)
	return errno == unix.EFAULT
}
