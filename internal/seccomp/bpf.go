package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// A tiny classic-BPF assembler with forward labels. cBPF conditional jumps
// reach at most 255 instructions; when a target is farther, the jump is
// relaxed into a short jump to an unconditional `ja` trampoline (32-bit
// offset) placed right after it. Relaxation only ever grows the program, so
// iterating until nothing changes terminates.

// label names a position in the program; labelNext means "the following
// instruction" (a zero offset).
type label int32

const labelNext label = -1

// BPF opcodes used by the filter (linux/bpf_common.h).
const (
	opLdAbsW = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	opAndK   = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opRetK   = unix.BPF_RET | unix.BPF_K
	opJa     = unix.BPF_JMP | unix.BPF_JA
	opJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJgtK   = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	opJgeK   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opJsetK  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
)

// maxInsns is BPF_MAXINSNS, the kernel's limit for one filter.
const maxInsns = 4096

type insn struct {
	op     uint16
	k      uint32
	jt, jf label // conditional jumps; ja uses jt
}

type assembler struct {
	insns  []insn
	labels []int32 // label -> index into insns, -1 while unplaced
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// place binds l to the next instruction emitted.
func (a *assembler) place(l label) { a.labels[l] = int32(len(a.insns)) }

func (a *assembler) ldAbs(off uint32) { a.insns = append(a.insns, insn{op: opLdAbsW, k: off}) }
func (a *assembler) and(k uint32)     { a.insns = append(a.insns, insn{op: opAndK, k: k}) }
func (a *assembler) ret(k uint32)     { a.insns = append(a.insns, insn{op: opRetK, k: k}) }
func (a *assembler) ja(l label) {
	if l != labelNext {
		a.insns = append(a.insns, insn{op: opJa, jt: l})
	}
}
func (a *assembler) jmp(op uint16, k uint32, jt, jf label) {
	if jt == jf {
		// Both branches agree: the comparison is pointless.
		if jt != labelNext {
			a.ja(jt)
		}
		return
	}
	a.insns = append(a.insns, insn{op: op, k: k, jt: jt, jf: jf})
}

func isCond(op uint16) bool {
	return op&0x07 == unix.BPF_JMP && op&0xf0 != unix.BPF_JA
}

// assemble resolves labels and returns the kernel representation.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	n := len(a.insns)
	// extra[i] bit 0: jt needs a trampoline, bit 1: jf needs one.
	extra := make([]uint8, n)
	pos := make([]int, n+1)
	target := func(i int, l label) int {
		if l == labelNext {
			return i + 1
		}
		return int(a.labels[l])
	}
	for {
		p := 0
		for i := range a.insns {
			pos[i] = p
			p += 1 + int(extra[i]&1) + int(extra[i]>>1)
		}
		pos[n] = p
		if p > maxInsns {
			return nil, invalidf("filter needs %d instructions, the kernel allows %d", p, maxInsns)
		}
		changed := false
		for i, in := range a.insns {
			if !isCond(in.op) {
				continue
			}
			for b, l := range [2]label{in.jt, in.jf} {
				bit := uint8(1) << b
				if l == labelNext || extra[i]&bit != 0 {
					continue
				}
				if pos[target(i, l)]-(pos[i]+1) > 255 {
					extra[i] |= bit
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	out := make([]unix.SockFilter, 0, pos[n])
	for i, in := range a.insns {
		here := pos[i] + 1 // jump offsets count from the following slot
		switch {
		case in.op == opJa:
			t := pos[target(i, in.jt)]
			if t < here {
				return nil, fmt.Errorf("internal error: backward jump at %d", i)
			}
			out = append(out, unix.SockFilter{Code: in.op, K: uint32(t - here)})
		case isCond(in.op):
			next := pos[i+1]
			var jt, jf int
			var tramp []int
			slot := here
			for b, l := range [2]label{in.jt, in.jf} {
				t := pos[target(i, l)]
				if l == labelNext {
					t = next
				}
				if extra[i]&(1<<b) != 0 {
					tramp = append(tramp, t)
					t = slot
					slot++
				}
				if t < here || t-here > 255 {
					return nil, fmt.Errorf("internal error: jump out of range at %d", i)
				}
				if b == 0 {
					jt = t - here
				} else {
					jf = t - here
				}
			}
			out = append(out, unix.SockFilter{Code: in.op, Jt: uint8(jt), Jf: uint8(jf), K: in.k})
			for j, t := range tramp {
				out = append(out, unix.SockFilter{Code: opJa, K: uint32(t - (here + j + 1))})
			}
		default:
			out = append(out, unix.SockFilter{Code: in.op, K: in.k})
		}
	}
	return out, nil
}
