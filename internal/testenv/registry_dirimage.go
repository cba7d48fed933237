package testenv

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BuildImageFromDirs builds an OCI image for platform with one gzip layer
// per directory (files, directories and symlinks with their modes, owned
// by root, dated 2024-01-01) and cfg as its run configuration. With
// BusyboxRootfs as a layer the image runs.
func BuildImageFromDirs(t testing.TB, platform ocispec.Platform, cfg ocispec.ImageConfig, dirs ...string) *TestImage {
	t.Helper()
	var tars [][]byte
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
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = imageEpoch, time.Time{}, time.Time{}
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
		tars = append(tars, tarBuf.Bytes())
	}
	return assembleImage(t, platform, cfg, tars)
}
