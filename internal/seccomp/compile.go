package seccomp

import (
	"errors"
	"fmt"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrInvalid classifies every error Compile returns for a bad spec section.
var ErrInvalid = errors.New("invalid seccomp configuration")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Filter flag bits for seccomp(2) (linux/seccomp.h).
const (
	flagTsync            = unix.SECCOMP_FILTER_FLAG_TSYNC
	flagLog              = unix.SECCOMP_FILTER_FLAG_LOG
	flagSpecAllow        = unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	flagNewListener      = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
	flagWaitKillableRecv = unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
)

type flagDef struct {
	name specs.LinuxSeccompFlag
	bit  uint32
}

var knownFlags = []flagDef{
	{"SECCOMP_FILTER_FLAG_TSYNC", flagTsync},
	{specs.LinuxSeccompFlagLog, flagLog},
	{specs.LinuxSeccompFlagSpecAllow, flagSpecAllow},
	{specs.LinuxSeccompFlagWaitKillableRecv, flagWaitKillableRecv},
}

var knownActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var knownOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

// retBadArch is what libseccomp returns for an ABI that is not in the filter
// (its default SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL); runc keeps that
// default, and so does hako.
const retBadArch = unix.SECCOMP_RET_KILL_THREAD

// actionRet converts an action to the SECCOMP_RET_* value the filter returns.
// errnoRet is the rule's (or the default's) errnoRet; ERRNO and TRACE default
// to EPERM as in runc (runtime-spec config-linux.md: "errnoRet ... defaults
// to EPERM").
func actionRet(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func() (uint32, error) {
		if errnoRet == nil {
			return uint32(unix.EPERM), nil
		}
		if *errnoRet > unix.SECCOMP_RET_DATA {
			return 0, invalidf("errnoRet %d does not fit the 16-bit SECCOMP_RET_DATA", *errnoRet)
		}
		return uint32(*errnoRet), nil
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		d, err := data()
		return unix.SECCOMP_RET_ERRNO | d, err
	case specs.ActTrace:
		d, err := data()
		return unix.SECCOMP_RET_TRACE | d, err
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	case "":
		return 0, invalidf("action is empty")
	}
	return 0, invalidf("unknown action %q", act)
}

// cond is one argument comparison, validated.
type cond struct {
	index     uint32
	op        specs.LinuxSeccompOperator
	val, val2 uint64
}

// rule is a conjunction of conditions with the value to return when all hold.
type rule struct {
	conds []cond
	ret   uint32
}

// decision is what the filter does for one syscall number: try the
// conditional rules in spec order, first match wins, else return fallback.
type decision struct {
	rules    []rule
	fallback uint32
}

func (d *decision) equal(o *decision) bool {
	return d.fallback == o.fallback && slices.EqualFunc(d.rules, o.rules, func(a, b rule) bool {
		return a.ret == b.ret && slices.Equal(a.conds, b.conds)
	})
}

// compiledRule is a spec rule after validation, before per-arch resolution.
type compiledRule struct {
	names []string
	ret   uint32
	// alts are alternatives (ORed); each is a conjunction. A rule without
	// args has one empty alternative.
	alts [][]cond
	src  int // index in the spec's syscalls
}

// Program is a compiled filter, ready to be loaded or cached.
type Program struct {
	filter []unix.SockFilter
	flags  uint32 // seccomp(2) flags, NEW_LISTENER included when notifying
}

// Instructions returns the number of BPF instructions.
func (p *Program) Instructions() int { return len(p.filter) }

// NeedsListener reports whether Load will return a notify fd.
func (p *Program) NeedsListener() bool { return p.flags&flagNewListener != 0 }

// Compile turns the spec section into a filter for the native architecture
// and the compat ABIs listed in s.Architectures (runtime-spec config-linux.md
// "Seccomp"). Semantics follow runc + libseccomp:
//   - the native ABI is always filtered; an ABI the kernel reports but the
//     spec does not list (and x32 calls on x86_64 unless SCMP_ARCH_X32 is
//     listed) gets SECCOMP_RET_KILL_THREAD, libseccomp's bad-arch action;
//   - names unknown for an ABI are skipped, not an error;
//   - a rule whose action equals the default action is dropped;
//   - conditions of a rule are ANDed, except when one argument index
//     appears twice: then each condition is its own rule (ORed), as runc
//     does (runc#2735);
//   - for one syscall, conditional rules are tried in spec order and the
//     first unconditional rule is the fallback;
//   - unless the default action is ALLOW, LOG or TRACE, or defaultErrnoRet is
//     ENOSYS, syscalls numbered above the highest one the profile names get
//     ENOSYS, so libc falls back from syscalls newer than the profile
//     (runc's patchbpf stub).
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	native, compat, ok := hostArches(nativeGOARCH())
	if !ok {
		return nil, fmt.Errorf("seccomp: no syscall table for GOARCH %s", nativeGOARCH())
	}
	return compileFor(s, native, compat)
}

