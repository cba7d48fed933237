package imagecmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v3"

	"github.com/hako-runtime/hako/internal/content"
	"github.com/hako-runtime/hako/internal/image/store"
)

func tagCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "give an image another name",
		ArgsUsage: "SOURCE TARGET",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() != 2 {
				return fmt.Errorf("tag: need SOURCE and TARGET, got %d arguments", cmd.Args().Len())
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			src, err := resolve(ctx, s, cmd.Args().Get(0))
			if err != nil {
				return err
			}
			_, err = s.Tag(ctx, src.Name, cmd.Args().Get(1))
			return err
		},
	}
}

func rmiCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "remove images",
		ArgsUsage: "NAME|ID...",
		Description: `Removes each name, and the image's layer snapshots that no other image and no
mount needs. An image that a writable snapshot (an image mount, later a
container) stands on is refused unless --force: then the name goes and the
snapshots the mount needs stay until it is unmounted and 'hako image prune'
runs. Blobs are freed by 'hako image prune'.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "remove images in use too (their mounts keep working)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return fmt.Errorf("rmi: need at least one image")
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			var errs []error
			for _, arg := range cmd.Args().Slice() {
				if err := rmiOne(ctx, s, arg, cmd.Bool("force")); err != nil {
					errs = append(errs, err)
				}
			}
			// Like docker: every name is tried; each failure is a line.
			for _, e := range errs[:max(len(errs)-1, 0)] {
				fmt.Fprintln(os.Stderr, "hako: "+e.Error())
			}
			if len(errs) > 0 {
				return errs[len(errs)-1]
			}
			return nil
		},
	}
}

func rmiOne(ctx context.Context, s *store.Store, arg string, force bool) error {
	rec, err := resolve(ctx, s, arg)
	if err != nil {
		return err
	}
	if rec.Name != arg {
		// By ID: only when the ID has one name, or all of its names would
		// silently go.
		if ms, err := byID(ctx, s, arg); err == nil && len(ms) > 1 && !force {
			return fmt.Errorf("rmi %s: the image has %d names; remove them by name, or use --force", arg, len(ms))
		} else if len(ms) > 1 {
			for _, m := range ms[1:] {
				if err := rmiOne(ctx, s, m.rec.Name, force); err != nil {
					return err
				}
			}
		}
	}
	r, err := s.RemoveImage(ctx, rec.Name, force)
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("rmi %s: %w", arg, err)
	}
	if err != nil {
		return notFound(arg, err)
	}
	fmt.Printf("Untagged: %s\n", r.Name)
	for _, sn := range r.Snapshots {
		fmt.Printf("Deleted: %s\n", sn)
	}
	return nil
}

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove blobs and layer snapshots no image needs",
		Description: `Removes dangling images (loaded or imported without a name) that no mount
uses, blobs that no image reaches (left by rmi, or by failed and
interrupted pulls), partial downloads older than an hour, and layer
snapshots that no image and no image mount needs. --all removes every
image that no mount uses first.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "also remove every image not in use"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			var freed int64
			recs, err := s.List(ctx)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if !cmd.Bool("all") && !store.IsDangling(rec.Name) {
					continue
				}
				r, err := s.RemoveImage(ctx, rec.Name, false)
				if errors.Is(err, store.ErrInUse) || store.IsNotFound(err) {
					continue
				}
				if err != nil {
					return err
				}
				fmt.Printf("Deleted image: %s\n", r.Name)
				for _, sn := range r.Snapshots {
					fmt.Printf("Deleted snapshot: %s\n", sn)
				}
				freed += r.Size
			}
			sizes := map[digest.Digest]int64{}
			if err := s.Content.Walk(ctx, func(i content.Info) error {
				sizes[i.Digest] = i.Size
				return nil
			}); err != nil {
				return err
			}
			pr, err := s.Prune(ctx, time.Hour)
			if err != nil {
				return err
			}
			for _, d := range pr.Blobs {
				fmt.Printf("Deleted blob: %s\n", d)
				freed += sizes[d]
			}
			sr, err := s.PruneSnapshots(ctx)
			if err != nil {
				return err
			}
			for _, sn := range sr.Snapshots {
				fmt.Printf("Deleted snapshot: %s\n", sn)
			}
			freed += sr.Size
			fmt.Printf("Total reclaimed space: %s (%d blobs, %d snapshots, %d partial downloads)\n", humanSize(freed), len(pr.Blobs), len(sr.Snapshots), pr.Ingests)
			return nil
		},
	}
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount a writable root file system made from an image; print its path",
		ArgsUsage: "[NAME|ID]",
		Description: `Prepares a writable snapshot on the image (unpacking it first if needed) and
mounts it at <data-root>/mounts/<key>, which it prints: a root file system
for a bundle ('hako spec', then set root.path to it, then 'hako run').
While mounted, the image is in use: rmi refuses it. 'hako image umount
KEY' (or the path) unmounts it and discards what was written there.
Without NAME, lists the mounts: KEY PATH IMAGE.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] of a multi-platform image"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			switch cmd.Args().Len() {
			case 0:
				ms, err := s.Mounts(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 8, 3, ' ', 0)
				fmt.Fprintln(tw, "KEY\tPATH\tIMAGE")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Key, m.Path, m.Image)
				}
				return tw.Flush()
			case 1:
			default:
				return fmt.Errorf("image mount: one image at a time")
			}
			platform, err := platformFlag(cmd)
			if err != nil {
				return err
			}
			if err := unpackNeedsRoot("image mount"); err != nil {
				return err
			}
			rec, err := resolve(ctx, s, cmd.Args().First())
			if err != nil {
				return err
			}
			_, path, err := s.MountImage(ctx, rec.Name, platform)
			if err != nil {
				return err
			}
			fmt.Println(path)
			return nil
		},
	}
}

func umountCommand() *cli.Command {
	return &cli.Command{
		Name:      "umount",
		Aliases:   []string{"unmount"},
		Usage:     "unmount an image mount and discard its writable layer",
		ArgsUsage: "KEY|PATH...",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return fmt.Errorf("image umount: need the key or path 'image mount' printed")
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			for _, k := range cmd.Args().Slice() {
				if err := s.UnmountImage(ctx, k); err != nil {
					return fmt.Errorf("image umount %s: %w", k, err)
				}
			}
			return nil
		},
	}
}
