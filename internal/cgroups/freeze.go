package cgroups

import (
	"fmt"
	"time"
)

// Freezer states as `runc pause`/`state` report them.
const (
	Frozen   = "FROZEN"
	Freezing = "FREEZING"
	Thawed   = "THAWED"
)

// freezeTimeout bounds the wait for a cgroup to report frozen; a task in
// an uninterruptible sleep (NFS, FUSE) can hold the transition forever.
const freezeTimeout = 5 * time.Second

func (m *manager) Freeze() error { return m.setFrozen(true) }
func (m *manager) Thaw() error   { return m.setFrozen(false) }

func (m *manager) setFrozen(freeze bool) error {
	if d := m.v1["freezer"]; d != "" {
		want := Thawed
		if freeze {
			want = Frozen
		}
		deadline := time.Now().Add(freezeTimeout)
		for delay := 100 * time.Microsecond; ; {
			// Rewriting the state while FREEZING nudges tasks that were
			// forking when the freeze started (cgroup-v1/freezer-subsystem.rst).
			if err := writeFile(d, "freezer.state", want); err != nil {
				return err
			}
			s, err := readString(d, "freezer.state")
			if err != nil {
				return err
			}
			if s == want {
				return nil
			}
			if time.Now().After(deadline) {
				if freeze {
					_ = writeFile(d, "freezer.state", Thawed)
				}
				return fmt.Errorf("freeze %s: still %s after %s", d, s, freezeTimeout)
			}
			time.Sleep(delay)
			if delay < 10*time.Millisecond {
				delay *= 2
			}
		}
	}
	// cgroup2's cgroup.freeze is core, not a controller: on a Hybrid host
	// it works in the unified hierarchy next to the v1 freezer.
	if m.unified == "" {
		return fmt.Errorf("%w: no freezer", ErrNotSupported)
	}
	v := "0"
	if freeze {
		v = "1"
	}
	if err := writeFile(m.unified, "cgroup.freeze", v); err != nil {
		return err
	}
	// cgroup.freeze is a request; cgroup.events "frozen 1" is the answer.
	deadline := time.Now().Add(freezeTimeout)
	for delay := 100 * time.Microsecond; ; {
		s, err := readString(m.unified, "cgroup.events")
		if err != nil {
			return err
		}
		frozen := parseFlatKeyed(s)["frozen"] == 1
		if frozen == freeze {
			return nil
		}
		if time.Now().After(deadline) {
			if freeze {
				_ = writeFile(m.unified, "cgroup.freeze", "0")
			}
			return fmt.Errorf("freeze %s: not %s after %s", m.unified, map[bool]string{true: "frozen", false: "thawed"}[freeze], freezeTimeout)
		}
		time.Sleep(delay)
		if delay < 10*time.Millisecond {
			delay *= 2
		}
	}
}

func (m *manager) FreezerState() (string, error) {
	if d := m.v1["freezer"]; d != "" {
		s, err := readString(d, "freezer.state")
		if err != nil {
			return "", err
		}
		return s, nil
	}
	if m.unified == "" {
		return Thawed, nil // nothing can have frozen it
	}
	want, err := readString(m.unified, "cgroup.freeze")
	if err != nil {
		return "", err
	}
	if want != "1" {
		return Thawed, nil
	}
	ev, err := readString(m.unified, "cgroup.events")
	if err != nil {
		return "", err
	}
	if parseFlatKeyed(ev)["frozen"] == 1 {
		return Frozen, nil
	}
	return Freezing, nil
}
