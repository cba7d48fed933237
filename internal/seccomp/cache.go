package seccomp

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Precompiled filters (runtime-spec#1247): a compiled Program is stored by
// the hash of its input, so a runtime that starts the same profile again
// skips compilation.

// compilerVersion changes whenever the generated code for a given input
// changes (code generation or syscall table), so old cache entries miss.
const compilerVersion = 1

var marshalMagic = [4]byte{'H', 'K', 'S', 'C'}

const headerLen = 16 // magic, version, flags, count

// ErrBadProgram is returned by UnmarshalBinary for data that is not a
// program written by MarshalBinary of this version.
var ErrBadProgram = errors.New("malformed seccomp program")

// MarshalBinary encodes the program (little-endian, versioned).
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, headerLen, headerLen+8*len(p.filter))
	copy(b, marshalMagic[:])
	binary.LittleEndian.PutUint32(b[4:], compilerVersion)
	binary.LittleEndian.PutUint32(b[8:], p.flags)
	binary.LittleEndian.PutUint32(b[12:], uint32(len(p.filter)))
	for _, in := range p.filter {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// UnmarshalBinary decodes a program written by MarshalBinary and checks that
// every jump stays inside it and that it ends in a return, so a corrupt
// cache entry is refused here rather than by the kernel at start time.
func (p *Program) UnmarshalBinary(b []byte) error {
	if len(b) < headerLen || [4]byte(b[:4]) != marshalMagic {
		return fmt.Errorf("%w: bad header", ErrBadProgram)
	}
	if v := binary.LittleEndian.Uint32(b[4:]); v != compilerVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrBadProgram, v, compilerVersion)
	}
	flags := binary.LittleEndian.Uint32(b[8:])
	const allFlags = flagLog | flagSpecAllow | flagNewListener | flagWaitKillableRecv
	if flags&^allFlags != 0 {
		return fmt.Errorf("%w: unknown flags %#x", ErrBadProgram, flags)
	}
	n := binary.LittleEndian.Uint32(b[12:])
	if n == 0 || n > maxInsns || uint64(len(b)) != headerLen+8*uint64(n) {
		return fmt.Errorf("%w: %d instructions in %d bytes", ErrBadProgram, n, len(b))
	}
	filter := make([]unix.SockFilter, n)
	for i := range filter {
		o := headerLen + 8*i
		in := unix.SockFilter{
			Code: binary.LittleEndian.Uint16(b[o:]),
			Jt:   b[o+2],
			Jf:   b[o+3],
			K:    binary.LittleEndian.Uint32(b[o+4:]),
		}
		last := uint64(n) - 1
		switch {
		case in.Code == opJa:
			if uint64(i)+1+uint64(in.K) > last {
				return fmt.Errorf("%w: jump out of range at %d", ErrBadProgram, i)
			}
		case isCond(in.Code):
			if uint64(i)+1+uint64(max(in.Jt, in.Jf)) > last {
				return fmt.Errorf("%w: jump out of range at %d", ErrBadProgram, i)
			}
		}
		filter[i] = in
	}
	if filter[n-1].Code != opRetK {
		return fmt.Errorf("%w: does not end in ret", ErrBadProgram)
	}
	p.filter, p.flags = filter, flags
	return nil
}

// CacheKey is the hex SHA-256 of everything Compile's output depends on:
// the section, GOARCH and the compiler version.
func CacheKey(s *specs.LinuxSeccomp) string {
	sum := sha256.Sum256(appendSpec(make([]byte, 0, 8192), s))
	return hex.EncodeToString(sum[:])
}

// CompileCached returns the program for s from dir (a directory private to
// the runtime, e.g. <root>/seccomp) or compiles and stores it there. Cache
// entries are written to a temporary file and renamed into place; they are
// not fsynced because a torn entry fails UnmarshalBinary and is rebuilt.
func CompileCached(dir string, s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, invalidf("no seccomp section")
	}
	path := filepath.Join(dir, CacheKey(s)+".bpf")
	if b, err := os.ReadFile(path); err == nil {
		var p Program
		if p.UnmarshalBinary(b) == nil {
			return &p, nil
		}
	}
	p, err := Compile(s)
	if err != nil {
		return nil, err
	}
	b, _ := p.MarshalBinary()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("seccomp cache %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("seccomp cache %s: %w", dir, err)
	}
	_, werr := f.Write(b)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write seccomp cache %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("write seccomp cache %s: %w", path, err)
	}
	return p, nil
}

// appendSpec appends a canonical, length-prefixed encoding of s to b
// (cheaper than encoding/json and independent of JSON field spelling).
func appendSpec(b []byte, s *specs.LinuxSeccomp) []byte {
	u := func(v uint64) { b = binary.LittleEndian.AppendUint64(b, v) }
	str := func(v string) {
		u(uint64(len(v)))
		b = append(b, v...)
	}
	optU := func(p *uint) {
		if p == nil {
			u(0)
			return
		}
		u(1)
		u(uint64(*p))
	}
	str("hako-seccomp")
	u(compilerVersion)
	str(runtime.GOARCH)
	str(string(s.DefaultAction))
	optU(s.DefaultErrnoRet)
	u(uint64(len(s.Architectures)))
	for _, a := range s.Architectures {
		str(string(a))
	}
	u(uint64(len(s.Flags)))
	for _, f := range s.Flags {
		str(string(f))
	}
	// listenerPath only matters for validation (set or not); metadata not at all.
	str(s.ListenerPath)
	u(uint64(len(s.Syscalls)))
	for _, sc := range s.Syscalls {
		u(uint64(len(sc.Names)))
		for _, n := range sc.Names {
			str(n)
		}
		str(string(sc.Action))
		optU(sc.ErrnoRet)
		u(uint64(len(sc.Args)))
		for _, a := range sc.Args {
			u(uint64(a.Index))
			u(a.Value)
			u(a.ValueTwo)
			str(string(a.Op))
		}
	}
	return b
}
