package imagecmd

import "github.com/urfave/cli/v3"

// registryCommands: pull, images, image (inspect, mount, umount, prune and
// podman's aliases ls, pull, rm, tag), tag, rmi.
func registryCommands() []*cli.Command {
	return []*cli.Command{
		pullCommand("pull"),
		imagesCommand("images"),
		{
			Name:  "image",
			Usage: "manage images (inspect, mount, umount, prune; ls, pull, rm, tag)",
			Commands: []*cli.Command{
				inspectCommand(),
				mountCommand(),
				umountCommand(),
				pruneCommand(),
				imagesCommand("ls"),
				pullCommand("pull"),
				rmiCommand("rm"),
				tagCommand("tag"),
			},
		},
		tagCommand("tag"),
		rmiCommand("rmi"),
	}
}
