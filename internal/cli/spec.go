package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hako-runtime/hako/internal/seccomp"
	"github.com/hako-runtime/hako/internal/spec"
	"github.com/urfave/cli/v3"
)

func specCommand() *cli.Command {
	return &cli.Command{
		Name: "spec", Usage: "write a default config.json",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "bundle directory to write config.json into"},
			&cli.BoolFlag{Name: "rootless", Usage: "a config for an unprivileged user"},
			&cli.BoolFlag{Name: "no-seccomp", Usage: "leave out Docker's default seccomp profile (runc spec's output)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s := spec.Default()
			if cmd.Bool("rootless") {
				spec.ToRootless(s, uint32(os.Geteuid()), uint32(os.Getegid()))
			}
			// Least privilege by default (issue 6): runc's spec has no
			// seccomp profile; ours carries Docker's default one, resolved
			// for the capabilities the config grants.
			if !cmd.Bool("no-seccomp") {
				s.Linux.Seccomp = seccomp.DefaultProfile(s.Process.Capabilities.Bounding)
			}
			path := filepath.Join(cmd.String("bundle"), "config.json")
			if _, err := os.Stat(path); err == nil {
				return fmt.Errorf("%s already exists: remove it first", path)
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			b, err := json.MarshalIndent(s, "", "\t")
			if err != nil {
				return err
			}
			return os.WriteFile(path, append(b, '\n'), 0o666)
		},
	}
}

func featuresCommand() *cli.Command {
	return &cli.Command{
		Name: "features", Usage: "print the features hako supports (runtime-spec features.md)",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return printJSON(spec.Features(seccompFeatures()))
		},
	}
}
