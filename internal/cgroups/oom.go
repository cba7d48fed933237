package cgroups

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OOMEvents watches for OOM kills. On v1 it registers an eventfd for
// memory.oom_control through cgroup.event_control
// (cgroup-v1/memory.rst, "Memory thresholds"/"OOM Control"); on v2 it
// watches memory.events with inotify and reports each increase of oom_kill.
// Both fds are non-blocking and handed to Go's poller, so no thread is
// parked and ctx cancellation unblocks the reader by closing the fd.
func (m *manager) OOMEvents(ctx context.Context) (<-chan struct{}, error) {
	if d := m.v1["memory"]; d != "" {
		return oomV1(ctx, d)
	}
	if m.mode == Unified && m.unified != "" {
		return oomV2(ctx, m.unified)
	}
	return nil, fmt.Errorf("%w: no memory controller", ErrNotSupported)
}

func oomV1(ctx context.Context, d string) (<-chan struct{}, error) {
	ctl, err := os.Open(d + "/memory.oom_control")
	if err != nil {
		return nil, fmt.Errorf("oom events: %w", err)
	}
	defer ctl.Close() // the registration holds its own reference
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("oom events: eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "oom-eventfd")
	reg := strconv.Itoa(efd) + " " + strconv.Itoa(int(ctl.Fd()))
	if err := writeFile(d, "cgroup.event_control", reg); err != nil {
		ev.Close()
		return nil, fmt.Errorf("oom events: %w", err)
	}
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		stop := context.AfterFunc(ctx, func() { ev.Close() })
		defer func() {
			if stop() {
				ev.Close()
			}
		}()
		buf := make([]byte, 8)
		for {
			if _, err := ev.Read(buf); err != nil {
				return
			}
			// The kernel also signals the eventfd when the cgroup is
			// removed: that is the end of the stream, not an OOM.
			if !exists(d) {
				return
			}
			n := binary.NativeEndian.Uint64(buf)
			for ; n > 0; n-- {
				select {
				case ch <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

func oomV2(ctx context.Context, d string) (<-chan struct{}, error) {
	ifd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("oom events: inotify: %w", err)
	}
	in := os.NewFile(uintptr(ifd), "oom-inotify")
	if _, err := unix.InotifyAddWatch(ifd, d+"/memory.events", unix.IN_MODIFY); err != nil {
		in.Close()
		return nil, fmt.Errorf("oom events: watch %s/memory.events: %w", d, err)
	}
	count := func() (uint64, bool) {
		s, err := readString(d, "memory.events")
		if err != nil {
			return 0, false
		}
		return parseFlatKeyed(s)["oom_kill"], true
	}
	last, ok := count()
	if !ok {
		in.Close()
		return nil, fmt.Errorf("oom events: read %s/memory.events", d)
	}
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		stop := context.AfterFunc(ctx, func() { in.Close() })
		defer func() {
			if stop() {
				in.Close()
			}
		}()
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := binary.NativeEndian.Uint32(buf[off+12:])
				off += unix.SizeofInotifyEvent + int(nameLen)
				if mask&unix.IN_IGNORED != 0 {
					return // memory.events is gone: the cgroup was removed
				}
			}
			cur, ok := count()
			if !ok {
				return
			}
			for ; cur > last; last++ {
				select {
				case ch <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			last = cur
		}
	}()
	return ch, nil
}

// OOMKills returns how many processes the kernel OOM-killed in the cgroup:
// "oom_kill" of memory.oom_control (v1, kernel 4.13+) or memory.events (v2).
// It lets the runtime say why a container died during start.
func (m *manager) OOMKills() (uint64, error) {
	var d, file string
	switch {
	case m.v1["memory"] != "":
		d, file = m.v1["memory"], "memory.oom_control"
	case m.mode == Unified && m.unified != "":
		d, file = m.unified, "memory.events"
	default:
		return 0, fmt.Errorf("%w: no memory controller", ErrNotSupported)
	}
	s, err := readString(d, file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s/%s: no oom_kill count", d, file)
}
