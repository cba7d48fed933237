package imagecmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"
	"golang.org/x/sys/unix"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/archive"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/metadata"
)

// archiveCommands: load, save, import.
func archiveCommands() []*cli.Command {
	return []*cli.Command{loadCommand(), saveCommand(), importCommand()}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "load images from an OCI archive or docker save tarball (gzip, bzip2 or zstd compressed too)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read from `FILE` (default: standard input)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the loaded images' IDs, one a line"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() > 0 {
				return fmt.Errorf("load: unexpected argument %q (the archive is given with -i FILE)", cmd.Args().First())
			}
			ctx, stop := archiveInterruptible(ctx)
			defer stop()
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			recs, err := archiveLoad(ctx, s, cmd.String("input"), cmd.Root().Reader)
			if err != nil {
				if ctx.Err() != nil {
					return errors.New("load: interrupted; nothing was loaded")
				}
				return fmt.Errorf("load: %w", err)
			}
			w := cmd.Root().Writer
			for _, rec := range recs {
				switch {
				case cmd.Bool("quiet") || store.IsDangling(rec.Name):
					id, err := s.ImageID(ctx, rec)
					if err != nil {
						return fmt.Errorf("load: %w", err)
					}
					if cmd.Bool("quiet") {
						fmt.Fprintln(w, id)
					} else {
						fmt.Fprintln(w, "Loaded image ID:", id)
					}
				default:
					fmt.Fprintln(w, "Loaded image:", archiveFamiliar(rec.Name))
				}
			}
			return nil
		},
	}
}

// archiveLoad loads from the file at path, or from stdin for "" or "-".
// An uncompressed file (stdin redirected from one too) is read in place;
// a pipe or a compressed file is first copied (decompressed) under the
// data root.
func archiveLoad(ctx context.Context, s *store.Store, path string, stdin io.Reader) ([]metadata.Image, error) {
	var f *os.File
	name := path
	if path == "" || path == "-" {
		if archiveIsTerminal(stdin) {
			return nil, errors.New("no archive given: use -i FILE or redirect standard input")
		}
		name = "standard input"
		sf, ok := stdin.(*os.File)
		if !ok || !archiveIsPlainFileAtStart(sf) {
			recs, err := s.LoadStream(ctx, stdin)
			if err == nil && len(recs) == 0 {
				err = errors.New("standard input holds no image")
			}
			return recs, err
		}
		f = sf
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
	}
	defer f.Close()
	compressed, err := archive.IsCompressed(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if compressed {
		return s.LoadStream(ctx, f)
	}
	a, err := archive.OpenFile(ctx, f, name)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if len(a.Images()) == 0 {
		return nil, fmt.Errorf("archive %s holds no image", name)
	}
	return s.LoadArchive(ctx, a)
}

// archiveIsPlainFileAtStart reports whether f is a regular file not yet
// read from, which can be indexed in place like a named file.
func archiveIsPlainFileAtStart(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	off, err := f.Seek(0, io.SeekCurrent)
	return err == nil && off == 0
}

func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "save images to an OCI archive or docker save tarball",
		ArgsUsage: "IMAGE [IMAGE...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (default: standard output, unless it is a terminal)"},
			&cli.StringFlag{Name: "format", Value: "oci-archive", Usage: "oci-archive (an OCI image layout) or docker-archive (what docker save writes: one platform, manifest.json)"},
			&cli.StringFlag{Name: "platform", Usage: "for docker-archive: the platform to save of a multi-platform image (default: the one pulled, or this host's)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.NArg() == 0 {
				return errors.New("save: no image given (hako save [-o FILE] IMAGE...)")
			}
			var opts archive.SaveOptions
			switch cmd.String("format") {
			case "oci-archive", "oci":
				opts.Format = archive.FormatOCI
			case "docker-archive", "docker":
				opts.Format = archive.FormatDocker
			default:
				return fmt.Errorf("save: --format %q: want oci-archive or docker-archive", cmd.String("format"))
			}
			platform, err := platformFlag(cmd)
			if err != nil {
				return fmt.Errorf("save: %w", err)
			}
			opts.Platform = platform
			out := cmd.String("output")
			if (out == "" || out == "-") && archiveIsTerminal(cmd.Root().Writer) {
				return errors.New("save: refusing to write an archive to a terminal: use -o FILE or redirect standard output")
			}
			ctx, stop := archiveInterruptible(ctx)
			defer stop()
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			var imgs []archive.Image
			for _, arg := range cmd.Args().Slice() {
				rec, err := resolve(ctx, s, arg) // by name or ID, as image inspect and rmi
				if err != nil {
					return fmt.Errorf("save: %w", err)
				}
				img := archive.Image{Name: rec.Name, Target: rec.Target}
				if store.IsDangling(rec.Name) {
					img.Name = "" // saved unnamed, as it came
				}
				if opts.Format == archive.FormatDocker && opts.Platform == nil {
					if lp, ok := rec.Labels[store.LabelPlatform]; ok {
						if pl, err := image.ParsePlatform(lp); err == nil {
							opts.Platform = &pl
						}
					}
				}
				imgs = append(imgs, img)
			}
			save := func(w io.Writer) error {
				err := archive.Save(ctx, w, s.Content, imgs, opts)
				if err != nil && ctx.Err() != nil {
					return errors.New("save: interrupted")
				}
				return err
			}
			if out == "" || out == "-" {
				bw := bufio.NewWriterSize(cmd.Root().Writer, 1<<20)
				if err := save(bw); err != nil {
					return err
				}
				return bw.Flush()
			}
			return archiveWriteFile(out, save)
		},
	}
}

