package seccomp

import (
	"runtime"
	"slices"
	"strconv"
	"strings"

	moby "github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultProfile returns Docker's default seccomp profile
// (github.com/moby/profiles/seccomp) as a runtime-spec section, with its
// conditionals resolved for this host and for a container whose bounding set
// is caps: rules that need a capability appear only when caps has it, rules
// that need another architecture or a newer kernel are left out.
//
// It resolves the conditionals itself rather than calling
// moby.GetDefaultProfile, which fails when the kernel release string does not
// parse; here such a kernel is assumed to be new enough.
func DefaultProfile(caps []string) *specs.LinuxSeccomp {
	p := moby.DefaultProfile()
	out := p.LinuxSeccomp // copy of the scalar fields
	out.Syscalls = nil
	out.Architectures = nil

	native := mobyArch(runtime.GOARCH)
	for _, a := range p.ArchMap {
		if string(a.Arch) == nativeSpecArch(runtime.GOARCH) {
			out.Architectures = append(append(out.Architectures, a.Arch), a.SubArches...)
			break
		}
	}
	kernel := hostKernel()
	for _, sc := range p.Syscalls {
		if sc.Excludes != nil && filterHolds(sc.Excludes, native, caps, kernel, false) {
			continue
		}
		if sc.Includes != nil && !filterHolds(sc.Includes, native, caps, kernel, true) {
			continue
		}
		r := sc.LinuxSyscall
		if sc.Name != "" && len(r.Names) == 0 {
			r.Names = []string{sc.Name}
		}
		out.Syscalls = append(out.Syscalls, r)
	}
	return &out
}

// filterHolds evaluates a moby include (all must hold) or exclude (any holds)
// filter.
func filterHolds(f *moby.Filter, arch string, caps []string, kernel [2]uint64, include bool) bool {
	var conds []bool
	if len(f.Arches) > 0 {
		conds = append(conds, slices.Contains(f.Arches, arch))
	}
	if len(f.Caps) > 0 {
		if include {
			all := true
			for _, c := range f.Caps {
				all = all && slices.Contains(caps, c)
			}
			conds = append(conds, all)
		} else {
			any := false
			for _, c := range f.Caps {
				any = any || slices.Contains(caps, c)
			}
			conds = append(conds, any)
		}
	}
	if f.MinKernel != nil {
		min := [2]uint64{f.MinKernel.Kernel, f.MinKernel.Major}
		conds = append(conds, kernel[0] > min[0] || (kernel[0] == min[0] && kernel[1] >= min[1]))
	}
	if include {
		return !slices.Contains(conds, false)
	}
	return slices.Contains(conds, true)
}

// hostKernel returns (version, major) of the running kernel, or a very large
// version when the release does not parse.
func hostKernel() [2]uint64 {
	newest := [2]uint64{1 << 32, 0}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return newest
	}
	rel := unix.ByteSliceToString(u.Release[:])
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return newest
	}
	k, err1 := strconv.ParseUint(parts[0], 10, 32)
	m, err2 := strconv.ParseUint(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }), 10, 32)
	if err1 != nil || err2 != nil {
		return newest
	}
	return [2]uint64{k, m}
}

// mobyArch is the architecture name moby's include/exclude filters use
// (libseccomp's spelling).
func mobyArch(goarch string) string {
	switch goarch {
	case "386":
		return "x86"
	case "loong64":
		return "loongarch64"
	case "mips64le":
		return "mipsel64"
	case "mipsle":
		return "mipsel"
	}
	return goarch
}

func nativeSpecArch(goarch string) string {
	switch goarch {
	case "amd64":
		return string(specs.ArchX86_64)
	case "arm64":
		return string(specs.ArchAARCH64)
	case "386":
		return string(specs.ArchX86)
	case "arm":
		return string(specs.ArchARM)
	case "s390x":
		return string(specs.ArchS390X)
	case "ppc64le":
		return string(specs.ArchPPC64LE)
	case "riscv64":
		return string(specs.ArchRISCV64)
	case "loong64":
		return string(specs.ArchLOONGARCH64)
	}
	return ""
}
