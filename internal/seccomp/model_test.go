package seccomp

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// This file checks the generated BPF against a direct reading of the spec
// (refEval): a linear walk over the rules with 64-bit arithmetic, sharing no
// code with the range/tree generator. Programs run in golang.org/x/net/bpf's
// interpreter.

type abi struct {
	idx   archIndex
	audit uint32
}

var testABIs = []abi{
	{archX86_64, auditArchX86_64},
	{archX86, auditArchI386},
	{archX32, auditArchX86_64},
	{archAARCH64, auditArchAARCH64},
	{archARM, auditArchARM},
}

// seccompData lays out struct seccomp_data for the interpreter. x/net/bpf
// loads words big-endian, so each 32-bit word is stored big-endian at the
// offset the little-endian kernel layout gives it.
func seccompData(nr, arch uint32, args [6]uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

func newVM(t testing.TB, p *Program) *bpf.VM {
	t.Helper()
	raw := make([]bpf.RawInstruction, len(p.filter))
	for i, in := range p.filter {
		raw[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble")
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("interpreter refuses program: %v", err)
	}
	return vm
}

func runVM(t testing.TB, vm *bpf.VM, nr, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	r, err := vm.Run(seccompData(nr, arch, args))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return uint32(r)
}

func condHolds(op specs.LinuxSeccompOperator, arg, v, v2 uint64, bits32 bool) bool {
	if bits32 {
		arg, v, v2 = uint64(uint32(arg)), uint64(uint32(v)), uint64(uint32(v2))
	}
	switch op {
	case specs.OpEqualTo:
		return arg == v
	case specs.OpNotEqual:
		return arg != v
	case specs.OpLessThan:
		return arg < v
	case specs.OpLessEqual:
		return arg <= v
	case specs.OpGreaterThan:
		return arg > v
	case specs.OpGreaterEqual:
		return arg >= v
	case specs.OpMaskedEqual:
		return arg&v == v2
	}
	panic(op)
}

// refEval is the reference semantics (see Compile's doc comment), for a
// program compiled with native x86_64 and compat x86/x32.
func refEval(s *specs.LinuxSeccomp, native archIndex, compat []archIndex, audit, nr uint32, args [6]uint64) uint32 {
	defRet, _ := actionRet(s.DefaultAction, s.DefaultErrnoRet)
	enabled := map[archIndex]bool{native: true}
	for _, a := range s.Architectures {
		for _, c := range compat {
			if archInfos[c].spec == a {
				enabled[c] = true
			}
		}
	}
	var ai archIndex = -1
	for _, c := range append([]archIndex{native}, compat...) {
		if archInfos[c].audit == audit && enabled[c] && c != archX32 {
			ai = c
		}
	}
	if ai < 0 {
		return retBadArch
	}
	if ai == archX86_64 && nr >= x32SyscallBit && nr != 0xffffffff {
		if !enabled[archX32] {
			return retBadArch
		}
		ai = archX32
		nr &^= x32SyscallBit
	}
	bits32 := archInfos[ai].bits32
	var ruleRet *uint32
	var uncond *uint32
	maxNr := int64(-1)
	for _, sc := range s.Syscalls {
		ret, _ := actionRet(sc.Action, sc.ErrnoRet)
		names := false
		for _, n := range sc.Names {
			e := lookupSyscall(n)
			if e == nil || e.nr[ai] < 0 {
				continue
			}
			maxNr = max(maxNr, int64(e.nr[ai]))
			if uint32(e.nr[ai]) == nr {
				names = true
			}
		}
		if !names || ret == defRet {
			continue
		}
		if len(sc.Args) == 0 {
			if uncond == nil {
				uncond = &ret
			}
			continue
		}
		idx := map[uint]int{}
		for _, a := range sc.Args {
			idx[a.Index]++
		}
		orMode := false
		for _, c := range idx {
			orMode = orMode || c > 1
		}
		all := true
		anyHold := false
		for _, a := range sc.Args {
			h := condHolds(a.Op, args[a.Index], a.Value, a.ValueTwo, bits32)
			all = all && h
			anyHold = anyHold || h
		}
		if ruleRet == nil && ((orMode && anyHold) || (!orMode && all)) {
			ruleRet = &ret
		}
	}
	if ruleRet != nil {
		return *ruleRet
	}
	if uncond != nil {
		return *uncond
	}
	stub := !slices.Contains([]specs.LinuxSeccompAction{specs.ActAllow, specs.ActLog, specs.ActTrace}, s.DefaultAction) &&
		!(s.DefaultErrnoRet != nil && *s.DefaultErrnoRet == uint(unix.ENOSYS))
	if stub && maxNr >= 0 && int64(nr) > maxNr && !(ai == archX86_64 && nr == 0xffffffff) {
		return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	}
	return defRet
}

var interestingArgs = []uint64{
	0, 1, 2, 5, 8, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	0x100000000, 0x100000005, 0x200000005, 0xffffffff00000000, 0xffffffffffffffff,
	0x7e020000, 0x10000,
}

// checkAgainstModel runs many inputs through the program and refEval.
func checkAgainstModel(t testing.TB, s *specs.LinuxSeccomp, p *Program, seed uint64, rounds int) {
	t.Helper()
	checkAgainstModelFor(t, s, p, archX86_64, []archIndex{archX86, archX32}, seed, rounds)
}

func checkAgainstModelFor(t testing.TB, s *specs.LinuxSeccomp, p *Program, native archIndex, compat []archIndex, seed uint64, rounds int) {
	t.Helper()
	vm := newVM(t, p)
	var nrs []uint32
	for _, sc := range s.Syscalls {
		for _, n := range sc.Names {
			for _, a := range append([]archIndex{native}, compat...) {
				if nr, ok := SyscallNumber(archInfos[a].spec, n); ok {
					nrs = append(nrs, nr, nr+1, nr-1)
				}
			}
		}
	}
	nrs = append(nrs, 0, 1, 334, 335, 460, 1000, 0x3fffffff, 0x40000000, 0x40000001, 0x40000200, 0xffffffff, 0xfffffffe)
	x := seed | 1
	rnd := func() uint64 { // xorshift, deterministic
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return x
	}
	audits := []uint32{auditArchX86_64, auditArchI386, auditArchAARCH64, auditArchARM}
	for i := 0; i < rounds; i++ {
		nr := nrs[rnd()%uint64(len(nrs))]
		audit := audits[rnd()%uint64(len(audits))]
		var args [6]uint64
		for j := range args {
			if rnd()%4 == 0 {
				args[j] = rnd()
			} else {
				args[j] = interestingArgs[rnd()%uint64(len(interestingArgs))]
			}
		}
		got := runVM(t, vm, nr, audit, args)
		want := refEval(s, native, compat, audit, nr, args)
		if got != want {
			t.Fatalf("arch %#x nr %#x args %#x: filter returns %#x, spec says %#x", audit, nr, args, got, want)
		}
	}
}

func u(v uint) *uint { return &v }

func TestModelHandwritten(t *testing.T) {
	if nativeGOARCH() != "amd64" {
		t.Skip("model expects an x86_64 host")
	}
	cases := []*specs.LinuxSeccomp{
		{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
		}},
		{DefaultAction: specs.ActErrno, DefaultErrnoRet: u(1), Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write", "rt_sigaction"}, Action: specs.ActAllow},
				{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpNotEqual}}},
				{Names: []string{"getpid"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: 0x100000005, Op: specs.OpEqualTo}, {Index: 1, Value: 0x100000000, Op: specs.OpGreaterThan}}},
				{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 40, Op: specs.OpNotEqual}, {Index: 0, Value: 2, Op: specs.OpLessEqual}}},
			}},
		DefaultProfile([]string{"CAP_CHOWN", "CAP_SYS_ADMIN"}),
		DefaultProfile(nil),
	}
	for i, s := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p, err := Compile(s)
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstModel(t, s, p, uint64(i+1)*7919, 20000)
		})
	}
}

// TestModelARM64 compiles for an arm64 host (aarch64 + arm compat) and
// checks it the same way; the kernel tests only cover x86_64.
func TestModelARM64(t *testing.T) {
	for i, s := range []*specs.LinuxSeccomp{
		DefaultProfile(nil),
		{DefaultAction: specs.ActKillProcess, Architectures: []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "cacheflush", "set_tls", "openat"}, Action: specs.ActAllow},
			{Names: []string{"mkdirat", "_llseek"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0x1ff, Op: specs.OpGreaterEqual}}},
		}},
		bigSpec(),
	} {
		p, err := compileFor(s, archAARCH64, []archIndex{archARM})
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstModelFor(t, s, p, archAARCH64, []archIndex{archARM}, uint64(i+3), 20000)
	}
}
