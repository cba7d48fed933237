package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
)

func psCommand() *cli.Command {
	return &cli.Command{
		Name: "ps", Usage: "list the processes of a container", ArgsUsage: "<container-id> [ps options]",
		StopOnNthArg: one(),
		Flags:        []cli.Flag{&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			pids, err := c.Pids()
			if err != nil {
				return err
			}
			if cmd.String("format") == "json" {
				if pids == nil {
					pids = []int{}
				}
				return json.NewEncoder(os.Stdout).Encode(pids)
			}
			if cmd.String("format") != "table" {
				return fmt.Errorf("--format: unknown format %q (table or json)", cmd.String("format"))
			}
			psArgs := cmd.Args().Slice()[1:]
			if len(psArgs) > 0 && psArgs[0] == "--" {
				psArgs = psArgs[1:]
			}
			if len(psArgs) == 0 {
				psArgs = []string{"-ef"}
			}
			return filterPS(ctx, psArgs, pids)
		},
	}
}

// filterPS runs ps(1) and keeps the header and the lines of our pids, as
// runc does.
func filterPS(ctx context.Context, args []string, pids []int) error {
	out, err := exec.CommandContext(ctx, "ps", args...).Output()
	if err != nil {
		return fmt.Errorf("ps %s: %w", strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			col = i
		}
	}
	if col < 0 {
		return fmt.Errorf("ps output has no PID column")
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	fmt.Println(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) <= col {
			continue
		}
		if p, err := strconv.Atoi(f[col]); err == nil && want[p] {
			fmt.Println(l)
		}
	}
	return nil
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name: "events", Usage: "print container statistics and OOM events", ArgsUsage: "<container-id>",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stats", Usage: "print statistics once and exit"},
			&cli.DurationFlag{Name: "interval", Value: 5 * time.Second, Usage: "statistics interval"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return c.Events(ctx, cmd.Bool("stats"), cmd.Duration("interval"), json.NewEncoder(os.Stdout))
		},
	}
}
