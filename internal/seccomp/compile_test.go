package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestCompileRejects(t *testing.T) {
	ok := specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActAllow}
	cases := []struct {
		name string
		s    specs.LinuxSeccomp
		want string
	}{
		{"nil default", specs.LinuxSeccomp{}, "action is empty"},
		{"unknown default", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_FOO"}, `unknown action "SCMP_ACT_FOO"`},
		{"notify default", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "cannot be the default action"},
		{"unknown rule action", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: "SCMP_ACT_NOPE"}}}, "syscalls[0] [read]"},
		{"unknown op", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ABOUT"}}}}}, `unknown operator "SCMP_CMP_ABOUT"`},
		{"arg index", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, "index 6 out of range"},
		{"unknown arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, `unknown architecture "SCMP_ARCH_Z80"`},
		{"unknown flag", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_FAST"}}, "unknown flag"},
		{"no names", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Action: specs.ActErrno}}}, "no syscall names"},
		{"empty name", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{""}, Action: specs.ActErrno}}}, "empty syscall name"},
		{"errno too big", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: u(70000), Syscalls: []specs.LinuxSyscall{ok}}, "does not fit"},
		{"notify without listener", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActNotify}}}, "needs listenerPath"},
		{"notify write", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/x", Syscalls: []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActNotify}}}, "cannot be used for write"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(&c.s)
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
	if _, err := Compile(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil section: %v", err)
	}
}

func TestCompileAccepts(t *testing.T) {
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		// Foreign architectures are accepted (they cannot occur here).
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchS390X, specs.ArchPPC64LE},
		Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog,
			specs.LinuxSeccompFlagSpecAllow, specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{
			// Unknown names are skipped, like runc.
			{Names: []string{"read", "no_such_syscall_ever"}, Action: specs.ActAllow},
			{Names: []string{"ptrace"}, Action: specs.ActTrace},
		},
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	// TSYNC is dropped, WAIT_KILLABLE_RECV needs a listener.
	if want := uint32(flagLog | flagSpecAllow); p.flags != want {
		t.Errorf("flags %#x, want %#x", p.flags, want)
	}
	if p.NeedsListener() {
		t.Errorf("no NOTIFY rule, no listener")
	}
	s.ListenerPath = "/run/l.sock"
	s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"mkdir"}, Action: specs.ActNotify})
	if p, err = Compile(s); err != nil {
		t.Fatal(err)
	}
	if want := uint32(flagLog | flagSpecAllow | flagNewListener | flagWaitKillableRecv); p.flags != want {
		t.Errorf("flags %#x, want %#x", p.flags, want)
	}
}

// bigSpec has many syscalls with conditional rules of different values, so
// the tree's jumps span more than 255 instructions and need trampolines.
func bigSpec() *specs.LinuxSeccomp {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86, specs.ArchX32}}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpGreaterThan, specs.OpMaskedEqual, specs.OpLessThan, specs.OpNotEqual}
	for i, e := range syscallTable {
		if i%3 != 1 {
			continue
		}
		r := specs.LinuxSyscall{Names: []string{e.name}, Action: specs.ActAllow}
		if i%4 != 0 {
			r.Action = specs.ActErrno
			r.ErrnoRet = u(uint(i % 100))
			r.Args = []specs.LinuxSeccompArg{
				{Index: uint(i % 6), Op: ops[i%len(ops)], Value: uint64(i) << (i % 40), ValueTwo: uint64(i)},
				{Index: uint((i + 1) % 6), Op: ops[(i+1)%len(ops)], Value: 5},
			}
		}
		s.Syscalls = append(s.Syscalls, r)
	}
	return s
}

func TestLongJumps(t *testing.T) {
	if nativeGOARCH() != "amd64" {
		t.Skip("model expects an x86_64 host")
	}
	s := bigSpec()
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	tramps := 0
	for _, in := range p.filter {
		if in.Code == opJa && in.K > 255 {
			tramps++
		}
	}
	t.Logf("%d instructions, %d long jumps", p.Instructions(), tramps)
	if tramps == 0 {
		t.Fatalf("expected long jumps in a %d-instruction program", p.Instructions())
	}
	checkAgainstModel(t, s, p, 42, 50000)
}

func TestMarshalRoundTrip(t *testing.T) {
	s := DefaultProfile(dockerCaps)
	s.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.MarshalBinary()
	var q Program
	if err := q.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.filter, q.filter) || p.flags != q.flags {
		t.Fatal("round trip changed the program")
	}
	bad := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), b[4:]...),
		"truncated": b[:len(b)-3],
		"version":   slices.Concat(b[:4], []byte{9, 0, 0, 0}, b[8:]),
	}
	jump := slices.Clone(b)
	// Make the last conditional jump point past the end.
	for i := len(jump) - 8; i >= headerLen; i -= 8 {
		if isCond(uint16(jump[i]) | uint16(jump[i+1])<<8) {
			jump[i+2] = 255
			break
		}
	}
	bad["jump"] = jump
	noret := slices.Clone(b)
	noret[len(noret)-8] = byte(opLdAbsW)
	bad["no ret"] = noret
	for name, data := range bad {
		if err := new(Program).UnmarshalBinary(data); !errors.Is(err, ErrBadProgram) {
			t.Errorf("%s: err = %v, want ErrBadProgram", name, err)
		}
	}
}