func compileFor(s *specs.LinuxSeccomp, native archIndex, compat []archIndex) (*Program, error) {
	if s == nil {
		return nil, invalidf("no seccomp section")
	}
	if s.DefaultAction == specs.ActNotify {
		// runc refuses this too: every syscall of the init itself, up to
		// execve, would wait for a supervisor that has not got the fd yet.
		return nil, invalidf("SCMP_ACT_NOTIFY cannot be the default action")
	}
	defRet, err := actionRet(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("defaultAction: %w", err)
	}

	var flags uint32
	for _, f := range s.Flags {
		i := slices.IndexFunc(knownFlags, func(k flagDef) bool { return k.name == f })
		if i < 0 {
			return nil, invalidf("unknown flag %q", f)
		}
		flags |= knownFlags[i].bit
	}
	// TSYNC is accepted and ignored, as runc does: the filter is installed
	// on the thread that execs the container process, other threads die
	// with the exec.
	flags &^= flagTsync

	var enabled [numArches]bool
	enabled[native] = true
	for _, a := range s.Architectures {
		if !slices.Contains(knownArches, a) {
			return nil, invalidf("unknown architecture %q", a)
		}
		for _, c := range compat {
			if archInfos[c].spec == a {
				enabled[c] = true
			}
		}
		// Other known architectures can never appear in seccomp_data.arch
		// on this kernel; leaving them out changes nothing.
	}

	rules := make([]compiledRule, 0, len(s.Syscalls))
	notify := false
	for i, sc := range s.Syscalls {
		cr, err := compileRule(&sc)
		if err != nil {
			return nil, fmt.Errorf("syscalls[%d] %v: %w", i, sc.Names, err)
		}
		if sc.Action == specs.ActNotify {
			notify = true
			if slices.Contains(sc.Names, "write") {
				// The init reports the listener fd to its parent with
				// write(2) after loading the filter (runc has the same rule).
				return nil, invalidf("syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for write", i)
			}
		}
		if cr.ret == defRet {
			continue // redundant; runc skips it too
		}
		cr.src = i
		rules = append(rules, cr)
	}
	if notify {
		if s.ListenerPath == "" {
			return nil, invalidf("SCMP_ACT_NOTIFY needs listenerPath")
		}
		flags |= flagNewListener
	} else {
		// WAIT_KILLABLE_RECV only qualifies a listener; the kernel rejects
		// it without NEW_LISTENER.
		flags &^= flagWaitKillableRecv
	}

	stub := true
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
		stub = false
	}
	if s.DefaultErrnoRet != nil && *s.DefaultErrnoRet == uint(unix.ENOSYS) {
		stub = false
	}

	// Resolve names once; the table row carries every ABI's number.
	// Numbers named by any rule, including dropped redundant ones, count for
	// the ENOSYS boundary (runc looks at the whole profile).
	var maxNr [numArches]int32
	for a := range maxNr {
		maxNr[a] = -1
	}
	entries := make([][]*syscallEntry, len(rules))
	ri := 0
	for i := range s.Syscalls {
		kept := ri < len(rules) && rules[ri].src == i
		for _, n := range s.Syscalls[i].Names {
			e := lookupSyscall(n)
			if e == nil {
				continue
			}
			for a, nr := range e.nr {
				maxNr[a] = max(maxNr[a], nr)
			}
			if kept {
				entries[ri] = append(entries[ri], e)
			}
		}
		if kept {
			ri++
		}
	}

	g := &generator{defRet: defRet}
	for a := range numArches {
		if !enabled[a] {
			continue
		}
		t := &g.tables[a]
		t.enabled = true
		t.bits32 = archInfos[a].bits32
		t.decisions = buildDecisions(rules, entries, a, defRet)
		if stub && maxNr[a] >= 0 {
			t.enosysAbove = uint32(maxNr[a])
			t.stub = true
		}
	}
	g.native = native
	g.compat = compat
	filter, err := g.generate()
	if err != nil {
		return nil, err
	}
	return &Program{filter: filter, flags: flags}, nil
}

