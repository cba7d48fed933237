package testenv

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// StoreState is what an image data root (--data-root) holds, read from the
// files directly rather than through the store's packages, so that a test
// of those packages does not take their word for it:
//
//	metadata/images/*.json   image records (Images: their names)
//	content/blobs/<alg>/<hex> committed blobs (Blobs: "alg:hex")
//	content/ingest/*          writes in progress or interrupted
//	tmp/*, metadata/images/.tmp-*  scratch files
type StoreState struct {
	Images  []string
	Blobs   []string
	Ingests []string
	Scratch []string
}

// ReadStoreState reads root's state; a data root that does not exist (yet)
// is empty.
func ReadStoreState(t testing.TB, root string) StoreState {
	t.Helper()
	var s StoreState
	list := func(dir string) []os.DirEntry {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatalf("store state: %v", err)
		}
		return ents
	}
	for _, e := range list(filepath.Join(root, "metadata", "images")) {
		p := filepath.Join(root, "metadata", "images", e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			s.Scratch = append(s.Scratch, p)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("store state: %v", err)
		}
		var rec struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.Name == "" {
			t.Fatalf("store state: image record %s is not a named record (%v): %s", p, err, b)
		}
		s.Images = append(s.Images, rec.Name)
	}
	for _, alg := range list(filepath.Join(root, "content", "blobs")) {
		for _, b := range list(filepath.Join(root, "content", "blobs", alg.Name())) {
			s.Blobs = append(s.Blobs, alg.Name()+":"+b.Name())
		}
	}
	for _, e := range list(filepath.Join(root, "content", "ingest")) {
		s.Ingests = append(s.Ingests, e.Name())
	}
	for _, e := range list(filepath.Join(root, "tmp")) {
		s.Scratch = append(s.Scratch, filepath.Join(root, "tmp", e.Name()))
	}
	slices.Sort(s.Images)
	slices.Sort(s.Blobs)
	return s
}

// Changes lists, one line each, how after differs from s in what a failed
// operation must not leave: image names or blobs that were not in s, and
// any ingest or scratch file at all.
func (s StoreState) Changes(after StoreState) []string {
	var out []string
	for _, n := range after.Images {
		if !slices.Contains(s.Images, n) {
			out = append(out, "new image name "+n)
		}
	}
	for _, n := range s.Images {
		if !slices.Contains(after.Images, n) {
			out = append(out, "image name removed: "+n)
		}
	}
	for _, b := range after.Blobs {
		if !slices.Contains(s.Blobs, b) {
			out = append(out, "new blob "+b)
		}
	}
	for _, b := range s.Blobs {
		if !slices.Contains(after.Blobs, b) {
			out = append(out, "blob removed: "+b)
		}
	}
	for _, i := range after.Ingests {
		out = append(out, "ingest left: "+i)
	}
	for _, f := range after.Scratch {
		out = append(out, "scratch file left: "+f)
	}
	return out
}

// RequireStoreUnchanged fails t unless root holds exactly the names and
// blobs of before, and no ingest or scratch file: what a failed load,
// import or pull must leave.
func RequireStoreUnchanged(t testing.TB, root string, before StoreState) {
	t.Helper()
	if ch := before.Changes(ReadStoreState(t, root)); len(ch) > 0 {
		t.Fatalf("data root %s changed by a failed operation:\n  %s", root, strings.Join(ch, "\n  "))
	}
}
