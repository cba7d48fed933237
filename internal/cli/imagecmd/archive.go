package imagecmd

import "github.com/urfave/cli/v3"

// archiveCommands: load, save, import.
func archiveCommands() []*cli.Command {
	return nil
}
