package imagecmd

import "github.com/urfave/cli/v3"

// registryCommands: pull, images, image (inspect, prune), tag, rmi.
func registryCommands() []*cli.Command {
	return nil
}