func TestCompileCached(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := DefaultProfile(dockerCaps)
	p1, err := CompileCached(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != CacheKey(s)+".bpf" {
		t.Fatalf("cache dir holds %v", entries)
	}
	p2, err := CompileCached(dir, s)
	if err != nil || !slices.Equal(p1.filter, p2.filter) {
		t.Fatalf("cached program differs: %v", err)
	}
	// A different section gets a different key.
	s2 := DefaultProfile(append(slices.Clone(dockerCaps), "CAP_SYS_ADMIN"))
	if CacheKey(s2) == CacheKey(s) {
		t.Fatal("different profiles share a cache key")
	}
	// A corrupt entry is recompiled and replaced.
	path := filepath.Join(dir, CacheKey(s)+".bpf")
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	p3, err := CompileCached(dir, s)
	if err != nil || !slices.Equal(p1.filter, p3.filter) {
		t.Fatalf("after corruption: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) == "garbage" {
		t.Error("corrupt entry not replaced")
	}
}

func TestDefaultProfileCaps(t *testing.T) {
	has := func(s *specs.LinuxSeccomp, name string, act specs.LinuxSeccompAction) bool {
		for _, r := range s.Syscalls {
			if r.Action == act && len(r.Args) == 0 && slices.Contains(r.Names, name) {
				return true
			}
		}
		return false
	}
	plain := DefaultProfile(dockerCaps)
	admin := DefaultProfile(append(slices.Clone(dockerCaps), "CAP_SYS_ADMIN"))
	if plain.DefaultAction != specs.ActErrno || plain.DefaultErrnoRet == nil || *plain.DefaultErrnoRet != uint(unix.EPERM) {
		t.Errorf("default action %s/%v", plain.DefaultAction, plain.DefaultErrnoRet)
	}
	if has(plain, "unshare", specs.ActAllow) || !has(admin, "unshare", specs.ActAllow) {
		t.Error("unshare should be allowed only with CAP_SYS_ADMIN")
	}
	if !has(plain, "read", specs.ActAllow) {
		t.Error("read not allowed")
	}
	if nativeGOARCH() == "amd64" && !slices.Equal(plain.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", plain.Architectures)
	}
	// Must be a valid runtime-spec section.
	b, err := json.Marshal(plain)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.LinuxSeccomp
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(&back); err != nil {
		t.Fatal(err)
	}
}

func TestFeatures(t *testing.T) {
	f := Features()
	if f.Enabled == nil || !*f.Enabled {
		t.Fatal("not enabled")
	}
	for _, want := range []string{"SCMP_ACT_NOTIFY", "SCMP_ACT_KILL_PROCESS"} {
		if !slices.Contains(f.Actions, want) {
			t.Errorf("actions lack %s", want)
		}
	}
	if len(f.Operators) != 7 || !slices.Contains(f.Archs, "SCMP_ARCH_X32") {
		t.Errorf("operators %v archs %v", f.Operators, f.Archs)
	}
	// Every kernel hako runs on (>= 5.19 for WAIT_KILLABLE_RECV) knows these.
	for _, want := range []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"} {
		if !slices.Contains(f.SupportedFlags, want) {
			t.Errorf("supported flags %v lack %s", f.SupportedFlags, want)
		}
	}
	// Probing must not install anything.
	status, _ := os.ReadFile("/proc/self/status")
	if strings.Contains(string(status), "Seccomp:\t2") {
		t.Error("Features() left a filter on the test process")
	}
}

func TestSyscallNumber(t *testing.T) {
	for _, c := range []struct {
		arch specs.Arch
		name string
		nr   uint32
	}{
		{specs.ArchX86_64, "mkdirat", 258},
		{specs.ArchX86, "mkdirat", 296},
		{specs.ArchX32, "mkdirat", x32SyscallBit | 258},
		{specs.ArchX32, "rt_sigaction", x32SyscallBit | 512},
		{specs.ArchAARCH64, "mkdirat", 34},
		{specs.ArchARM, "mkdirat", 323},
	} {
		if nr, ok := SyscallNumber(c.arch, c.name); !ok || nr != c.nr {
			t.Errorf("%s %s = %d %v, want %d", c.arch, c.name, nr, ok, c.nr)
		}
	}
	if _, ok := SyscallNumber(specs.ArchAARCH64, "mkdir"); ok {
		t.Error("aarch64 has no mkdir")
	}
	if _, ok := SyscallNumber(specs.ArchX86_64, "bogus"); ok {
		t.Error("bogus syscall found")
	}
}

// FuzzCompile feeds arbitrary JSON seccomp sections to Compile: it must not
// panic, and whatever compiles must agree with the reference evaluator and
// survive a marshal round trip.
func FuzzCompile(f *testing.F) {
	seeds := []any{
		DefaultProfile(dockerCaps),
		&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: u(38)}}},
	}
	for _, s := range seeds {
		b, _ := json.Marshal(s)
		f.Add(b)
	}
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":4294967295,"op":"SCMP_CMP_NE"},{"index":0,"value":8,"op":"SCMP_CMP_LE"}]},{"names":["clone","getpid"],"action":"SCMP_ACT_TRAP","args":[{"index":1,"value":18446744069414584320,"valueTwo":4294967296,"op":"SCMP_CMP_MASKED_EQ"},{"index":2,"value":4294967297,"op":"SCMP_CMP_GE"}]}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_KILL_PROCESS","defaultErrnoRet":38,"flags":["SECCOMP_FILTER_FLAG_LOG"],"listenerPath":"/s","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"names":["mkdirat"],"action":"SCMP_ACT_NOTIFY"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.LinuxSeccomp
		if json.Unmarshal(data, &s) != nil {
			return
		}
		p, err := Compile(&s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if nativeGOARCH() == "amd64" {
			checkAgainstModel(t, &s, p, uint64(len(data))+1, 300)
		}
		b, _ := p.MarshalBinary()
		var q Program
		if err := q.UnmarshalBinary(b); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

var _ = fmt.Sprint

func TestTooLarge(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for i := range 3000 {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActErrno,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: uint64(i)}}})
	}
	if _, err := Compile(s); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "kernel allows 4096") {
		t.Fatalf("err = %v", err)
	}
}
