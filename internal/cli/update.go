package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v3"
)

func updateCommand() *cli.Command {
	return &cli.Command{
		Name: "update", Usage: "change the resource limits of a container", ArgsUsage: "<container-id>",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resources", Aliases: []string{"r"}, Usage: "linux.resources JSON file, or - for stdin"},
			&cli.StringFlag{Name: "blkio-weight", Usage: "block IO weight (10-1000)"},
			&cli.StringFlag{Name: "cpu-period", Usage: "CPU CFS period (us)"},
			&cli.StringFlag{Name: "cpu-quota", Usage: "CPU CFS quota (us)"},
			&cli.StringFlag{Name: "cpu-share", Usage: "CPU shares"},
			&cli.StringFlag{Name: "cpu-rt-period", Usage: "realtime period (us)"},
			&cli.StringFlag{Name: "cpu-rt-runtime", Usage: "realtime runtime (us)"},
			&cli.StringFlag{Name: "cpu-idle", Usage: "1 to make the cgroup SCHED_IDLE"},
			&cli.StringFlag{Name: "cpuset-cpus", Usage: "CPUs allowed"},
			&cli.StringFlag{Name: "cpuset-mems", Usage: "memory nodes allowed"},
			&cli.StringFlag{Name: "memory", Usage: "memory limit (bytes, or with k/m/g suffix; -1 unlimited)"},
			&cli.StringFlag{Name: "memory-reservation", Usage: "memory soft limit"},
			&cli.StringFlag{Name: "memory-swap", Usage: "memory + swap limit"},
			&cli.StringFlag{Name: "pids-limit", Usage: "maximum number of pids (-1 unlimited)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			r, err := updateResources(cmd)
			if err != nil {
				return err
			}
			return c.Update(r)
		},
	}
}

func updateResources(cmd *cli.Command) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	if path := cmd.String("resources"); path != "" {
		var in io.Reader = os.Stdin
		if path != "-" {
			f, err := os.Open(path)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			in = f
		}
		dec := json.NewDecoder(io.LimitReader(in, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(r); err != nil {
			return nil, fmt.Errorf("--resources: %w", err)
		}
	}
	var err error
	num := func(flag string, set func(v int64)) {
		s := cmd.String(flag)
		if s == "" || err != nil {
			return
		}
		v, perr := parseSize(s)
		if perr != nil {
			err = fmt.Errorf("--%s: %w", flag, perr)
			return
		}
		set(v)
	}
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	num("memory", func(v int64) { mem().Limit = &v })
	num("memory-reservation", func(v int64) { mem().Reservation = &v })
	num("memory-swap", func(v int64) { mem().Swap = &v })
	num("cpu-quota", func(v int64) { cpu().Quota = &v })
	num("cpu-rt-runtime", func(v int64) { cpu().RealtimeRuntime = &v })
	num("cpu-period", func(v int64) { u := uint64(v); cpu().Period = &u })
	num("cpu-share", func(v int64) { u := uint64(v); cpu().Shares = &u })
	num("cpu-rt-period", func(v int64) { u := uint64(v); cpu().RealtimePeriod = &u })
	num("cpu-idle", func(v int64) { cpu().Idle = &v })
	num("pids-limit", func(v int64) { r.Pids = &specs.LinuxPids{Limit: &v} })
	num("blkio-weight", func(v int64) {
		w := uint16(v)
		r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	})
	if err != nil {
		return nil, err
	}
	if s := cmd.String("cpuset-cpus"); s != "" {
		cpu().Cpus = s
	}
	if s := cmd.String("cpuset-mems"); s != "" {
		cpu().Mems = s
	}
	return r, nil
}

// parseSize reads a number with an optional k/m/g/t suffix (powers of 1024,
// as runc and docker do); "-1" means unlimited.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	ls := strings.ToLower(s)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40} {
		for _, suf := range []string{suffix + "b", suffix} {
			if strings.HasSuffix(ls, suf) {
				ls, mult = strings.TrimSuffix(ls, suf), m
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(ls, "b"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if v < 0 {
		return v, nil
	}
	return v * mult, nil
}
