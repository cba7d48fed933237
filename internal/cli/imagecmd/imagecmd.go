// Package imagecmd is hako's image command line (pull, images, image
// inspect/prune, tag, rmi, load, save, import): flag handling and output
// only, each command a few calls into internal/image/store. It is linked
// into hako-engine, not into the lean hako binary (see internal/cli/engine.go).
package imagecmd

import (
	"fmt"
	"log/slog"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/registries"
)

// Commands returns the image commands, for cli.Main in hako-engine.
func Commands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, registryCommands()...)
	cmds = append(cmds, archiveCommands()...)
	return cmds
}

// openStore opens the image store named by the global --data-root and
// --config flags, with credentials from the docker/podman auth files.
func openStore(cmd *cli.Command) (*store.Store, error) {
	log := slog.Default()
	cfg, err := registries.Load(cmd.String("config"), log)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", cmd.String("config"), err)
	}
	auth, err := registries.LoadAuth(registries.DefaultAuthFiles(os.Getenv)...)
	if err != nil {
		return nil, fmt.Errorf("load registry credentials: %w", err)
	}
	s, err := store.Open(store.Options{
		DataRoot:   cmd.String("data-root"),
		Registries: cfg,
		Auth:       auth,
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", cmd.String("data-root"), err)
	}
	return s, nil
}

// unpackNeedsRoot refuses, before anything is downloaded, the commands
// that unpack layers when hako runs unprivileged: unpacking restores the
// files' owners (chown), which only root can, and rootless image storage
// (unpacking inside a user namespace) is not built yet. load, import,
// save, images and tag need no privilege.
func unpackNeedsRoot(what string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s: unpacking image layers needs root; rootless image storage is not supported yet (load, import, save, images and tag work without root)", what)
	}
	return nil
}

// platformFlag parses --platform (os/arch[/variant]); nil when not given.
func platformFlag(cmd *cli.Command) (*ocispec.Platform, error) {
	p := cmd.String("platform")
	if p == "" {
		return nil, nil
	}
	pl, err := image.ParsePlatform(p)
	if err != nil {
		return nil, fmt.Errorf("--platform: %w", err)
	}
	return &pl, nil
}
