package seccomp

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// linearProgram compiles s the way a naive compiler would: one jeq per
// syscall name, in profile order, argument rules ignored. Only for the
// overhead comparison.
func linearProgram(s *specs.LinuxSeccomp) *Program {
	var a assembler
	defRet, _ := actionRet(s.DefaultAction, s.DefaultErrnoRet)
	a.ldAbs(offArch)
	native := a.newLabel()
	a.jmp(opJeqK, auditArchX86_64, native, labelNext)
	a.ret(retBadArch)
	a.place(native)
	a.ldAbs(offNr)
	for _, sc := range s.Syscalls {
		if len(sc.Args) > 0 {
			continue
		}
		ret, _ := actionRet(sc.Action, sc.ErrnoRet)
		for _, n := range sc.Names {
			nr, ok := SyscallNumber(specs.ArchX86_64, n)
			if !ok {
				continue
			}
			next := a.newLabel()
			a.jmp(opJeqK, nr, labelNext, next)
			a.ret(ret)
			a.place(next)
		}
	}
	a.ret(defRet)
	f, err := a.assemble()
	if err != nil {
		panic(err)
	}
	return &Program{filter: f}
}

// timeSyscall is the cost of a raw syscall in the calling thread (best mean
// of several rounds).
func timeSyscall(nr uintptr) time.Duration {
	const n = 50000
	best := time.Duration(1 << 62)
	for range 7 {
		start := time.Now()
		for range n {
			unix.RawSyscall(nr, 0, 0, 0)
		}
		best = min(best, time.Since(start)/n)
	}
	return best
}

func overheadChild(kind string) int {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	// Since Linux 5.11 the kernel skips filters for syscalls they allow
	// whatever the arguments (the seccomp action cache), so an allowed call
	// measures nothing. umount2 is denied without CAP_SYS_ADMIN and is named
	// nowhere in the unconditional lists: the filter runs in full.
	// umount2(NULL, 0) fails with EFAULT when unfiltered.
	nr := uintptr(unix.SYS_UMOUNT2)
	base := timeSyscall(nr)
	s := DefaultProfile(dockerCaps)
	var p *Program
	if kind == "tree" {
		var err error
		if p, err = Compile(s); err != nil {
			fmt.Println(err)
			return 1
		}
	} else {
		p = linearProgram(s)
	}
	if _, err := p.Load(); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%d %d %d\n", base.Nanoseconds(), timeSyscall(nr).Nanoseconds(), p.Instructions())
	return 0
}

// TestFilterOverhead loads Docker's profile compiled by hako and as a naive
// linear scan and reports what one syscall costs under each. It logs, it
// does not assert: timings on a shared CI machine are noise.
func TestFilterOverhead(t *testing.T) {
	requireSeccomp(t)
	if testing.Short() {
		t.Skip("timing only")
	}
	for _, kind := range []string{"tree", "linear"} {
		r := runChild(t, "overhead-"+kind)
		var base, filtered, insns int
		if _, err := fmt.Sscan(strings.TrimSpace(r.stdout), &base, &filtered, &insns); err != nil {
			t.Fatalf("%s: %q %q", kind, r.stdout, r.stderr)
		}
		t.Logf("%-6s %4d instructions: umount2 %d ns unfiltered, %d ns filtered", kind, insns, base, filtered)
	}
}

var _ = os.Getpid
