package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v3"
)

func execCommand() *cli.Command {
	return &cli.Command{
		Name: "exec", Usage: "run a process in a running container", ArgsUsage: "<container-id> <command> [args...]",
		StopOnNthArg: one(),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "process.json with the process to run"},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal"},
			&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable"},
			&cli.StringFlag{Name: "cwd", Usage: "working directory in the container"},
			&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID[:GID]"},
			&cli.Int64SliceFlag{Name: "additional-gids", Aliases: []string{"g"}, Usage: "additional gids"},
			&cli.StringSliceFlag{Name: "cap", Aliases: []string{"c"}, Usage: "add a capability"},
			&cli.BoolFlag{Name: "no-new-privs", Usage: "set no_new_privs"},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the process"},
			&cli.StringFlag{Name: "pid-file", Usage: "file to write the process's pid to"},
			&cli.StringFlag{Name: "console-socket", Usage: "unix socket to send the pty master to"},
			&cli.IntFlag{Name: "preserve-fds", Usage: "pass N extra fds to the process"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			c, err := load(cmd)
			if err != nil {
				return err
			}
			p, err := execProcess(cmd, c)
			if err != nil {
				return err
			}
			o := runtime.ExecOpts{
				Process: p, ConsoleSocket: cmd.String("console-socket"),
				PidFile: cmd.String("pid-file"), PreserveFDs: int(cmd.Int("preserve-fds")),
			}
			detach := cmd.Bool("detach")
			if p.Terminal && o.ConsoleSocket == "" {
				if detach {
					return fmt.Errorf("exec: --tty with --detach needs --console-socket")
				}
				o.AllocateConsole = true
			}
			var fwd *forwarder
			if !detach {
				fwd = newForwarder()
				o.StartGate = fwd.ready
			}
			e, err := c.Exec(ctx, o)
			if err != nil {
				return err
			}
			if detach {
				return nil
			}
			return exitError{fwd.wait(e.Process, e.Console)}
		},
	}
}

// execProcess builds the process as runc does: from --process, or from the
// container's own process with args, env, cwd, user and caps overridden.
func execProcess(cmd *cli.Command, c *runtime.Container) (*specs.Process, error) {
	if path := cmd.String("process"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read process %s: %w", path, err)
		}
		var p specs.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("parse process %s: %w", path, err)
		}
		return &p, nil
	}
	args := cmd.Args().Slice()
	if len(args) < 2 {
		return nil, fmt.Errorf("exec: a command is required")
	}
	s, err := c.Spec()
	if err != nil {
		return nil, err
	}
	p := s.Process
	if p == nil {
		p = &specs.Process{}
	}
	p.Args = args[1:]
	p.Terminal = cmd.Bool("tty")
	p.ConsoleSize = nil
	p.Env = append(p.Env, cmd.StringSlice("env")...)
	if cwd := cmd.String("cwd"); cwd != "" {
		p.Cwd = cwd
	}
	if u := cmd.String("user"); u != "" {
		uid, gid, hasGID := strings.Cut(u, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--user %q: uid must be a number", u)
		}
		p.User.UID = uint32(n)
		if hasGID {
			g, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--user %q: gid must be a number", u)
			}
			p.User.GID = uint32(g)
		}
	}
	for _, g := range cmd.Int64Slice("additional-gids") {
		if g < 0 || g > 1<<32-1 {
			return nil, fmt.Errorf("--additional-gids: %d out of range", g)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
	}
	if caps := cmd.StringSlice("cap"); len(caps) > 0 {
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		pc := p.Capabilities
		for _, name := range caps {
			name = strings.ToUpper(name)
			if !strings.HasPrefix(name, "CAP_") {
				name = "CAP_" + name
			}
			pc.Bounding = append(pc.Bounding, name)
			pc.Effective = append(pc.Effective, name)
			pc.Permitted = append(pc.Permitted, name)
			pc.Inheritable = append(pc.Inheritable, name)
			pc.Ambient = append(pc.Ambient, name)
		}
	}
	if cmd.Bool("no-new-privs") {
		p.NoNewPrivileges = true
	}
	return p, nil
}
