package imagecmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"

	"github.com/hako-runtime/hako/internal/image"
	"github.com/hako-runtime/hako/internal/image/store"
	"github.com/hako-runtime/hako/internal/metadata"
	"github.com/hako-runtime/hako/internal/snapshot"
	"github.com/hako-runtime/hako/internal/unpack"
)

// imageRow is one name of an image, as `hako images` shows it and as its
// JSON output spells it (field names are stable).
type imageRow struct {
	ID         string    `json:"Id"`               // config digest, "sha256:..."
	Name       string    `json:"Name"`             // full normalised name
	Repository string    `json:"Repository"`       // name without tag or digest
	Tag        string    `json:"Tag"`              // "<none>" for names by digest
	Digest     string    `json:"Digest"`           // what the name resolved to (index or manifest)
	Created    time.Time `json:"Created,omitzero"` // from the image config; left out if unset
	Size       int64     `json:"Size"`             // compressed bytes of the platform's layers
	Platform   string    `json:"Platform"`
	Err        string    `json:"Error,omitempty"`
}

// describe reads what a row needs from the store.
func describe(ctx context.Context, s *store.Store, rec metadata.Image) imageRow {
	row := imageRow{Name: rec.Name, Digest: rec.Target.Digest.String(), Tag: "<none>", Repository: rec.Name}
	if ref, err := image.ParseReference(rec.Name); err == nil {
		row.Repository = ref.Name()
		if ref.Tag != "" {
			row.Tag = ref.Tag
		}
	}
	if store.IsDangling(rec.Name) {
		row.Repository = "<none>" // loaded or imported without a name, as docker shows it
	}
	img, err := s.Image(ctx, rec.Name, nil)
	if err != nil {
		row.Err = err.Error()
		return row
	}
	m, err := img.Manifest(ctx)
	if err != nil {
		row.Err = err.Error()
		return row
	}
	row.ID = m.Config.Digest.String()
	for _, l := range m.Layers {
		row.Size += l.Size
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		row.Err = err.Error()
		return row
	}
	if cfg.Created != nil {
		row.Created = cfg.Created.UTC()
	}
	row.Platform = image.PlatformString(ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	return row
}

func imagesCommand(name string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     "list images",
		ArgsUsage: "[NAME]",
		Description: `Lists images by name: REPOSITORY TAG IMAGE ID CREATED SIZE, one row per name.
IMAGE ID is the config digest (as docker and podman show it); SIZE is the
compressed size of the layers of the image's platform (what a pull
downloads), not the unpacked size. NAME keeps only that repository (and
tag, if given). --format json prints an array of objects with the fields
Id, Name, Repository, Tag, Digest, Created, Size, Platform.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only image IDs"},
			&cli.BoolFlag{Name: "digests", Usage: "show the digest each name resolved to"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			format := cmd.String("format")
			if format != "table" && format != "json" {
				return fmt.Errorf("--format: unknown format %q (table or json)", format)
			}
			if cmd.Args().Len() > 1 {
				return fmt.Errorf("images: at most one NAME filter")
			}
			match, err := nameFilter(cmd.Args().First())
			if err != nil {
				return err
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			recs, err := s.List(ctx)
			if err != nil {
				return err
			}
			rows := []imageRow{}
			for _, rec := range recs {
				if match(rec.Name) {
					rows = append(rows, describe(ctx, s, rec))
				}
			}
			switch {
			case cmd.Bool("quiet"):
				printIDs(os.Stdout, rows)
				return nil
			case format == "json":
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			printTable(os.Stdout, rows, cmd.Bool("digests"), time.Now())
			return nil
		},
	}
}

// nameFilter matches names by repository, and by tag when the filter has
// one ("busybox" matches every busybox tag, "busybox:1.36" one).
func nameFilter(f string) (func(string) bool, error) {
	if f == "" {
		return func(string) bool { return true }, nil
	}
	want, err := image.ParseReference(f)
	if err != nil {
		return nil, err
	}
	last := f[strings.LastIndex(f, "/")+1:]
	withTag := strings.Contains(last, ":") || strings.Contains(f, "@")
	return func(name string) bool {
		ref, err := image.ParseReference(name)
		if err != nil || ref.Name() != want.Name() {
			return false
		}
		return !withTag || ref.String() == want.String()
	}, nil
}

func shortID(id string) string {
	d := digest.Digest(id)
	if d.Validate() != nil {
		return id
	}
	return short(d)
}

func printIDs(w io.Writer, rows []imageRow) {
	seen := map[string]bool{}
	for _, r := range rows {
		if r.ID != "" && !seen[r.ID] {
			seen[r.ID] = true
			fmt.Fprintln(w, shortID(r.ID))
		}
	}
}

func printTable(w io.Writer, rows []imageRow, digests bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	if digests {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tCREATED\tSIZE")
	} else {
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
	}
	for _, r := range rows {
		id, created, size := shortID(r.ID), ago(r.Created, now), humanSize(r.Size)
		if r.Err != "" {
			id, created, size = "<missing>", "", ""
		}
		if digests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, r.Digest, id, created, size)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Tag, id, created, size)
		}
	}
	tw.Flush()
}

// ago is docker's CREATED column: "3 days ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Second:
		return "Less than a second ago"
	case d < time.Minute:
		return plural(int(d.Seconds()), "second")
	case d < time.Hour:
		return plural(int(d.Minutes()), "minute")
	case d < 48*time.Hour:
		return plural(int(d.Hours()), "hour")
	case d < 14*24*time.Hour:
		return plural(int(d.Hours()/24), "day")
	case d < 60*24*time.Hour:
		return plural(int(d.Hours()/24/7), "week")
	case d < 2*365*24*time.Hour:
		return plural(int(d.Hours()/24/30), "month")
	}
	return plural(int(d.Hours()/24/365), "year")
}

// inspectDoc is one image in `hako image inspect` (after podman's image
// inspect, fields named as there where they exist).
type inspectDoc struct {
	ID                string          `json:"Id"`
	Digest            string          `json:"Digest"`
	RepoTags          []string        `json:"RepoTags"`
	RepoDigests       []string        `json:"RepoDigests"`
	Names             []string        `json:"Names"`
	Created           *time.Time      `json:"Created,omitempty"`
	Os                string          `json:"Os"`
	Architecture      string          `json:"Architecture"`
	Variant           string          `json:"Variant,omitempty"`
	Size              int64           `json:"Size"`         // compressed layers
	UnpackedSize      int64           `json:"UnpackedSize"` // uncompressed layers, counted over those unpacked
	Snapshotter       string          `json:"Snapshotter,omitempty"`
	ManifestDigest    string          `json:"ManifestDigest"`
	ManifestMediaType string          `json:"ManifestMediaType"`
	Manifest          json.RawMessage `json:"Manifest"`
	Config            json.RawMessage `json:"Config"`
	Layers            []inspectLayer  `json:"Layers"`
}

type inspectLayer struct {
	Digest    string `json:"Digest"`
	MediaType string `json:"MediaType"`
	Size      int64  `json:"Size"`
	DiffID    string `json:"DiffID"`
	ChainID   string `json:"ChainID"`
	// Unpacked says whether the layer's snapshot exists; UnpackedSize is
	// its uncompressed size then.
	Unpacked     bool  `json:"Unpacked"`
	UnpackedSize int64 `json:"UnpackedSize,omitempty"`
}

func inspectImage(ctx context.Context, s *store.Store, rec metadata.Image) (inspectDoc, error) {
	img, err := s.Image(ctx, rec.Name, nil)
	if err != nil {
		return inspectDoc{}, err
	}
	m, err := img.Manifest(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	rawM, err := img.RawManifest(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	rawC, err := img.RawConfig(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	doc := inspectDoc{
		ID: m.Config.Digest.String(), Digest: rec.Target.Digest.String(),
		RepoTags: []string{}, RepoDigests: []string{}, Names: []string{},
		Os: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant, Created: cfg.Created,
		ManifestDigest: img.Descriptor().Digest.String(), ManifestMediaType: img.Descriptor().MediaType,
		Manifest: rawM, Config: rawC, Layers: []inspectLayer{},
	}
	// Every name of the same content, as podman lists them.
	recs, err := s.List(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	digests := map[string]bool{}
	for _, r := range recs {
		if r.Target.Digest != rec.Target.Digest {
			continue
		}
		doc.Names = append(doc.Names, r.Name)
		if ref, err := image.ParseReference(r.Name); err == nil {
			if ref.Tag != "" {
				doc.RepoTags = append(doc.RepoTags, ref.Name()+":"+ref.Tag)
			}
			if d := ref.Name() + "@" + rec.Target.Digest.String(); !digests[d] {
				digests[d] = true
				doc.RepoDigests = append(doc.RepoDigests, d)
			}
		}
	}
	sn, driver, err := s.Snapshotter(ctx)
	if err != nil {
		return inspectDoc{}, err
	}
	doc.Snapshotter = driver
	chains := image.ChainIDs(cfg.RootFS.DiffIDs)
	for i, l := range m.Layers {
		il := inspectLayer{Digest: l.Digest.String(), MediaType: l.MediaType, Size: l.Size}
		if i < len(chains) {
			il.DiffID, il.ChainID = cfg.RootFS.DiffIDs[i].String(), chains[i].String()
			if info, err := sn.Stat(ctx, il.ChainID); err == nil && info.Kind == snapshot.KindCommitted {
				il.Unpacked = true
				il.UnpackedSize, _ = strconv.ParseInt(info.Labels[unpack.LabelUncompressedSize], 10, 64)
				doc.UnpackedSize += il.UnpackedSize
			}
		}
		doc.Layers = append(doc.Layers, il)
		doc.Size += l.Size
	}
	return doc, nil
}

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show images as JSON: names, digests, manifest, config, platform, layers",
		ArgsUsage: "NAME|ID...",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return fmt.Errorf("image inspect: need at least one image")
			}
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			docs := []inspectDoc{}
			for _, name := range cmd.Args().Slice() {
				rec, err := resolve(ctx, s, name)
				if err != nil {
					return err
				}
				doc, err := inspectImage(ctx, s, rec)
				if err != nil {
					return fmt.Errorf("image inspect %s: %w", name, err)
				}
				docs = append(docs, doc)
			}
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(docs)
		},
	}
}

// resolve finds an image by name, or else by a prefix of its ID (the
// config digest, with or without "sha256:"), as docker does. An ID with
// several names resolves to the first; rmi refuses that (see rmi.go).
func resolve(ctx context.Context, s *store.Store, arg string) (metadata.Image, error) {
	rec, err := s.Get(ctx, arg)
	if err == nil || !store.IsNotFound(err) && !isIDPrefix(arg) {
		return rec, notFound(arg, err)
	}
	matches, err := byID(ctx, s, arg)
	if err != nil {
		return metadata.Image{}, err
	}
	if len(matches) == 0 {
		return metadata.Image{}, fmt.Errorf("no such image: %s", arg)
	}
	id := matches[0].id
	for _, m := range matches[1:] {
		if m.id != id {
			return metadata.Image{}, fmt.Errorf("image ID prefix %s is ambiguous (%s, %s)", arg, shortID(id), shortID(m.id))
		}
	}
	return matches[0].rec, nil
}

type idMatch struct {
	rec metadata.Image
	id  string
}

func isIDPrefix(arg string) bool {
	h := strings.TrimPrefix(arg, "sha256:")
	if len(h) < 4 || len(h) > 64 {
		return false
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// byID lists the images whose ID starts with arg.
func byID(ctx context.Context, s *store.Store, arg string) ([]idMatch, error) {
	if !isIDPrefix(arg) {
		return nil, nil
	}
	h := strings.TrimPrefix(arg, "sha256:")
	recs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []idMatch
	for _, rec := range recs {
		row := describe(ctx, s, rec)
		if row.ID != "" && strings.HasPrefix(digest.Digest(row.ID).Encoded(), h) {
			out = append(out, idMatch{rec, row.ID})
		}
	}
	return out, nil
}
