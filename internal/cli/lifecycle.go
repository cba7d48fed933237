package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hako-runtime/hako/internal/runtime"
	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"
)

func createFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "path to the bundle directory"},
		&cli.StringFlag{Name: "console-socket", Usage: "unix socket to send the pty master to"},
		&cli.StringFlag{Name: "pid-file", Usage: "file to write the container's pid to"},
		&cli.BoolFlag{Name: "no-pivot", Usage: "use MS_MOVE + chroot instead of pivot_root"},
		&cli.BoolFlag{Name: "no-new-keyring", Usage: "do not create a session keyring"},
		&cli.IntFlag{Name: "preserve-fds", Usage: "pass N extra fds (3..3+N-1) to the container"},
	}
}

func createOpts(cmd *cli.Command) runtime.CreateOpts {
	return runtime.CreateOpts{
		Bundle:        cmd.String("bundle"),
		ConsoleSocket: cmd.String("console-socket"),
		PidFile:       cmd.String("pid-file"),
		NoPivot:       cmd.Bool("no-pivot"),
		NoNewKeyring:  cmd.Bool("no-new-keyring"),
		PreserveFDs:   int(cmd.Int("preserve-fds")),
	}
}

func createCommand() *cli.Command {
	return &cli.Command{
		Name: "create", Usage: "create a container", ArgsUsage: "<container-id>",
		Flags: createFlags(),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, err := idArg(cmd)
			if err != nil {
				return err
			}
			_, err = rt(cmd).Create(ctx, id, createOpts(cmd))
			return err
		},
	}
}

func startCommand() *cli.Command {
	return &cli.Command{
		Name: "start", Usage: "start a created container", ArgsUsage: "<container-id>",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return c.Start(ctx)
		},
	}
}

func runCommand() *cli.Command {
	flags := append(createFlags(),
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the container to exit"},
		&cli.BoolFlag{Name: "keep", Usage: "do not delete the container after it exits"},
	)
	return &cli.Command{
		Name: "run", Usage: "create and start a container, and wait for it", ArgsUsage: "<container-id>",
		Flags: flags,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			id, err := idArg(cmd)
			if err != nil {
				return err
			}
			o := createOpts(cmd)
			detach := cmd.Bool("detach")
			if detach {
				_, err := rt(cmd).Run(ctx, id, o)
				return err
			}
			o.AllocateConsole = o.ConsoleSocket == ""
			// Every signal is caught before the container's process
			// starts (Create waits on StartGate), so none is lost
			// between its start and our forwarding.
			fwd := newForwarder()
			o.StartGate = fwd.ready
			c, err := rt(cmd).Run(ctx, id, o)
			if err != nil {
				return err
			}
			code := fwd.wait(c.Process, c.Console)
			if !cmd.Bool("keep") {
				if err := c.Remove(ctx); err != nil {
					return err
				}
			}
			return exitError{code}
		},
	}
}

func stateCommand() *cli.Command {
	return &cli.Command{
		Name: "state", Usage: "print the state of a container", ArgsUsage: "<container-id>",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return printJSON(stateJSON(c))
		},
	}
}

// containerState is runc's `state` / `list --format json` object: the
// runtime-spec state plus rootfs, created and owner.
type containerState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func stateJSON(c *runtime.Container) containerState {
	st := c.State()
	return containerState{
		OCIVersion: st.Version, ID: st.ID, Pid: st.Pid, Status: string(st.Status),
		Bundle: st.Bundle, Rootfs: c.Rootfs(), Created: c.Created(), Owner: c.Owner(),
		Annotations: st.Annotations,
	}
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func killCommand() *cli.Command {
	return &cli.Command{
		Name: "kill", Usage: "send a signal to a container", ArgsUsage: "<container-id> [signal]",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "signal every process of the container"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			sigName := "TERM"
			if cmd.NArg() > 1 {
				sigName = cmd.Args().Get(1)
			}
			sig, err := parseSignal(sigName)
			if err != nil {
				return err
			}
			return c.Kill(sig, cmd.Bool("all"))
		},
	}
}

// parseSignal accepts "9", "KILL" and "SIGKILL".
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func deleteCommand() *cli.Command {
	return &cli.Command{
		Name: "delete", Usage: "delete a container", ArgsUsage: "<container-id>",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill the container first if it is running"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return c.Delete(ctx, cmd.Bool("force"))
		},
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name: "list", Aliases: []string{"ls"}, Usage: "list containers",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only ids"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			cs, err := rt(cmd).List()
			if err != nil {
				return err
			}
			if cmd.Bool("quiet") {
				for _, c := range cs {
					fmt.Println(c.ID())
				}
				return nil
			}
			switch cmd.String("format") {
			case "json":
				out := make([]containerState, 0, len(cs))
				for _, c := range cs {
					out = append(out, stateJSON(c))
				}
				return json.NewEncoder(os.Stdout).Encode(out)
			case "table":
				w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
				fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
				for _, c := range cs {
					st := stateJSON(c)
					fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", st.ID, st.Pid, st.Status, st.Bundle, st.Created.Format(time.RFC3339Nano), st.Owner)
				}
				return w.Flush()
			default:
				return fmt.Errorf("--format: unknown format %q (table or json)", cmd.String("format"))
			}
		},
	}
}

func pauseCommand() *cli.Command {
	return &cli.Command{
		Name: "pause", Usage: "freeze every process of a container", ArgsUsage: "<container-id>",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return c.Pause()
		},
	}
}

func resumeCommand() *cli.Command {
	return &cli.Command{
		Name: "resume", Usage: "thaw a paused container", ArgsUsage: "<container-id>",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			return c.Resume()
		},
	}
}
