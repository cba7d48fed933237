package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Event is one line of `events` output, as runc prints it.
type Event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data any    `json:"data,omitempty"`
}

// Events writes statistics once (once), or a stream of statistics every
// interval plus OOM events, until the container stops or ctx ends.
func (c *Container) Events(ctx context.Context, once bool, interval time.Duration, enc *json.Encoder) error {
	if c.Status() == StatusStopped {
		return fmt.Errorf("container %s: %w", c.rec.ID, ErrNotRunning)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	stats := func() error {
		st, err := cg.Stats()
		if err != nil {
			return fmt.Errorf("read stats: %w", err)
		}
		return enc.Encode(Event{Type: "stats", ID: c.rec.ID, Data: st})
	}
	if once {
		return stats()
	}
	if interval <= 0 {
		return fmt.Errorf("--interval must be positive")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	oom, err := cg.OOMEvents(ctx)
	if err != nil {
		oom = nil // no memory controller: stats only
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-oom:
			if !ok {
				oom = nil
				continue
			}
			if err := enc.Encode(Event{Type: "oom", ID: c.rec.ID}); err != nil {
				return err
			}
		case <-tick.C:
			if c.Status() == StatusStopped {
				return nil
			}
			if err := stats(); err != nil {
				return err
			}
		}
	}
}
