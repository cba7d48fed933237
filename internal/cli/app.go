// Package cli is hako's command line: runc's commands and flags, each a few
// calls into internal/runtime and friends.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hako-runtime/hako/internal/runtime"
	"github.com/urfave/cli/v3"
)

// exitError carries the exit code of a container's process (run, exec).
type exitError struct{ code int }

func (e exitError) Error() string { return "exit status " + strconv.Itoa(e.code) }

// Main runs the CLI and returns the process exit code. engine holds the
// implementations of the engine commands (image, later pod and daemon) in
// the hako-engine binary; the lean hako binary passes none, and its
// placeholders exec hako-engine instead (see engine.go).
func Main(ctx context.Context, args []string, engine ...*cli.Command) int {
	app := newApp(args, engine...)
	app.Commands = onlyInvoked(app.Commands, args)
	err := app.Run(ctx, args)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// One line on stderr; with --log also a record in the log file, where
	// containerd looks for it (--log-format json).
	msg := err.Error()
	if !logToStderr {
		slog.Error(msg)
	}
	fmt.Fprintln(os.Stderr, "hako: "+msg)
	return 1
}

// logToStderr is set when the logger already writes to stderr. It lives for
// one CLI invocation only (Main is called once per process).
var logToStderr = true

func defaultRoot() string {
	if os.Geteuid() != 0 {
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return filepath.Join(dir, "hako")
		}
	}
	return "/run/hako"
}

func newApp(args []string, engine ...*cli.Command) *cli.Command {
	app := &cli.Command{
		Name:    "hako",
		Usage:   "OCI container runtime",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: defaultRoot(), Usage: "directory for container state"},
			&cli.StringFlag{Name: "log", Usage: "write errors and warnings to this file (default: stderr)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json"},
			&cli.BoolFlag{Name: "debug", Usage: "log debug output"},
			// Accepted for compatibility with tools that pass them to runc.
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "accepted for compatibility; the cgroupfs driver is used"},
			&cli.StringFlag{Name: "criu", Usage: "accepted for compatibility; checkpoint is not supported"},
			&cli.StringFlag{Name: "rootless", Value: "auto", Usage: "true, false or auto"},
			// Image and engine commands: parsed here too, so that the lean
			// binary accepts them before a command it hands to hako-engine.
			&cli.StringFlag{Name: "data-root", Value: defaultDataRoot(), Usage: "directory for images and snapshots"},
			&cli.StringFlag{Name: "config", Value: "/etc/hako/hako.toml", Usage: "registries, mirrors and engine settings (TOML)"},
		},
		Before:                setupLogging,
		ExitErrHandler:        func(context.Context, *cli.Command, error) {},
		HideHelpCommand:       false,
		EnableShellCompletion: false,
		Commands: []*cli.Command{
			createCommand(), startCommand(), runCommand(), stateCommand(), killCommand(),
			deleteCommand(), listCommand(), psCommand(), execCommand(), pauseCommand(),
			resumeCommand(), updateCommand(), eventsCommand(), specCommand(), featuresCommand(),
		},
		OnUsageError: usageError,
	}
	app.Commands = append(app.Commands, withEngine(args, engineCommands(), engine)...)
	for _, c := range app.Commands {
		c.OnUsageError = usageError
	}
	return app
}

// usageError makes a wrong flag a one-line error, as for any other error:
// tools that drive the runtime read its stderr, not a help page.
func usageError(_ context.Context, cmd *cli.Command, err error, _ bool) error {
	if cmd.Root() == cmd {
		return fmt.Errorf("%w (see --help)", err)
	}
	return fmt.Errorf("%s: %w (see %s --help)", cmd.Name, err, cmd.Name)
}

// onlyInvoked returns just the command that args name, when that is plain
// to see, or all of them. urfave/cli sets up and checks every command
// (help flags, duplicate flag names) at each start, ~0.1-0.2 ms for all
// of them, and hako runs once per container operation; the one command
// parses its flags exactly as before. Help, version, `help CMD` and
// anything unusual get the full command list.
func onlyInvoked(cmds []*cli.Command, args []string) []*cli.Command {
	name := invokedCommand(args)
	if name == "" || name == "help" || name == "h" {
		return cmds
	}
	for _, c := range cmds {
		if c.HasName(name) {
			return []*cli.Command{c}
		}
	}
	return cmds
}

// invokedCommand returns the first argument after the global flags, or ""
// when a flag it does not know comes first.
func invokedCommand(args []string) string {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "root", "log", "log-format", "criu", "rootless", "data-root", "config": // string flags
			if !hasValue {
				i++
			}
		case "debug", "systemd-cgroup": // bool flags
		default: // --help, --version, "--", or unknown: let urfave/cli decide
			return ""
		}
	}
	return ""
}

// version is set by the linker (-X); "dev" otherwise.
var version = "dev"

func setupLogging(ctx context.Context, cmd *cli.Command) (context.Context, error) {
	var w io.Writer = os.Stderr
	if path := cmd.String("log"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return ctx, fmt.Errorf("open log %s: %w", path, err)
		}
		w = f
		logToStderr = false
	}
	level := slog.LevelWarn
	if cmd.Bool("debug") {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch cmd.String("log-format") {
	case "json":
		h = slog.NewJSONHandler(w, opts)
	case "text", "":
		h = slog.NewTextHandler(w, opts)
	default:
		return ctx, fmt.Errorf("--log-format: unknown format %q (text or json)", cmd.String("log-format"))
	}
	slog.SetDefault(slog.New(h))
	return ctx, nil
}

// defaultDataRoot is where images and snapshots live: /var/lib/hako, or for
// a rootless user $XDG_DATA_HOME/hako (~/.local/share/hako), as podman does.
func defaultDataRoot() string {
	if os.Geteuid() != 0 {
		if dir := os.Getenv("XDG_DATA_HOME"); dir != "" {
			return filepath.Join(dir, "hako")
		}
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "share", "hako")
		}
	}
	return "/var/lib/hako"
}

// rt builds the runtime from the global flags.
func rt(cmd *cli.Command) *runtime.Runtime {
	rootless := os.Geteuid() != 0
	switch cmd.String("rootless") {
	case "true":
		rootless = true
	case "false":
		rootless = false
	}
	return &runtime.Runtime{Root: cmd.String("root"), Rootless: rootless}
}

// idArg returns the single container id argument.
func idArg(cmd *cli.Command) (string, error) {
	if cmd.NArg() < 1 {
		return "", fmt.Errorf("%s: a container id is required", cmd.Name)
	}
	return cmd.Args().First(), nil
}

func load(cmd *cli.Command) (*runtime.Container, error) {
	id, err := idArg(cmd)
	if err != nil {
		return nil, err
	}
	return rt(cmd).Load(id)
}

func one() *int { n := 1; return &n }
