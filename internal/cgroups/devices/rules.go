// Package devices turns the runtime-spec device allowlist
// (config-linux.md "Allowed Device List", linux.resources.devices) into what
// each cgroup version understands: lines for the v1 devices.allow /
// devices.deny files, and a BPF_PROG_TYPE_CGROUP_DEVICE program for cgroup v2,
// which has no devices controller files at all.
//
// The program is assembled here by hand (about a dozen instruction shapes)
// instead of pulling in github.com/cilium/ebpf: hako's binary starts on every
// container start, and this keeps the start-up path free of that package's
// init cost and of its 30 kB of reflection-heavy code.
package devices

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalidRule classifies a malformed device rule (bad type or access).
var ErrInvalidRule = errors.New("invalid device cgroup rule")

// Rule is a validated, normalised linux.resources.devices entry.
// Major/Minor are -1 for the wildcard "*".
type Rule struct {
	Allow  bool
	Type   byte // 'a', 'b' or 'c'
	Major  int64
	Minor  int64
	Access string // a non-empty subset of "rwm", in that order
}

// Normalise validates rules and fills the defaults the spec gives for absent
// fields: type "a", major/minor "*", access "rwm".
func Normalise(in []specs.LinuxDeviceCgroup) ([]Rule, error) {
	out := make([]Rule, 0, len(in))
	for i, d := range in {
		r := Rule{Allow: d.Allow, Major: -1, Minor: -1}
		switch d.Type {
		case "", "a":
			r.Type = 'a'
		case "b", "c":
			r.Type = d.Type[0]
		default:
			return nil, fmt.Errorf("%w: entry %d: type %q", ErrInvalidRule, i, d.Type)
		}
		if d.Major != nil && *d.Major >= 0 {
			r.Major = *d.Major
		}
		if d.Minor != nil && *d.Minor >= 0 {
			r.Minor = *d.Minor
		}
		if r.Major > 1<<31-1 || r.Minor > 1<<31-1 {
			return nil, fmt.Errorf("%w: entry %d: device number out of range", ErrInvalidRule, i)
		}
		acc := d.Access
		if acc == "" {
			acc = "rwm"
		}
		var bits uint32
		for _, c := range acc {
			b := accessBit(c)
			if b == 0 {
				return nil, fmt.Errorf("%w: entry %d: access %q", ErrInvalidRule, i, d.Access)
			}
			bits |= b
		}
		r.Access = accessString(bits)
		out = append(out, r)
	}
	return out, nil
}

const (
	accMknod = 1 // BPF_DEVCG_ACC_MKNOD
	accRead  = 2 // BPF_DEVCG_ACC_READ
	accWrite = 4 // BPF_DEVCG_ACC_WRITE
	accAll   = accMknod | accRead | accWrite
)

func accessBit(c rune) uint32 {
	switch c {
	case 'r':
		return accRead
	case 'w':
		return accWrite
	case 'm':
		return accMknod
	}
	return 0
}

func accessBits(s string) uint32 {
	var b uint32
	for _, c := range s {
		b |= accessBit(c)
	}
	return b
}

func accessString(b uint32) string {
	var sb strings.Builder
	if b&accRead != 0 {
		sb.WriteByte('r')
	}
	if b&accWrite != 0 {
		sb.WriteByte('w')
	}
	if b&accMknod != 0 {
		sb.WriteByte('m')
	}
	return sb.String()
}

func num(n int64) string {
	if n < 0 {
		return "*"
	}
	return strconv.FormatInt(n, 10)
}

// String renders the rule in the v1 devices.allow/devices.deny syntax
// ("c 1:3 rwm", "a *:* rwm").
func (r Rule) String() string {
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}

// V1Write is one write to a v1 devices cgroup file.
type V1Write struct {
	File string // "devices.allow" or "devices.deny"
	Line string
}

// V1Writes returns the writes that make a v1 devices cgroup implement rules:
// first "deny everything" (which also clears inherited exceptions), then every
// rule in order, so that later entries override earlier ones as the spec
// requires. Starting from deny-all means a rule list that forgets to deny
// cannot leave the host's devices open.
func V1Writes(rules []Rule) []V1Write {
	w := make([]V1Write, 0, len(rules)+1)
	w = append(w, V1Write{File: "devices.deny", Line: "a *:* rwm"})
	for _, r := range rules {
		f := "devices.deny"
		if r.Allow {
			f = "devices.allow"
		}
		w = append(w, V1Write{File: f, Line: r.String()})
	}
	return w
}

// Defaults are the rules a runtime appends after a config's own device
// rules: the runtime-spec requires the default devices (config-linux.md
// "Default Devices": null, zero, full, random, urandom, tty, ptmx) and the
// pts slaves to work whatever the rules say, and mknod of any node is allowed
// (opening still needs a rule), as with runc. Unlike runc's AllowedDevices
// there is no /dev/console (5:1: the console hako gives a container is a pts
// slave bound over /dev/console) and no /dev/net/tun (not a default device:
// a config that wants it says so).
func Defaults() []specs.LinuxDeviceCgroup {
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		dev("c", -1, -1, "m"),
		dev("b", -1, -1, "m"),
		dev("c", 1, 3, "rwm"),    // /dev/null
		dev("c", 1, 5, "rwm"),    // /dev/zero
		dev("c", 1, 7, "rwm"),    // /dev/full
		dev("c", 1, 8, "rwm"),    // /dev/random
		dev("c", 1, 9, "rwm"),    // /dev/urandom
		dev("c", 5, 0, "rwm"),    // /dev/tty
		dev("c", 5, 2, "rwm"),    // /dev/ptmx
		dev("c", 136, -1, "rwm"), // /dev/pts/*
	}
}
