package seccomp

import (
	"runtime"
	"sort"

	"github.com/opencontainers/runtime-spec/specs-go"
)

//go:generate go run gen_syscalls.go

// archIndex selects a column of syscallTable.
type archIndex int

const (
	archX86_64 archIndex = iota
	archX86
	archX32
	archAARCH64
	archARM
	numArches
)

// syscallEntry is one row of the generated syscallTable.
type syscallEntry struct {
	name string
	nr   [numArches]int32
}

// Audit architecture values as the kernel reports them in seccomp_data.arch
// (include/uapi/linux/audit.h). x32 shares AUDIT_ARCH_X86_64 and is told apart
// by __X32_SYSCALL_BIT in the syscall number.
const (
	auditArchX86_64  = 0xc000003e
	auditArchI386    = 0x40000003
	auditArchAARCH64 = 0xc00000b7
	auditArchARM     = 0x40000028

	x32SyscallBit = 0x40000000
)

// archInfo describes one ABI the filter can match.
type archInfo struct {
	spec  specs.Arch
	index archIndex
	audit uint32
	// bits32 means syscall arguments are 32 bits wide for this ABI: like
	// libseccomp, only the low half of an argument is compared.
	bits32 bool
}

var archInfos = [numArches]archInfo{
	archX86_64:  {specs.ArchX86_64, archX86_64, auditArchX86_64, false},
	archX86:     {specs.ArchX86, archX86, auditArchI386, true},
	archX32:     {specs.ArchX32, archX32, auditArchX86_64, true},
	archAARCH64: {specs.ArchAARCH64, archAARCH64, auditArchAARCH64, false},
	archARM:     {specs.ArchARM, archARM, auditArchARM, true},
}

// knownArches lists every SCMP_ARCH_* name of runtime-spec v1.3 (config-linux.md
// "Seccomp"). All are accepted; only those the native kernel can execute
// (see hostArches) end up in the filter, the rest could never match.
var knownArches = []specs.Arch{
	specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
	specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
	specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
	specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
	specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
	specs.ArchSH, specs.ArchSHEB,
}

// hostArches returns the native ABI first, then the compat ABIs the kernel of
// this GOARCH can run. ok is false when hako has no syscall table for the
// native architecture.
func hostArches(goarch string) (native archIndex, compat []archIndex, ok bool) {
	switch goarch {
	case "amd64":
		return archX86_64, []archIndex{archX86, archX32}, true
	case "arm64":
		return archAARCH64, []archIndex{archARM}, true
	case "386":
		return archX86, nil, true
	case "arm":
		return archARM, nil, true
	}
	return 0, nil, false
}

func nativeGOARCH() string { return runtime.GOARCH }

// lookupSyscall returns the row for name, or nil when no table knows it.
func lookupSyscall(name string) *syscallEntry {
	i := sort.Search(len(syscallTable), func(i int) bool { return syscallTable[i].name >= name })
	if i < len(syscallTable) && syscallTable[i].name == name {
		return &syscallTable[i]
	}
	return nil
}

// SyscallNumber reports the number of a syscall for an architecture, as the
// filter will match it (x32 numbers include __X32_SYSCALL_BIT).
func SyscallNumber(arch specs.Arch, name string) (uint32, bool) {
	for _, a := range archInfos {
		if a.spec != arch {
			continue
		}
		e := lookupSyscall(name)
		if e == nil || e.nr[a.index] < 0 {
			return 0, false
		}
		nr := uint32(e.nr[a.index])
		if a.index == archX32 {
			nr |= x32SyscallBit
		}
		return nr, true
	}
	return 0, false
}
