package imagecmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/remote"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/registries"
)

// stallTimeout is how long a blob stream may deliver nothing.
const stallTimeout = time.Minute

func pullCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "pull an image from a registry and unpack it, ready to run",
		ArgsUsage: "NAME[:TAG|@DIGEST]",
		Description: `Pulls the image into the content store under --data-root and unpacks its
layers into snapshots (<data-root>/snapshots/overlay, or native copies where
overlayfs cannot be used). Each layer is unpacked as soon as it and the
layers below it are downloaded. Mirrors, insecure and blocked registries
come from --config; credentials from $REGISTRY_AUTH_FILE or the docker and
podman auth files.

On a terminal each layer has a progress bar; otherwise one line per layer
state change. --quiet prints only the image ID (the config digest).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] to pull from a multi-platform image (default: this host's)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image ID"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 1 {
				return fmt.Errorf("pull: need exactly one image name, got %d", cmd.Args().Len())
			}
			if err := unpackNeedsRoot("pull"); err != nil {
				return err
			}
			name := cmd.Args().First()
			platform, err := platformFlag(cmd)
			if err != nil {
				return err
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			quiet := cmd.Bool("quiet")
			var view *pullView
			// A connection that stops delivering is abandoned and the
			// blob resumed (the kubelet's image pull progress deadline
			// is the same idea); without it a stuck stream hangs the pull.
			opts := store.PullOptions{Platform: platform, StallTimeout: stallTimeout}
			var unpackFn func(store.UnpackProgress)
			if !quiet {
				tty, width, height := terminal(os.Stdout)
				view = newPullView(os.Stdout, tty, width)
				view.height = height
				opts.Progress = view.download
				unpackFn = view.unpack
			}
			u, err := s.PullAndUnpack(ctx, name, opts, unpackFn)
			if view != nil {
				view.finish()
			}
			if err != nil {
				return pullError(name, err)
			}
			if quiet {
				fmt.Println(u.Config.Digest.Encoded())
				return nil
			}
			fmt.Printf("Digest: %s\n%s\n", u.Image.Target.Digest, u.Image.Name)
			return nil
		},
	}
}

// pullError turns what the registry client and the store classify into
// one line that says what went wrong first, then the detail.
func pullError(name string, err error) error {
	host := ""
	if ref, perr := image.ParseReference(name); perr == nil {
		host = ref.Domain
	}
	var ne net.Error
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, image.ErrInvalidReference):
		return err
	case errors.Is(err, registries.ErrBlocked):
		return fmt.Errorf("pull %s: registry %s is blocked by the configuration (--config)", name, host)
	case errors.Is(err, remote.ErrUnauthorized):
		return fmt.Errorf("pull %s: authentication to %s failed (credentials from $REGISTRY_AUTH_FILE or auth.json): %s", name, host, innermost(err))
	case errors.Is(err, image.ErrNoMatchingPlatform):
		return fmt.Errorf("pull %s: wrong platform: %s", name, innermost(err))
	case errors.Is(err, image.ErrNotFound):
		return fmt.Errorf("pull %s: image not found in the registry: %s", name, innermost(err))
	case errors.As(err, &dns), errors.As(err, &op), errors.As(err, &ne),
		// The client's ping (GET /v2/) keeps only the text of a dial error.
		strings.Contains(err.Error(), ": ping "):
		msg := innermost(err)
		if _, after, ok := strings.Cut(msg, ": ping "); ok {
			if _, detail, ok := strings.Cut(after, ": "); ok {
				msg = detail // "<repo>: ping <host>: Get ...": the host is said already
			}
		}
		return fmt.Errorf("pull %s: registry %s unreachable: %s", name, host, msg)
	}
	return err
}

// innermost is the last "; "-separated part of an error (an
// EndpointsError lists every endpoint's failure), without the "pull
// <name>: " prefixes that would repeat the name.
func innermost(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "; "); i >= 0 {
		msg = msg[i+2:]
	}
	for {
		i := strings.Index(msg, "pull ")
		j := strings.Index(msg, ": ")
		if i != 0 || j < 0 {
			return msg
		}
		msg = msg[j+2:]
	}
}

// notFound makes a store lookup failure say which image.
func notFound(name string, err error) error {
	if store.IsNotFound(err) {
		return fmt.Errorf("no such image: %s", name)
	}
	return err
}
