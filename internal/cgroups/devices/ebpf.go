package devices

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The context a BPF_PROG_TYPE_CGROUP_DEVICE program receives
// (struct bpf_cgroup_dev_ctx in include/uapi/linux/bpf.h):
//
//	u32 access_type  // (access << 16) | type
//	u32 major
//	u32 minor
//
// type is BPF_DEVCG_DEV_BLOCK (1) or BPF_DEVCG_DEV_CHAR (2); access is a mask
// of BPF_DEVCG_ACC_MKNOD (1), _READ (2), _WRITE (4). The program returns 1 to
// allow the access and 0 to deny it (the caller then sees EPERM).
const (
	devBlock = 1
	devChar  = 2
)

// eBPF opcodes used below (include/uapi/linux/bpf_common.h, bpf.h).
const (
	opLdxW   = 0x61 // BPF_LDX | BPF_MEM | BPF_W
	opAndK   = 0x57 // BPF_ALU64 | BPF_AND | BPF_K
	opRshK   = 0x77 // BPF_ALU64 | BPF_RSH | BPF_K
	opMovX   = 0xbf // BPF_ALU64 | BPF_MOV | BPF_X
	opMovK   = 0xb7 // BPF_ALU64 | BPF_MOV | BPF_K
	opJneK   = 0x55 // BPF_JMP | BPF_JNE | BPF_K
	opJneX   = 0x5d // BPF_JMP | BPF_JNE | BPF_X
	opJeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	opExit   = 0x95 // BPF_JMP | BPF_EXIT
	insnSize = 8
)

type insn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

// Program is an assembled device filter, ready for Attach.
type Program struct {
	insns []insn
}

// Len is the number of eBPF instructions.
func (p *Program) Len() int { return len(p.insns) }

// Bytes is the wire form (struct bpf_insn, little-endian as on every
// architecture hako runs on).
func (p *Program) Bytes() []byte {
	b := make([]byte, len(p.insns)*insnSize)
	for i, in := range p.insns {
		o := b[i*insnSize:]
		o[0] = in.code
		o[1] = in.dst | in.src<<4
		binary.LittleEndian.PutUint16(o[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(o[4:], uint32(in.imm))
	}
	return b
}

// Compile builds the filter for rules. The spec says later entries override
// earlier ones, so the rules are tested last-to-first and the first one that
// matches decides; nothing matching means deny (the same default the v1 path
// gets from its leading "a *:* rwm" deny).
//
// An allow rule matches a request only if it grants every requested access
// bit; a deny rule matches if it denies any of them. That way "allow rw, then
// deny w" denies an O_RDWR open, as it would on v1. (A request whose bits are
// granted only by several separate allow rules is denied; runc's emulator
// merges such rules, we do not, and no default config relies on it.)
func Compile(rules []Rule) *Program {
	p := &Program{}
	emit := func(in insn) { p.insns = append(p.insns, in) }
	// r2 = type, r3 = access, r4 = major, r5 = minor.
	emit(insn{code: opLdxW, dst: 2, src: 1, off: 0})
	emit(insn{code: opAndK, dst: 2, imm: 0xffff})
	emit(insn{code: opLdxW, dst: 3, src: 1, off: 0})
	emit(insn{code: opRshK, dst: 3, imm: 16})
	emit(insn{code: opLdxW, dst: 4, src: 1, off: 4})
	emit(insn{code: opLdxW, dst: 5, src: 1, off: 8})

	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		start := len(p.insns)
		var jumps []int // indexes of "goto next rule" to patch
		jump := func(in insn) {
			jumps = append(jumps, len(p.insns))
			emit(in)
		}
		switch r.Type {
		case 'b':
			jump(insn{code: opJneK, dst: 2, imm: devBlock})
		case 'c':
			jump(insn{code: opJneK, dst: 2, imm: devChar})
		}
		if bits := accessBits(r.Access); bits != accAll {
			emit(insn{code: opMovX, dst: 1, src: 3})
			emit(insn{code: opAndK, dst: 1, imm: int32(bits)})
			if r.Allow {
				jump(insn{code: opJneX, dst: 1, src: 3}) // some requested bit not granted
			} else {
				jump(insn{code: opJeqK, dst: 1, imm: 0}) // no requested bit denied
			}
		}
		if r.Major >= 0 {
			jump(insn{code: opJneK, dst: 4, imm: int32(r.Major)})
		}
		if r.Minor >= 0 {
			jump(insn{code: opJneK, dst: 5, imm: int32(r.Minor)})
		}
		verdict := int32(0)
		if r.Allow {
			verdict = 1
		}
		emit(insn{code: opMovK, dst: 0, imm: verdict})
		emit(insn{code: opExit})
		end := len(p.insns)
		for _, j := range jumps {
			p.insns[j].off = int16(end - j - 1)
		}
		if len(jumps) == 0 && start < end {
			// Unconditional rule: everything before it in the list is
			// shadowed, and the verifier rejects unreachable code.
			return p
		}
	}
	emit(insn{code: opMovK, dst: 0, imm: 0})
	emit(insn{code: opExit})
	return p
}

// bpf_attr layouts for the commands used (include/uapi/linux/bpf.h).
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type progAttachAttr struct {
	targetFD     uint32
	attachBPFFD  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBPFFD uint32
}

type progQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     uint64
	progCnt     uint32
	_           uint32
}

type getFDByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

func bpf(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
		if errno == unix.EINTR || errno == unix.EAGAIN && cmd == unix.BPF_PROG_LOAD {
			continue
		}
		if errno != 0 {
			return -1, errno
		}
		return int(r), nil
	}
}

// Load loads p as a BPF_PROG_TYPE_CGROUP_DEVICE program and returns its fd.
// On a verifier rejection the verifier log is part of the error.
func (p *Program) Load() (int, error) {
	code := p.Bytes()
	license := []byte("Apache-2.0\x00")
	attr := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(p.insns)),
		insns:    uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	copy(attr.progName[:], "hako_devices")
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINVAL)) {
		// Ask again with the verifier log, only on failure: it costs.
		log := make([]byte, 64<<10)
		attr.logLevel = 1
		attr.logSize = uint32(len(log))
		attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
		_, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
		runtime.KeepAlive(log)
		n := 0
		for n < len(log) && log[n] != 0 {
			n++
		}
		if err2 == nil {
			err2 = err
		}
		err = fmt.Errorf("%w: verifier: %s", err2, log[:n])
	}
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	if err != nil {
		return -1, fmt.Errorf("bpf prog load (cgroup device): %w", err)
	}
	return fd, nil
}

// Attached returns the ids of the device programs attached directly to the
// cgroup open at dirFD.
func Attached(dirFD int) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := progQueryAttr{
		targetFD:   uint32(dirFD),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIDs:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
		progCnt:    uint32(len(ids)),
	}
	_, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(ids)
	if err != nil {
		return nil, fmt.Errorf("bpf prog query: %w", err)
	}
	return ids[:attr.progCnt], nil
}

// Attach loads p and attaches it to the cgroup open at dirFD with
// BPF_F_ALLOW_MULTI, then detaches the device programs that were attached
// there before, so that an update replaces the filter without a moment in
// which no filter applies (with several programs, the kernel allows an access
// only if all of them do).
func (p *Program) Attach(dirFD int) error {
	old, err := Attached(dirFD)
	if err != nil {
		return err
	}
	progFD, err := p.Load()
	if err != nil {
		return err
	}
	defer unix.Close(progFD)
	attr := progAttachAttr{
		targetFD:    uint32(dirFD),
		attachBPFFD: uint32(progFD),
		attachType:  unix.BPF_CGROUP_DEVICE,
		attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	_, err = bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil && len(old) > 0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL)) {
		// Someone attached a non-multi program here: attaching without
		// flags replaces it atomically.
		attr.attachFlags = 0
		if _, err = bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err == nil {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("bpf prog attach (cgroup device): %w", err)
	}
	for _, id := range old {
		if err := detachID(dirFD, id); err != nil {
			return err
		}
	}
	return nil
}

// DetachAll removes every device program attached directly to the cgroup.
func DetachAll(dirFD int) error {
	ids, err := Attached(dirFD)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := detachID(dirFD, id); err != nil {
			return err
		}
	}
	return nil
}

func detachID(dirFD int, id uint32) error {
	g := getFDByIDAttr{id: id}
	fd, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&g), unsafe.Sizeof(g))
	if errors.Is(err, unix.ENOENT) {
		return nil // already gone
	}
	if err != nil {
		return fmt.Errorf("bpf prog get fd by id %d: %w", id, err)
	}
	defer unix.Close(fd)
	attr := progAttachAttr{targetFD: uint32(dirFD), attachBPFFD: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE}
	if _, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("bpf prog detach id %d: %w", id, err)
	}
	return nil
}