// archiveWriteFile writes path atomically: into a temporary file beside
// it, renamed over path only when complete, so a failed or interrupted
// save leaves no half archive (and an existing file as it was).
func archiveWriteFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".hako-")
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	ok = true
	return nil
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "make a one-layer image from a root file system tarball (plain, gzip, bzip2 or zstd), like docker import",
		ArgsUsage: "FILE|- [NAME]",
		// --change 'CMD ["a", "b"]' is one value, commas and all.
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "apply a Dockerfile `INSTRUCTION` to the config: " + strings.Join(archive.ChangeInstructions, ", ")},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "comment recorded in the image history"},
			&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] of the image (default: this host's)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			args := cmd.Args().Slice()
			if len(args) < 1 || len(args) > 2 {
				return errors.New("import: want FILE|- [NAME]")
			}
			src, name := args[0], ""
			if len(args) == 2 {
				name = args[1]
				if _, err := image.ParseReference(name); err != nil {
					return fmt.Errorf("import: %w", err)
				}
			}
			if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
				return fmt.Errorf("import: %s: importing from a URL is not supported; download it and import the file", src)
			}
			var opts archive.ImportOptions
			opts.Comment = cmd.String("message")
			for _, c := range cmd.StringSlice("change") {
				if err := archive.ApplyChange(&opts.Config, c); err != nil {
					return fmt.Errorf("import: --change: %w", err)
				}
			}
			platform, err := platformFlag(cmd)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			if platform != nil {
				opts.Platform = *platform
			}
			var r io.Reader
			if src == "-" {
				r = cmd.Root().Reader
				if archiveIsTerminal(r) {
					return errors.New("import: refusing to read a tarball from a terminal: redirect standard input")
				}
			} else {
				f, err := os.Open(src)
				if err != nil {
					return fmt.Errorf("import: %w", err)
				}
				defer f.Close()
				r = f
			}
			ctx, stop := archiveInterruptible(ctx)
			defer stop()
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			var rec metadata.Image
			if name == "" {
				rec, err = s.ImportUnnamed(ctx, r, opts)
			} else {
				rec, err = s.Import(ctx, r, name, opts)
			}
			if err != nil {
				if ctx.Err() != nil {
					return errors.New("import: interrupted; nothing was imported")
				}
				return err // archive.Import's errors say "import: ..."
			}
			id, err := s.ImageID(ctx, rec)
			if err != nil {
				return fmt.Errorf("import: %w", err)
			}
			fmt.Fprintln(cmd.Root().Writer, id)
			return nil
		},
	}
}

// archiveInterruptible is ctx cancelled by SIGINT or SIGTERM, so that an
// interrupted command rolls back (the archive package stops between
// blobs and takes back what it stored) rather than dying half-way. A
// second signal gets the default behaviour: it kills.
func archiveInterruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// archiveFamiliar is the short name docker prints ("busybox:latest").
func archiveFamiliar(name string) string {
	r, err := image.ParseReference(name)
	if err != nil {
		return name
	}
	return r.Familiar()
}

// archiveIsTerminal reports whether f (stdin or stdout) is a terminal, to
// which an archive is never read or written (as docker refuses).
func archiveIsTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(file.Fd()), unix.TCGETS)
	return err == nil
}
