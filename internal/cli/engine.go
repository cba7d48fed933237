package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v3"
)

// The engine commands (images now; pods and the CRI daemon later) live in a
// second binary, hako-engine, installed beside hako. Every package init() in
// a Go binary runs at every start, and the registry client, digest and
// compression packages cost ~0.7 ms of init (GODEBUG=inittrace=1); hako
// starts twice per container (the CLI, then `hako init`), so linking them
// into hako would add ~1.4 ms to the ~8 ms start-up that beats runc 2:1.
// The lean hako keeps runc's command line and hands an engine command to
// hako-engine with the same arguments (git-style); hako-engine has both
// command sets, so either binary accepts any command.
//
// engineCommand describes one engine command for hako's help and dispatch;
// its implementation is in internal/cli/imagecmd (and later siblings).
type engineCommand struct {
	name, usage, category string
}

// EngineBinary is the file name of the engine binary, looked up beside the
// running executable.
const EngineBinary = "hako-engine"

func engineCommands() []engineCommand {
	return []engineCommand{
		{"pull", "pull an image from a registry", "images"},
		{"images", "list images", "images"},
		{"image", "manage images (inspect, mount, umount, prune)", "images"},
		{"tag", "give an image another name", "images"},
		{"rmi", "remove images", "images"},
		{"load", "load images from an OCI archive or docker save tarball", "images"},
		{"save", "save images to an OCI archive or docker save tarball", "images"},
		{"import", "make an image from a root file system tarball", "images"},
	}
}

// withEngine returns the engine commands: the given implementations (in
// hako-engine), or placeholders that exec hako-engine (in hako).
func withEngine(args []string, descs []engineCommand, impls []*cli.Command) []*cli.Command {
	byName := map[string]*cli.Command{}
	for _, c := range impls {
		byName[c.Name] = c
	}
	var cmds []*cli.Command
	for _, d := range descs {
		if c, ok := byName[d.name]; ok {
			if c.Category == "" {
				c.Category = d.category
			}
			cmds = append(cmds, c)
			delete(byName, d.name)
			continue
		}
		cmds = append(cmds, &cli.Command{
			Name:            d.name,
			Usage:           d.usage,
			Category:        d.category,
			SkipFlagParsing: true,
			Action:          func(ctx context.Context, _ *cli.Command) error { return execEngine(args) },
		})
	}
	for _, c := range impls { // implementations without a description, in their order
		if _, ok := byName[c.Name]; ok {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// execEngine replaces this process with hako-engine and the same arguments.
func execEngine(args []string) error {
	path, err := enginePath()
	if err != nil {
		return err
	}
	argv := append([]string{"hako"}, args[1:]...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil // not reached
}

// enginePath finds hako-engine beside this executable (as hako-nsenter is).
func enginePath() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", EngineBinary, err)
	}
	if filepath.Base(self) == EngineBinary {
		// hako-engine without the implementation: exec'ing ourselves would
		// loop.
		return "", fmt.Errorf("this command is not built into %s", self)
	}
	path := filepath.Join(filepath.Dir(self), EngineBinary)
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("this command is in %s, which is not installed beside %s", EngineBinary, self)
		}
		return "", fmt.Errorf("find %s: %w", EngineBinary, err)
	}
	return path, nil
}
