package devices

import (
	"fmt"
	"strconv"
	"strings"
)

// V1State models what the v1 devices controller keeps per cgroup
// (security/device_cgroup.c): a default behaviour and an ordered list of
// exceptions, each keyed by exact type/major/minor. It lets Update move from
// the current list to the wanted one without first denying everything, which
// would make running processes see EPERM for a moment.
type V1State struct {
	DefaultAllow bool
	Exceptions   []Rule // Allow unused; Access is the exception's bits
}

func sameKey(a, b Rule) bool { return a.Type == b.Type && a.Major == b.Major && a.Minor == b.Minor }

func (s *V1State) add(r Rule) {
	for i, e := range s.Exceptions {
		if sameKey(e, r) {
			s.Exceptions[i].Access = accessString(accessBits(e.Access) | accessBits(r.Access))
			return
		}
	}
	r.Allow = false
	s.Exceptions = append(s.Exceptions, r)
}

// rm, like the kernel, only touches an exception with the exact same key.
func (s *V1State) rm(r Rule) {
	for i, e := range s.Exceptions {
		if sameKey(e, r) {
			left := accessBits(e.Access) &^ accessBits(r.Access)
			if left == 0 {
				s.Exceptions = append(s.Exceptions[:i], s.Exceptions[i+1:]...)
			} else {
				s.Exceptions[i].Access = accessString(left)
			}
			return
		}
	}
}

// Apply is what the kernel does for one write to devices.allow
// (allowFile) or devices.deny.
func (s *V1State) Apply(allowFile bool, r Rule) {
	if r.Type == 'a' {
		s.DefaultAllow = allowFile
		s.Exceptions = nil
		return
	}
	if allowFile == s.DefaultAllow {
		s.rm(r)
	} else {
		s.add(r)
	}
}

// Target is the state V1Writes(rules) leaves behind.
func Target(rules []Rule) V1State {
	var s V1State
	for _, r := range rules {
		s.Apply(r.Allow, r)
	}
	return s
}

// ParseV1List reads devices.list. The kernel prints only "a *:* rwm" for a
// default-allow cgroup (its deny exceptions are not shown), so ok is false
// then: the state is not fully known.
func ParseV1List(s string) (st V1State, ok bool, err error) {
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[0]) != 1 {
			return V1State{}, false, fmt.Errorf("devices.list line %q", line)
		}
		maj, min, _ := strings.Cut(f[1], ":")
		r := Rule{Type: f[0][0], Major: -1, Minor: -1, Access: f[2]}
		if maj != "*" {
			if r.Major, err = strconv.ParseInt(maj, 10, 64); err != nil {
				return V1State{}, false, fmt.Errorf("devices.list line %q: %w", line, err)
			}
		}
		if min != "*" {
			if r.Minor, err = strconv.ParseInt(min, 10, 64); err != nil {
				return V1State{}, false, fmt.Errorf("devices.list line %q: %w", line, err)
			}
		}
		if r.Type == 'a' {
			return V1State{DefaultAllow: true}, false, nil
		}
		st.Exceptions = append(st.Exceptions, r)
	}
	return st, true, nil
}

// V1Transition returns writes that take a default-deny cgroup from cur to
// want (also default-deny) without a moment where an access allowed in both
// is denied, or one allowed in neither is allowed: first the additions, then
// the removals. ok is false when that is not possible (either side default
// allow); use V1Writes then.
func V1Transition(cur, want V1State) (w []V1Write, ok bool) {
	if cur.DefaultAllow || want.DefaultAllow {
		return nil, false
	}
	find := func(s V1State, r Rule) uint32 {
		for _, e := range s.Exceptions {
			if sameKey(e, r) {
				return accessBits(e.Access)
			}
		}
		return 0
	}
	for _, e := range want.Exceptions {
		if accessBits(e.Access)&^find(cur, e) != 0 {
			e.Allow = true
			w = append(w, V1Write{File: "devices.allow", Line: e.String()})
		}
	}
	for _, e := range cur.Exceptions {
		if extra := find(cur, e) &^ find(want, e); extra != 0 {
			e.Access = accessString(extra)
			w = append(w, V1Write{File: "devices.deny", Line: e.String()})
		}
	}
	return w, true
}
