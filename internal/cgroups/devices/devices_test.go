package devices

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64(v int64) *int64 { return &v }

func TestNormaliseAndV1Writes(t *testing.T) {
	rules, err := Normalise([]specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "wr"},
		{Allow: true, Type: "b", Major: i64(8), Access: "m"},
		{Allow: false, Type: "c", Major: i64(-1), Minor: i64(7)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := V1Writes(rules)
	want := []V1Write{
		{"devices.deny", "a *:* rwm"},
		{"devices.deny", "a *:* rwm"},
		{"devices.allow", "c 1:3 rw"},
		{"devices.allow", "b 8:* m"},
		{"devices.deny", "c *:7 rwm"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("V1Writes = %q\nwant %q", got, want)
	}
	for _, bad := range []specs.LinuxDeviceCgroup{{Type: "x"}, {Access: "rwx"}, {Type: "c", Major: i64(1 << 40)}} {
		if _, err := Normalise([]specs.LinuxDeviceCgroup{bad}); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("Normalise(%+v) = %v", bad, err)
		}
	}
}

// run interprets a compiled program the way the kernel would, so the
// semantics are tested without root; the real kernel check is in the
// cgroups package tests (TestRealV2).
func run(t *testing.T, p *Program, typ, access, major, minor uint32) uint64 {
	t.Helper()
	var r [11]uint64
	ctx := [3]uint32{access<<16 | typ, major, minor}
	for pc := 0; pc < len(p.insns); pc++ {
		in := p.insns[pc]
		switch in.code {
		case opLdxW:
			r[in.dst] = uint64(ctx[in.off/4])
		case opAndK:
			r[in.dst] &= uint64(int64(in.imm))
		case opRshK:
			r[in.dst] >>= uint(in.imm)
		case opMovX:
			r[in.dst] = r[in.src]
		case opMovK:
			r[in.dst] = uint64(int64(in.imm))
		case opJneK:
			if r[in.dst] != uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case opJneX:
			if r[in.dst] != r[in.src] {
				pc += int(in.off)
			}
		case opJeqK:
			if r[in.dst] == uint64(int64(in.imm)) {
				pc += int(in.off)
			}
		case opExit:
			return r[0]
		default:
			t.Fatalf("unknown opcode %#x", in.code)
		}
	}
	t.Fatal("fell off the end")
	return 0
}

func TestCompileSemantics(t *testing.T) {
	rules, err := Normalise(append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, append(Defaults(),
		specs.LinuxDeviceCgroup{Allow: false, Type: "c", Major: i64(1), Minor: i64(7), Access: "w"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64(8), Minor: i64(0), Access: "r"},
	)...))
	if err != nil {
		t.Fatal(err)
	}
	p := Compile(rules)
	for _, c := range []struct {
		name                      string
		typ, access, major, minor uint32
		want                      uint64
	}{
		{"null rw", devChar, accRead | accWrite, 1, 3, 1},
		{"full read", devChar, accRead, 1, 7, 1},
		{"full write (denied later)", devChar, accWrite, 1, 7, 0},
		{"full rw (partly denied)", devChar, accRead | accWrite, 1, 7, 0},
		{"pts any minor", devChar, accRead, 136, 42, 1},
		{"mknod any char", devChar, accMknod, 250, 1, 1},
		{"open unknown char", devChar, accRead, 250, 1, 0},
		{"sda read", devBlock, accRead, 8, 0, 1},
		{"sda write", devBlock, accWrite, 8, 0, 0},
		{"null as block", devBlock, accRead, 1, 3, 0},
	} {
		if got := run(t, p, c.typ, c.access, c.major, c.minor); got != c.want {
			t.Errorf("%s: verdict %d, want %d", c.name, got, c.want)
		}
	}

	// An allow-all rule last shadows everything before it: nothing
	// unreachable may be emitted (the verifier rejects dead code).
	all, _ := Normalise([]specs.LinuxDeviceCgroup{{Allow: false}, {Allow: true}})
	p = Compile(all)
	if p.Len() != 8 {
		t.Errorf("allow-all program has %d instructions, want 8", p.Len())
	}
	if run(t, p, devBlock, accWrite, 8, 0) != 1 {
		t.Error("allow-all denied")
	}
	if none := Compile(nil); run(t, none, devChar, accRead, 1, 3) != 0 {
		t.Error("empty rule list allowed access")
	}
}

// The kernel verifier accepts what Compile emits, for the shapes a runtime
// produces (no cgroup needed to load a program).
func TestLoadVerifier(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, list := range [][]specs.LinuxDeviceCgroup{
		nil,
		{{Allow: true}},
		append([]specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, Defaults()...),
		{{Allow: true}, {Allow: false, Type: "b", Access: "w"}},
	} {
		rules, err := Normalise(list)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := Compile(rules).Load()
		if err != nil {
			t.Fatalf("load %d rules: %v", len(rules), err)
		}
		unix.Close(fd)
	}
}

func TestV1Transition(t *testing.T) {
	norm := func(l []specs.LinuxDeviceCgroup) []Rule {
		r, err := Normalise(l)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	c := func(major, minor int64, acc string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: &major, Minor: &minor, Access: acc}
	}
	curList := "c 1:3 rwm\nc 1:5 rw\nc 1:7 rwm\n"
	cur, known, err := ParseV1List(curList)
	if err != nil || !known || len(cur.Exceptions) != 3 {
		t.Fatalf("ParseV1List = %+v, %v, %v", cur, known, err)
	}
	want := Target(norm([]specs.LinuxDeviceCgroup{{Allow: false}, c(1, 3, "rwm"), c(1, 5, "rwm"), c(1, 9, "r"),
		{Allow: false, Type: "c", Major: i64(1), Minor: i64(5), Access: "m"}}))
	got, ok := V1Transition(cur, want)
	if !ok {
		t.Fatal("no transition between two default-deny states")
	}
	exp := []V1Write{
		{"devices.allow", "c 1:9 r"},
		{"devices.deny", "c 1:7 rwm"},
	}
	if !slices.Equal(got, exp) {
		t.Errorf("transition = %q, want %q", got, exp)
	}
	// Applying it to cur reaches want.
	for _, w := range got {
		r := norm([]specs.LinuxDeviceCgroup{{}})[0]
		fmt.Sscanf(w.Line, "%c %d:%d %s", &r.Type, &r.Major, &r.Minor, &r.Access)
		cur.Apply(w.File == "devices.allow", r)
	}
	if fmt.Sprint(cur) != fmt.Sprint(want) {
		t.Errorf("after transition %v, want %v", cur, want)
	}
	if _, known, _ := ParseV1List("a *:* rwm\n"); known {
		t.Error("default-allow list reported as fully known")
	}
}
