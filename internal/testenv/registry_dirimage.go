package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BuildImageFromDirs builds an OCI image for platform with one gzip layer
// per directory (files, directories and symlinks with their modes, owned
// by root, dated 2024-01-01) and cfg as its run configuration. With
// BusyboxRootfs as a layer the image runs.
func BuildImageFromDirs(t testing.TB, platform ocispec.Platform, cfg ocispec.ImageConfig, dirs ...string) *TestImage {
	t.Helper()
	img := &TestImage{Blobs: map[digest.Digest][]byte{}}
	put := func(mt string, b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		img.Blobs[d] = b
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var diffIDs []digest.Digest
	for _, dir := range dirs {
		var tarBuf bytes.Buffer
		tw := tar.NewWriter(&tarBuf)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = epoch, time.Time{}, time.Time{}
			hdr.Format = tar.FormatPAX
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = io.Copy(tw, f)
				return err
			}
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		if err != nil {
			t.Fatalf("layer from %s: %v", dir, err)
		}
		diffIDs = append(diffIDs, digest.FromBytes(tarBuf.Bytes()))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tarBuf.Bytes())
		zw.Close()
		img.Layers = append(img.Layers, put(ocispec.MediaTypeImageLayerGzip, gz.Bytes()))
	}
	c := ocispec.Image{Created: &epoch, Platform: platform, Config: cfg, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}}
	img.Config = put(ocispec.MediaTypeImageConfig, mustJSON(t, c))
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: img.Config, Layers: img.Layers}
	img.Manifest = put(ocispec.MediaTypeImageManifest, mustJSON(t, m))
	p := platform
	img.Manifest.Platform = &p
	return img
}
