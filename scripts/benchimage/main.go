// Command benchimage turns a root filesystem directory into a multi-layer
// OCI image layout, for scripts/bench-pull.sh: each -split prefix (a
// directory below the root, e.g. usr/share) becomes a layer of its own,
// everything else the bottom layer. Layers are gzip tars with
// deterministic headers (numeric owners, no user or group names, times in
// whole seconds, entries in lexical order), so the same rootfs always
// gives the same digests.
//
//	go run ./scripts/benchimage -rootfs R -out LAYOUT -tag latest \
//	    -split usr/share -split usr/lib/x86_64-linux-gnu -split usr/lib -split usr/bin
package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

type splits []string

func (s *splits) String() string     { return strings.Join(*s, ",") }
func (s *splits) Set(v string) error { *s = append(*s, strings.Trim(path.Clean(v), "/")); return nil }

func main() {
	var (
		rootfs = flag.String("rootfs", "", "root filesystem directory")
		out    = flag.String("out", "", "OCI layout directory to create")
		tag    = flag.String("tag", "latest", "tag (org.opencontainers.image.ref.name)")
		level  = flag.Int("level", gzip.DefaultCompression, "gzip level")
		sp     splits
	)
	flag.Var(&sp, "split", "directory (relative to the root) that gets a layer of its own; repeatable")
	flag.Parse()
	if *rootfs == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: benchimage -rootfs DIR -out LAYOUT [-tag T] [-split DIR]...")
		os.Exit(2)
	}
	if err := build(*rootfs, *out, *tag, *level, sp); err != nil {
		fmt.Fprintln(os.Stderr, "benchimage:", err)
		os.Exit(1)
	}
}

// entry is one path of the rootfs, in walk order.
type entry struct {
	rel  string
	info fs.FileInfo
}

func build(rootfs, out, tag string, level int, sp splits) error {
	if _, err := os.Stat(out); err == nil {
		return fmt.Errorf("%s exists", out)
	}
	if err := os.MkdirAll(filepath.Join(out, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	// Layer 0 is everything no split claims; layer i+1 is sp[i]. The
	// longest matching prefix wins, so usr/lib and usr/lib/x86_64-linux-gnu
	// can be split apart.
	groups := make([][]entry, len(sp)+1)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		best, bestLen := 0, -1
		for i, s := range sp {
			if (rel == s || strings.HasPrefix(rel, s+"/")) && len(s) > bestLen {
				best, bestLen = i+1, len(s)
			}
		}
		groups[best] = append(groups[best], entry{rel: rel, info: info})
		return nil
	})
	if err != nil {
		return err
	}
	var (
		layers  []ocispec.Descriptor
		diffIDs []digest.Digest
		total   int64
	)
	for i, g := range groups {
		// A split layer carries its ancestors' directory entries, as
		// docker's and umoci's layers do, so that each tar stands alone.
		var prefix []entry
		if i > 0 {
			for a := path.Dir(sp[i-1]); a != "." && a != "/"; a = path.Dir(a) {
				info, err := os.Lstat(filepath.Join(rootfs, a))
				if err != nil {
					return err
				}
				prefix = append([]entry{{rel: a, info: info}}, prefix...)
			}
		}
		desc, diffID, size, err := writeLayer(rootfs, out, level, append(prefix, g...))
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		name := "(rest)"
		if i > 0 {
			name = sp[i-1]
		}
		fmt.Printf("layer %d %-28s %6d entries %7.1f MB tar %6.1f MB gzip\n", i, name, len(g), float64(size)/1e6, float64(desc.Size)/1e6)
		layers = append(layers, desc)
		diffIDs = append(diffIDs, diffID)
		total += size
	}
	created := time.Unix(0, 0).UTC()
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/bash"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cd, err := writeJSON(out, ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
		Layers:    layers,
	}
	md, err := writeJSON(out, ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return err
	}
	md.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	if err := writeFileJSON(filepath.Join(out, "index.json"), idx); err != nil {
		return err
	}
	if err := writeFileJSON(filepath.Join(out, ocispec.ImageLayoutFile), ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}); err != nil {
		return err
	}
	fmt.Printf("image %s: %d layers, %.1f MB uncompressed\n", md.Digest, len(layers), float64(total)/1e6)
	return nil
}

// writeLayer writes entries as a gzip tar blob and returns its descriptor,
// diffID and uncompressed size. A file whose inode was already written in
// this layer becomes a hardlink to it; across layers it is a copy.
func writeLayer(rootfs, out string, level int, entries []entry) (ocispec.Descriptor, digest.Digest, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(out, "blobs"), "layer-")
	if err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	compressed := sha256.New()
	zw, err := gzip.NewWriterLevel(io.MultiWriter(tmp, compressed), level)
	if err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	uncompressed := &counter{h: sha256.New()}
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed))
	links := map[[2]uint64]string{}
	for _, e := range entries {
		if err := writeEntry(tw, rootfs, e, links); err != nil {
			return ocispec.Descriptor{}, "", 0, fmt.Errorf("%s: %w", e.rel, err)
		}
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	st, err := tmp.Stat()
	if err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	d := digest.NewDigest(digest.SHA256, compressed)
	if err := tmp.Close(); err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(out, "blobs", "sha256", d.Encoded())); err != nil {
		return ocispec.Descriptor{}, "", 0, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: d, Size: st.Size()}
	return desc, digest.NewDigest(digest.SHA256, uncompressed.h), uncompressed.n, nil
}

func writeEntry(tw *tar.Writer, rootfs string, e entry, links map[[2]uint64]string) error {
	full := filepath.Join(rootfs, e.rel)
	st, ok := e.info.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no stat_t")
	}
	hdr := &tar.Header{
		Name:    e.rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, 0),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		l, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Linkname = l
	case unix.S_IFREG:
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			break
		}
		links[key] = e.rel
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets: not representable in a layer
	}
	xattrs, err := readXattrs(full)
	if err != nil {
		return err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

func readXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var names []string
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if x != "" {
			names = append(names, x)
		}
	}
	sort.Strings(names)
	out := map[string]string{}
	for _, x := range names {
		v := make([]byte, 65536)
		m, err := unix.Lgetxattr(p, x, v)
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", x, err)
		}
		out[x] = string(v[:m])
	}
	return out, nil
}

type counter struct {
	h hash.Hash
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func writeJSON(out, mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := digest.FromBytes(b)
	if err := os.WriteFile(filepath.Join(out, "blobs", "sha256", d.Encoded()), b, 0o644); err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, nil
}

func writeFileJSON(p string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}
