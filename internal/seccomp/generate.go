package seccomp

import (
	"golang.org/x/sys/unix"
)

// Layout of the generated program (offsets into struct seccomp_data,
// linux/seccomp.h: nr at 0, arch at 4, args[i] at 16+8i):
//
//	ld arch
//	jeq <native audit arch>  -> native section      (then each compat ABI)
//	ret KILL_THREAD                                  (ABI not in the filter)
//	native section:
//	  ld nr
//	  [x86_64 only] jge X32_BIT -> x32 part
//	  binary search over number ranges; each leaf is `ret` or a short chain
//	  of argument checks ending in `ret`
//
// Numbers are grouped into ranges sharing one decision, so a profile of a
// few hundred names becomes a tree of depth ~7 instead of a linear scan.

const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

type archTable struct {
	enabled     bool
	bits32      bool
	decisions   []numbered // sorted by nr
	stub        bool
	enosysAbove uint32
}

type generator struct {
	defRet uint32
	native archIndex
	compat []archIndex
	tables [numArches]archTable
	asm    assembler
}

// segment is a run of syscall numbers [start, next segment's start).
type segment struct {
	start uint32
	dec   *decision
}

func (g *generator) generate() ([]unix.SockFilter, error) {
	a := &g.asm
	a.insns = make([]insn, 0, 1024)
	a.labels = make([]int32, 0, 512)
	a.ldAbs(offArch)
	type section struct {
		arch archIndex
		l    label
	}
	var sections []section
	for _, ai := range append([]archIndex{g.native}, g.compat...) {
		// x32 is part of the x86_64 section, not an audit arch of its own.
		if !g.tables[ai].enabled || ai == archX32 {
			continue
		}
		l := a.newLabel()
		sections = append(sections, section{ai, l})
		a.jmp(opJeqK, archInfos[ai].audit, l, labelNext)
	}
	a.ret(retBadArch)
	for _, s := range sections {
		a.place(s.l)
		a.ldAbs(offNr)
		if s.arch != archX86_64 {
			g.emitTree(g.segments(s.arch, 0, 0xffffffff), archInfos[s.arch].bits32)
			continue
		}
		high := a.newLabel()
		a.jmp(opJgeK, x32SyscallBit, high, labelNext)
		g.emitTree(g.segments(archX86_64, 0, x32SyscallBit-1), false)
		a.place(high)
		// nr -1 is how a tracer skips a syscall; libseccomp treats it as an
		// x86_64 number, not as x32.
		x32 := a.newLabel()
		a.jmp(opJeqK, 0xffffffff, labelNext, x32)
		a.ret(g.defRet)
		a.place(x32)
		if g.tables[archX32].enabled {
			g.emitTree(g.segments(archX32, x32SyscallBit, 0xfffffffe), true)
		} else {
			a.ret(retBadArch)
		}
	}
	return a.assemble()
}

// segments splits [lo, hi] into runs sharing one decision.
func (g *generator) segments(ai archIndex, lo, hi uint32) []segment {
	t := &g.tables[ai]
	var bit uint32
	if ai == archX32 {
		bit = x32SyscallBit
	}
	def := &decision{fallback: g.defRet}
	enosys := &decision{fallback: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)}
	var segs []segment
	add := func(start uint32, d *decision) {
		if n := len(segs); n > 0 && segs[n-1].dec.equal(d) {
			return
		}
		segs = append(segs, segment{start, d})
	}
	// addGap covers [from, to] (to inclusive) with the default, switching to
	// ENOSYS above the highest named number when the stub applies.
	addGap := func(from, to uint64) {
		if from > to {
			return
		}
		if t.stub {
			limit := uint64(t.enosysAbove | bit)
			if from > limit {
				add(uint32(from), enosys)
				return
			}
			add(uint32(from), def)
			if to > limit {
				add(uint32(limit+1), enosys)
			}
			return
		}
		add(uint32(from), def)
	}
	cur := uint64(lo)
	for i := range t.decisions {
		nd := &t.decisions[i]
		nr := uint64(nd.nr | bit)
		if nr < uint64(lo) || nr > uint64(hi) {
			continue
		}
		if nr > cur {
			addGap(cur, nr-1)
		}
		add(uint32(nr), &nd.dec)
		cur = nr + 1
	}
	addGap(cur, uint64(hi))
	return segs
}

// emitTree emits a binary search over segs; A holds the syscall number.
func (g *generator) emitTree(segs []segment, bits32 bool) {
	if len(segs) == 1 {
		g.emitDecision(segs[0].dec, bits32)
		return
	}
	mid := len(segs) / 2
	right := g.asm.newLabel()
	g.asm.jmp(opJgeK, segs[mid].start, right, labelNext)
	g.emitTree(segs[:mid], bits32)
	g.asm.place(right)
	g.emitTree(segs[mid:], bits32)
}

func (g *generator) emitDecision(d *decision, bits32 bool) {
	a := &g.asm
	for _, r := range d.rules {
		fail := a.newLabel()
		for _, c := range r.conds {
			pass := a.newLabel()
			g.emitCond(c, bits32, pass, fail)
			a.place(pass)
		}
		a.ret(r.ret)
		a.place(fail)
	}
	a.ret(d.fallback)
}

// emitCond jumps to t when the condition holds and to f otherwise. 64-bit
// arguments are compared as (hi, lo) pairs; for 32-bit ABIs only the low
// half is compared, as libseccomp does. Little-endian layout: the low word
// of args[i] comes first (all ABIs in the table are little-endian).
func (g *generator) emitCond(c cond, bits32 bool, t, f label) {
	a := &g.asm
	lo := uint32(offArgs + 8*c.index)
	hi := lo + 4
	vlo, vhi := uint32(c.val), uint32(c.val>>32)
	switch c.op {
	case "SCMP_CMP_EQ", "SCMP_CMP_NE":
		if c.op == "SCMP_CMP_NE" {
			t, f = f, t
		}
		if !bits32 {
			a.ldAbs(hi)
			a.jmp(opJeqK, vhi, labelNext, f)
		}
		a.ldAbs(lo)
		a.jmp(opJeqK, vlo, t, f)
	case "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_GE", "SCMP_CMP_LT":
		// LE is !GT and LT is !GE.
		op := uint16(opJgtK)
		if c.op == "SCMP_CMP_GE" || c.op == "SCMP_CMP_LT" {
			op = opJgeK
		}
		if c.op == "SCMP_CMP_LE" || c.op == "SCMP_CMP_LT" {
			t, f = f, t
		}
		if !bits32 {
			a.ldAbs(hi)
			a.jmp(opJgtK, vhi, t, labelNext)
			a.jmp(opJeqK, vhi, labelNext, f)
		}
		a.ldAbs(lo)
		a.jmp(op, vlo, t, f)
	case "SCMP_CMP_MASKED_EQ":
		// (arg & value) == valueTwo
		mlo, mhi := vlo, vhi
		dlo, dhi := uint32(c.val2), uint32(c.val2>>32)
		if !bits32 {
			if mhi == 0 {
				if dhi != 0 {
					a.ja(f) // can never match
					return
				}
			} else {
				a.ldAbs(hi)
				if mhi != 0xffffffff {
					a.and(mhi)
				}
				a.jmp(opJeqK, dhi, labelNext, f)
			}
		}
		if mlo == 0 {
			if dlo == 0 {
				a.ja(t)
			} else {
				a.ja(f)
			}
			return
		}
		a.ldAbs(lo)
		if mlo != 0xffffffff {
			a.and(mlo)
		}
		a.jmp(opJeqK, dlo, t, f)
	}
}