func compileRule(sc *specs.LinuxSyscall) (compiledRule, error) {
	if len(sc.Names) == 0 {
		return compiledRule{}, invalidf("no syscall names")
	}
	for _, n := range sc.Names {
		if n == "" {
			return compiledRule{}, invalidf("empty syscall name")
		}
	}
	// A rule's errnoRet applies to it alone; runc does not inherit
	// defaultErrnoRet for rules.
	ret, err := actionRet(sc.Action, sc.ErrnoRet)
	if err != nil {
		return compiledRule{}, err
	}
	cr := compiledRule{names: sc.Names, ret: ret}
	conds := make([]cond, 0, len(sc.Args))
	var seen [6]int
	repeated := false
	for j, a := range sc.Args {
		if a.Index > 5 {
			return compiledRule{}, invalidf("args[%d]: index %d out of range 0-5", j, a.Index)
		}
		if !slices.Contains(knownOps, a.Op) {
			return compiledRule{}, invalidf("args[%d]: unknown operator %q", j, a.Op)
		}
		seen[a.Index]++
		if seen[a.Index] > 1 {
			repeated = true
		}
		conds = append(conds, cond{index: uint32(a.Index), op: a.Op, val: a.Value, val2: a.ValueTwo})
	}
	switch {
	case len(conds) == 0:
		cr.alts = [][]cond{nil}
	case repeated:
		for _, c := range conds {
			cr.alts = append(cr.alts, []cond{c})
		}
	default:
		cr.alts = [][]cond{conds}
	}
	return cr, nil
}

// numbered is the decision for one syscall number.
type numbered struct {
	nr  uint32
	dec decision
}

// buildDecisions returns, sorted by number, the decision for each syscall
// number of arch a that some rule names.
func buildDecisions(rules []compiledRule, entries [][]*syscallEntry, a archIndex, defRet uint32) []numbered {
	// (nr << 32 | rule index), sorted: grouped by number, in rule order.
	n := 0
	for i := range entries {
		n += len(entries[i])
	}
	uses := make([]uint64, 0, n)
	for i := range rules {
		for _, e := range entries[i] {
			if e.nr[a] >= 0 {
				uses = append(uses, uint64(e.nr[a])<<32|uint64(i))
			}
		}
	}
	slices.Sort(uses)
	out := make([]numbered, 0, len(uses))
	for k := 0; k < len(uses); {
		nr := uint32(uses[k] >> 32)
		d := decision{fallback: defRet}
		uncond := false
		for ; k < len(uses) && uint32(uses[k]>>32) == nr; k++ {
			r := &rules[uint32(uses[k])]
			for _, alt := range r.alts {
				if len(alt) == 0 {
					if !uncond {
						uncond = true
						d.fallback = r.ret
					}
					continue
				}
				d.rules = append(d.rules, rule{conds: alt, ret: r.ret})
			}
		}
		// Trailing conditional rules that return the fallback anyway cannot
		// change the outcome (earlier ones can: first match wins).
		for len(d.rules) > 0 && d.rules[len(d.rules)-1].ret == d.fallback {
			d.rules = d.rules[:len(d.rules)-1]
		}
		out = append(out, numbered{nr, d})
	}
	return out
}
