package linux

import (
	"fmt"
	"time"
)

// timer records how long init's steps take, for `hako --debug`.
type timer struct {
	on    bool
	last  time.Time
	steps []string
}

func newTimer(on bool) *timer { return &timer{on: on, last: time.Now()} }

func (t *timer) mark(name string) {
	if !t.on {
		return
	}
	now := time.Now()
	t.steps = append(t.steps, fmt.Sprintf("%s=%s", name, now.Sub(t.last).Round(time.Microsecond)))
	t.last = now
}
