package seccomp

import (
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var dockerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func BenchmarkCompileDefaultProfile(b *testing.B) {
	s := DefaultProfile(dockerCaps)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileCachedHit(b *testing.B) {
	s := DefaultProfile(dockerCaps)
	dir := b.TempDir()
	if _, err := CompileCached(dir, s); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileCached(dir, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDefaultProfile(b *testing.B) {
	for b.Loop() {
		DefaultProfile(dockerCaps)
	}
}

// steps interprets p (the opcodes the generator emits) and returns the
// result and how many instructions ran.
func steps(p *Program, nr, arch uint32, args [6]uint64) (ret uint32, n int) {
	var acc uint32
	load := func(off uint32) uint32 {
		switch {
		case off == offNr:
			return nr
		case off == offArch:
			return arch
		case off >= offArgs:
			a := args[(off-offArgs)/8]
			if (off-offArgs)%8 == 4 {
				return uint32(a >> 32)
			}
			return uint32(a)
		}
		return 0
	}
	for pc := 0; pc < len(p.filter); pc++ {
		in := p.filter[pc]
		n++
		cond := func(ok bool) {
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case opLdAbsW:
			acc = load(in.K)
		case opAndK:
			acc &= in.K
		case opRetK:
			return in.K, n
		case opJa:
			pc += int(in.K)
		case opJeqK:
			cond(acc == in.K)
		case opJgtK:
			cond(acc > in.K)
		case opJgeK:
			cond(acc >= in.K)
		case opJsetK:
			cond(acc&in.K != 0)
		default:
			panic(in.Code)
		}
	}
	panic("fell off the program")
}

// TestDefaultProfileShape reports the size of Docker's profile as compiled
// and bounds how many instructions one syscall costs: a linear scan over
// ~350 names would need hundreds.
func TestDefaultProfileShape(t *testing.T) {
	if nativeGOARCH() != "amd64" {
		t.Skip("x86_64 numbers")
	}
	s := DefaultProfile(dockerCaps)
	names := 0
	for _, sc := range s.Syscalls {
		names += len(sc.Names)
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	worst, total, count := 0, 0, 0
	for nr := uint32(0); nr < 480; nr++ {
		_, n := steps(p, nr, auditArchX86_64, [6]uint64{})
		worst = max(worst, n)
		total += n
		count++
	}
	t.Logf("docker profile: %d rules, %d names -> %d instructions; x86_64 syscall path: avg %.1f, worst %d",
		len(s.Syscalls), names, p.Instructions(), float64(total)/float64(count), worst)
	if names < 300 {
		t.Errorf("profile has only %d names; expected Docker's ~350", names)
	}
	if worst > 40 {
		t.Errorf("worst path %d instructions; the search tree is not doing its job", worst)
	}
	// Spot checks with the kernel's numbers.
	for _, c := range []struct {
		nr   uint32
		want uint32
	}{
		{unix.SYS_READ, unix.SECCOMP_RET_ALLOW},
		{unix.SYS_MKDIRAT, unix.SECCOMP_RET_ALLOW},
		{unix.SYS_KEXEC_LOAD, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{unix.SYS_UNSHARE, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{unix.SYS_CLONE3, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{999, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	} {
		if got, _ := steps(p, c.nr, auditArchX86_64, [6]uint64{}); got != c.want {
			t.Errorf("nr %d: got %#x, want %#x", c.nr, got, c.want)
		}
	}
	_ = specs.ActAllow
}
